import { once } from 'node:events';
import { type ClientHttp2Session, type ClientHttp2Stream, connect, constants, type IncomingHttpHeaders } from 'node:http2';

/**
 * A bare HTTP/2 client (node:http2, no gRPC library), for peers a gRPC client cannot be made
 * to play: one that never reads (a stream window of 0 bytes, so the server cannot send it a
 * single DATA byte), one that never sends anything, one that opens more streams than allowed.
 * It still answers pings, as node's HTTP/2 stack does by itself.
 */
export class RawConnection {
  readonly session: ClientHttp2Session;
  /** Settles when the session has closed, for whatever reason. */
  readonly closed: Promise<void>;
  goaway = false;
  private readonly settings: Promise<void>;

  private constructor(
    session: ClientHttp2Session,
    private readonly token: string | undefined,
  ) {
    this.session = session;
    session.on('error', () => {}); // a refused or reset connection shows as 'close'
    session.on('goaway', () => (this.goaway = true));
    this.closed = new Promise((resolve) => session.once('close', () => resolve()));
    this.settings = once(session, 'remoteSettings').then(() => undefined);
    this.settings.catch(() => {}); // a refused connection never gets them; 'close' tells
  }

  /**
   * Connects to `address` (host:port); `reads: false` sets the stream window to 0. With `token`,
   * every call carries it as `authorization: Bearer <token>`.
   */
  static open(address: string, { reads = true, token }: { reads?: boolean; token?: string } = {}): RawConnection {
    return new RawConnection(connect(`http://${address}`, { settings: reads ? {} : { initialWindowSize: 0 } }), token);
  }

  /** Resolves once the server's SETTINGS arrived (the connection was accepted). */
  accepted(): Promise<void> {
    return this.settings;
  }

  /** Starts one gRPC call: `path` like /chat.v1.ChatService/GetNewMessage, `body` the encoded request. */
  call(path: string, body: Uint8Array): RawCall {
    const stream = this.session.request({
      [constants.HTTP2_HEADER_METHOD]: 'POST',
      [constants.HTTP2_HEADER_PATH]: path,
      [constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
      te: 'trailers',
      ...(this.token !== undefined && { authorization: `Bearer ${this.token}` }),
    });
    stream.on('error', () => {}); // a reset shows as rstCode on 'close'
    const frame = Buffer.alloc(5 + body.length);
    frame.writeUInt32BE(body.length, 1);
    frame.set(body, 5);
    stream.end(frame);
    return new RawCall(stream);
  }

  close(): void {
    this.session.destroy();
  }
}

/** One call on a {@link RawConnection}. */
export class RawCall {
  /** The response headers (a refusal comes as trailers-only headers with grpc-status). */
  readonly headers: Promise<IncomingHttpHeaders>;
  readonly ended: Promise<void>;
  constructor(readonly stream: ClientHttp2Stream) {
    this.headers = once(stream, 'response').then(([headers]) => headers as IncomingHttpHeaders);
    this.ended = new Promise((resolve) => stream.once('close', () => resolve())); // not once(): it rejects on 'error'
  }

  /** The gRPC status of a trailers-only answer (a refusal), or undefined for an answer under way. */
  async refusal(): Promise<{ code: number; message: string } | undefined> {
    const headers = await this.headers;
    const code = headers['grpc-status'];
    if (code === undefined) return undefined;
    return { code: Number(code), message: decodeURIComponent(String(headers['grpc-message'] ?? '')) };
  }
}
