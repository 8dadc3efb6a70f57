import {
  type CallOptions,
  type ChannelCredentials,
  type ClientUnaryCall,
  credentials,
  Metadata,
  type ServiceError,
} from '@grpc/grpc-js';
import {
  type AddAgentMessageRequest,
  type AddAgentMessageResponse,
  type AddVisitorMessageRequest,
  type AddVisitorMessageResponse,
  ChatServiceClient,
  type GetNewMessageRequest,
  type GetNewMessageResponse,
  type RebuildRequest,
  type RebuildResponse,
  type WatchChatRequest,
  type WatchChatResponse,
} from '../../generated/chat/v1/chat.js';
import { ChatSdkError } from './errors.js';

type Unary<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

/** The ChatService methods the SDK calls: request and response types by method name. */
interface ChatCalls {
  addVisitorMessage: [AddVisitorMessageRequest, AddVisitorMessageResponse];
  addAgentMessage: [AddAgentMessageRequest, AddAgentMessageResponse];
  getNewMessage: [GetNewMessageRequest, GetNewMessageResponse];
  rebuild: [RebuildRequest, RebuildResponse];
}
export type ChatMethod = keyof ChatCalls;
export type RequestOf<M extends ChatMethod> = ChatCalls[M][0];
export type ResponseOf<M extends ChatMethod> = ChatCalls[M][1];

/** How a session reaches ChatService: gRPC in production, anything with the same calls in a simulation. */
export interface Transport {
  /** Where calls go now. */
  readonly address: string;
  /** One call; rejects with a grpc-js ServiceError (or a ChatSdkError when aborted). */
  call<M extends ChatMethod>(method: M, request: RequestOf<M>, signal?: AbortSignal): Promise<ResponseOf<M>>;
  /**
   * Opens a WatchChat stream: its responses, ending when the server ends the stream; an error
   * (a grpc-js ServiceError) when it breaks. Transports without it leave sessions polling.
   */
  watch?(request: WatchChatRequest, signal: AbortSignal): AsyncIterable<WatchChatResponse>;
  /** Moves on after a failed call. */
  failover(): void;
  close(): void;
}

/** How soon a transport that failed over tries its first address again, and how that backs off. */
export interface ReturnOptions {
  /** First wait before trying the first address again after leaving it. */
  readonly firstMs: number;
  /** Longest wait, reached by doubling while the first address keeps failing. */
  readonly maxMs: number;
}

export const DEFAULT_RETURN: ReturnOptions = Object.freeze({ firstMs: 1_000, maxMs: 30_000 });

/**
 * Calls ChatService on one of several servers: the current one until `failover()` moves to
 * the next. A single address behind a load balancer works the same way (failover then just
 * reconnects through the balancer).
 *
 * The first address is home. After failing over away from it, the transport tries it again
 * after `returns.firstMs`, doubling the wait (up to `returns.maxMs`) while it keeps failing.
 * So once a dead server is back, every client given the same list ends up on the same server
 * again; without this, clients that failed over at different times could stay on two live
 * servers for good, each holding part of the chat.
 */
export class ChatTransport implements Transport {
  private readonly clients: (ChatServiceClient | undefined)[];
  private current = 0;
  private leftHomeAt = 0;
  private returnDelayMs: number;
  private returning = false;

  constructor(
    private readonly addresses: readonly string[],
    private readonly callTimeoutMs: number,
    private readonly channelCredentials: ChannelCredentials = credentials.createInsecure(),
    private readonly returns: ReturnOptions = DEFAULT_RETURN,
    private readonly now: () => number = Date.now,
  ) {
    this.returnDelayMs = returns.firstMs;
    if (addresses.length === 0) throw new ChatSdkError('rejected', 'at least one server address is needed');
    this.clients = addresses.map(() => undefined);
  }

  /** The address calls go to now. */
  get address(): string {
    return this.addresses[this.current]!;
  }

  /** Moves to the next address (round robin); drops the failed channel so it reconnects fresh. */
  failover(): void {
    this.clients[this.current]?.close();
    this.clients[this.current] = undefined;
    if (this.current === 0) {
      this.returnDelayMs = this.returning ? Math.min(this.returns.maxMs, this.returnDelayMs * 2) : this.returns.firstMs;
      this.leftHomeAt = this.now();
    }
    this.returning = false;
    this.current = (this.current + 1) % this.addresses.length;
  }

  /** One call to the current server, with a deadline, cancelled when `signal` aborts. */
  call<M extends ChatMethod>(method: M, request: RequestOf<M>, signal?: AbortSignal): Promise<ResponseOf<M>> {
    this.returnHome();
    const client = this.client();
    const invoke = client[method].bind(client) as unknown as Unary<RequestOf<M>, ResponseOf<M>>;
    return new Promise((resolve, reject) => {
      const onAbort = () => call.cancel();
      const deadline = Date.now() + this.callTimeoutMs;
      const call = invoke(request, new Metadata(), { deadline }, (error, response) => {
        signal?.removeEventListener('abort', onAbort);
        if (signal?.aborted) reject(new ChatSdkError('aborted', 'the operation was aborted', undefined, { cause: signal.reason }));
        else if (error) reject(error);
        else {
          if (this.current === 0) this.returning = false;
          resolve(response);
        }
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** A watch on the current server, without a deadline, cancelled when `signal` aborts. */
  watch(request: WatchChatRequest, signal: AbortSignal): AsyncIterable<WatchChatResponse> {
    this.returnHome();
    const stream = this.client().watchChat(request, new Metadata());
    const onAbort = () => stream.cancel();
    signal.addEventListener('abort', onAbort, { once: true });
    stream.on('close', () => signal.removeEventListener('abort', onAbort));
    return stream;
  }

  /** The current server's client, made on first use. */
  private client(): ChatServiceClient {
    // A channel of its own (not grpc-js's shared subchannel pool), so a failover really
    // reconnects; keepalive pings, so a watch on a dead server is noticed. The server lets
    // clients ping every 10 s at most (keepaliveMinPingIntervalMs).
    return (this.clients[this.current] ??= new ChatServiceClient(this.address, this.channelCredentials, {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.keepalive_time_ms': 15_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 1,
    }));
  }

  /** Tries the first address again once the wait since leaving it has passed. */
  private returnHome(): void {
    if (this.current !== 0 && this.now() - this.leftHomeAt >= this.returnDelayMs) {
      this.current = 0;
      this.returning = true;
    }
  }

  /** Closes every channel. */
  close(): void {
    for (const client of this.clients) client?.close();
    this.clients.fill(undefined);
  }
}
