import {
  type ClientDuplexStream,
  type ClientReadableStream,
  credentials,
  makeGenericClientConstructor,
  Metadata,
  type ServiceDefinition,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import { MarkReadRequest, SetTypingRequest } from '../../generated/chat/v1/chat.js';
import { requestPrincipal, testToken } from './security.js';
import { testInterceptors } from './servers.js';

/**
 * The requests whose caller the test interceptor cannot tell from raw bytes (it gives them a
 * service token), decoded here so a named reader or typist gets its own token, as a client
 * with the generated serializers would.
 */
const NAMED_CALLERS: Partial<Record<string, (bytes: Uint8Array) => { readerId?: string; participantId?: string }>> = {
  MarkRead: (b) => MarkReadRequest.decode(b),
  SetTyping: (b) => SetTypingRequest.decode(b),
};

/** The methods a raw client can call, by full path, with their streaming shape. */
export const RAW_METHODS = {
  AddVisitorMessage: { path: '/chat.v1.ChatService/AddVisitorMessage', shape: 'unary' },
  AddAgentMessage: { path: '/chat.v1.ChatService/AddAgentMessage', shape: 'unary' },
  GetNewMessage: { path: '/chat.v1.ChatService/GetNewMessage', shape: 'unary' },
  Rebuild: { path: '/chat.v1.ChatService/Rebuild', shape: 'unary' },
  WatchChat: { path: '/chat.v1.ChatService/WatchChat', shape: 'server-stream' },
  MarkRead: { path: '/chat.v1.ChatService/MarkRead', shape: 'unary' },
  SetTyping: { path: '/chat.v1.ChatService/SetTyping', shape: 'unary' },
  WatchTranscripts: { path: '/chat.v1.ChatService/WatchTranscripts', shape: 'server-stream', quietMs: 100 },
  AckTranscript: { path: '/chat.v1.ChatService/AckTranscript', shape: 'unary' },
  HealthCheck: { path: '/grpc.health.v1.Health/Check', shape: 'unary' },
  HealthWatch: { path: '/grpc.health.v1.Health/Watch', shape: 'server-stream' },
  ReflectionV1: { path: '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo', shape: 'bidi' },
  ReflectionV1alpha: { path: '/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo', shape: 'bidi' },
} as const;

export type RawMethod = keyof typeof RAW_METHODS;

/** How a call ended: its status, and the (first) response's bytes when there was one. */
export interface RawOutcome {
  readonly code: status;
  readonly details: string;
  readonly response?: Uint8Array;
}

const identity = (bytes: Buffer) => bytes;

const definition: ServiceDefinition = Object.fromEntries(
  Object.entries(RAW_METHODS).map(([name, { path, shape }]) => [
    name,
    {
      path,
      requestStream: shape === 'bidi',
      responseStream: shape !== 'unary',
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
    },
  ]),
);

const RawClient = makeGenericClientConstructor(definition, 'RawFuzz');

type Unary = (bytes: Buffer, metadata: Metadata, options: { deadline: Date }, callback: (error: ServiceError | null, response?: Buffer) => void) => unknown;
type ServerStream = (bytes: Buffer, options: { deadline: Date }) => ClientReadableStream<Buffer>;
type Bidi = (options: { deadline: Date }) => ClientDuplexStream<Buffer, Buffer>;

/**
 * A grpc-js generic client whose serializers are the identity, so any bytes reach the server
 * as the request body. A streaming call is taken up to its first response and then cancelled
 * (a live watch never ends by itself); a cancel of ours counts as OK.
 */
export class RawChatClient {
  private readonly client: InstanceType<typeof RawClient>;

  constructor(
    address: string,
    private readonly deadlineMs = 10_000,
  ) {
    this.client = new RawClient(address, credentials.createInsecure(), { interceptors: testInterceptors() });
  }

  async call(method: RawMethod, bytes: Uint8Array): Promise<RawOutcome> {
    const body = Buffer.from(bytes);
    const metadata = new Metadata();
    const decode = NAMED_CALLERS[method];
    if (decode) {
      let says: { readerId?: string; participantId?: string; chatId?: string } | undefined;
      try {
        says = decode(bytes);
      } catch {
        // undecodable: the interceptor's service token goes, and the server refuses it
      }
      if (says && (says.readerId || says.participantId)) {
        metadata.set('authorization', `Bearer ${await testToken(requestPrincipal(RAW_METHODS[method].path, says))}`);
        if (says.chatId && /^[\x20-\x7e]{1,1024}$/.test(says.chatId)) metadata.set('x-chat-id', says.chatId);
      }
    }
    const options = { deadline: new Date(Date.now() + this.deadlineMs) };
    const fn = (this.client as unknown as Record<RawMethod, unknown>)[method];
    const shape = RAW_METHODS[method].shape;
    if (shape === 'unary') {
      return new Promise((resolve) =>
        (fn as Unary).call(this.client, body, metadata, options, (error, response) =>
          resolve(error ? { code: error.code, details: error.details } : { code: status.OK, details: '', response: Uint8Array.from(response!) }),
        ),
      );
    }
    const stream = shape === 'bidi' ? (fn as Bidi).call(this.client, options) : (fn as ServerStream).call(this.client, body, options);
    if (shape === 'bidi') {
      const duplex = stream as ClientDuplexStream<Buffer, Buffer>;
      duplex.write(body);
      duplex.end();
    }
    // A stream that may rightly stay quiet (WatchTranscripts with nothing pending) is cancelled
    // after its quiet time, and that counts as OK with no response.
    const quietMs = (RAW_METHODS[method] as { quietMs?: number }).quietMs;
    return new Promise((resolve) => {
      let first: Uint8Array | undefined;
      let cancelled = false;
      const quiet = quietMs === undefined ? undefined : setTimeout(() => {
        cancelled = true;
        stream.cancel();
      }, quietMs);
      stream.on('data', (chunk: Buffer) => {
        if (first !== undefined) return;
        first = Uint8Array.from(chunk);
        cancelled = true;
        stream.cancel();
      });
      stream.on('error', () => {}); // the status below says how it ended
      stream.on('status', (s: { code: status; details: string }) => {
        if (quiet) clearTimeout(quiet);
        if (cancelled && s.code === status.CANCELLED) resolve({ code: status.OK, details: '', response: first });
        else resolve({ code: s.code, details: s.details, response: first });
      });
    });
  }

  close(): void {
    this.client.close();
  }
}
