import { type CallOptions, type ChannelCredentials, type ChannelOptions, type ClientUnaryCall, credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import {
  type AddAgentMessageRequest,
  type AddAgentMessageResponse,
  type AddVisitorMessageRequest,
  type AddVisitorMessageResponse,
  ChatServiceClient,
  type GetNewMessageRequest,
  type GetNewMessageResponse,
  type MarkReadRequest,
  type MarkReadResponse,
  type RebuildRequest,
  type RebuildResponse,
  type SetTypingRequest,
  type SetTypingResponse,
  type WatchChatRequest,
  type WatchChatResponse,
} from '../../generated/chat/v1/chat.js';
import { HealthCheckResponse_ServingStatus, HealthClient } from '../../generated/health/v1/health.js';
import { CLIENT_DEFAULTS } from './defaults.js';
import { ChatSdkError } from './errors.js';
import type { TokenSource } from './options.js';
import { placement } from './placement.js';
import { abortedBy } from './signals.js';

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

/**
 * The calls beside the history (read positions, typing): kept apart from {@link ChatMethod} so a
 * transport that speaks only the history (a simulation's) still fits; what it lacks, it rejects.
 */
interface ConversationCalls {
  markRead: [MarkReadRequest, MarkReadResponse];
  setTyping: [SetTypingRequest, SetTypingResponse];
}

type AllCalls = ChatCalls & ConversationCalls;
export type ChatMethod = keyof ChatCalls;
export type ConversationMethod = keyof ConversationCalls;
export type AnyMethod = keyof AllCalls;
export type RequestOf<M extends AnyMethod> = AllCalls[M][0];
export type ResponseOf<M extends AnyMethod> = AllCalls[M][1];

/** The request metadata that names the chat a call is about, for balancers that hash on it. */
export const CHAT_ID_HEADER = 'x-chat-id';

/** The request metadata that carries the bearer token. */
export const AUTHORIZATION_HEADER = 'authorization';

/** How a session reaches ChatService: gRPC in production, anything with the same calls in a simulation. */
export interface Transport {
  /** Where calls go now. */
  readonly address: string;
  /** One call; rejects with a grpc-js ServiceError (or a ChatSdkError when aborted). */
  call<M extends ChatMethod>(method: M, request: RequestOf<M>, signal?: AbortSignal): Promise<ResponseOf<M>>;
  /**
   * One call beside the history (MarkRead, SetTyping), as {@link call}. Transports without it
   * (a simulation's) leave read positions and typing local: the session's calls reject.
   */
  callBeside?<M extends ConversationMethod>(method: M, request: RequestOf<M>, signal?: AbortSignal): Promise<ResponseOf<M>>;
  /**
   * Opens a WatchChat stream to the current address: its responses, ending when the server ends
   * the stream; an error (a grpc-js ServiceError) when it breaks. Transports without it leave
   * sessions polling.
   */
  watch?(request: WatchChatRequest, signal: AbortSignal): AsyncIterable<WatchChatResponse>;
  /**
   * Moves on after a call or stream failed at `from` (the current address when not given); a
   * failure at an address the transport already left changes nothing.
   */
  failover(from?: string): void;
  /**
   * Tells `listener` whenever calls start going to another address (a failover, or a return
   * to a better-placed server that is back); returns the function that stops telling it. A
   * session restarts its watch there.
   */
  onMove?(listener: (address: string) => void): () => void;
  close(): void;
}

/** How a transport looks for its chat's better-placed servers while it is away from them. */
export interface HomeProbeOptions {
  readonly firstMs: number;
  readonly maxMs: number;
  readonly checkTimeoutMs: number;
}

export interface ChatTransportOptions {
  readonly chatId: string;
  /** The servers, or one load-balanced address. */
  readonly addresses: readonly string[];
  readonly callTimeoutMs?: number;
  readonly credentials?: ChannelCredentials;
  /** grpc-js channel options, over the transport's own (see ChatSessionOptions.channelOptions). */
  readonly channelOptions?: ChannelOptions;
  /** Sent as `authorization: Bearer <token>` on every call, watch and probe; a function is called for each. */
  readonly token?: TokenSource;
  readonly homeProbe?: Partial<HomeProbeOptions>;
  /** Jitter of the probe waits; Math.random by default. */
  readonly random?: () => number;
}

/**
 * Calls ChatService for one chat on one of several servers, tried in the chat's placement
 * order (placement.ts), which every client computes alike: so all participants of a chat use
 * the same server, its home, and when the home dies, the same next one.
 *
 * `failover()` moves down the order after a failure. While not on the best-placed address,
 * the transport asks the better-placed servers' health service whether they are back (after
 * `homeProbe.firstMs`, doubling up to `homeProbe.maxMs`), and returns to the best one that
 * answers SERVING, telling `onMove` listeners. So once failures stop, every client of a chat
 * is back on its home within about `homeProbe.maxMs` plus a health check. Every call and watch
 * carries the chat id as `x-chat-id` metadata, for a load balancer that hashes on it, and the
 * token (when given) as `authorization: Bearer <token>`.
 */
export class ChatTransport implements Transport {
  private readonly ranking: readonly string[];
  private readonly clients: (ChatServiceClient | undefined)[];
  private readonly listeners = new Set<(address: string) => void>();
  private readonly probe: HomeProbeOptions;
  private readonly callTimeoutMs: number;
  private readonly channelCredentials: ChannelCredentials;
  private readonly random: () => number;
  private current = 0;
  private probeDelayMs: number;
  private probeTimer: NodeJS.Timeout | undefined;
  /** The current address was reached by a probe, and no call has succeeded there since. */
  private promoted = false;
  private closed = false;

  constructor(private readonly options: ChatTransportOptions) {
    if (options.addresses.length === 0) throw new ChatSdkError('rejected', 'at least one server address is needed');
    this.ranking = placement(options.chatId, options.addresses);
    this.clients = this.ranking.map(() => undefined);
    this.probe = { ...CLIENT_DEFAULTS.homeProbe, ...options.homeProbe };
    this.probeDelayMs = this.probe.firstMs;
    this.callTimeoutMs = options.callTimeoutMs ?? CLIENT_DEFAULTS.callTimeoutMs;
    this.channelCredentials = options.credentials ?? credentials.createInsecure();
    this.random = options.random ?? Math.random;
  }

  /** The address calls go to now. */
  get address(): string {
    return this.ranking[this.current]!;
  }

  /** The addresses in this chat's placement order: the home first. */
  get order(): readonly string[] {
    return this.ranking;
  }

  onMove(listener: (address: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Moves to the next address in placement order; drops the failed channel so it reconnects fresh. */
  failover(from?: string): void {
    if (this.closed || (from !== undefined && from !== this.address)) return;
    this.drop(this.current);
    if (this.ranking.length === 1) return; // one (load-balanced) address: reconnect through it
    // A server a probe found SERVING that then failed a call: wait longer before trusting it again.
    this.probeDelayMs = this.promoted ? Math.min(this.probe.maxMs, this.probeDelayMs * 2) : this.probe.firstMs;
    this.promoted = false;
    this.moveTo((this.current + 1) % this.ranking.length);
  }

  /** One call to the current server, with a deadline, cancelled when `signal` aborts. */
  callBeside<M extends ConversationMethod>(method: M, request: RequestOf<M>, signal?: AbortSignal): Promise<ResponseOf<M>> {
    return this.call(method, request, signal);
  }

  async call<M extends AnyMethod>(method: M, request: RequestOf<M>, signal?: AbortSignal): Promise<ResponseOf<M>> {
    const metadata = await this.metadata();
    const at = this.current;
    const client = this.client(at);
    const invoke = client[method].bind(client) as unknown as Unary<RequestOf<M>, ResponseOf<M>>;
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(abortedBy(signal));
      const onAbort = () => call.cancel();
      const call = invoke(request, metadata, { deadline: Date.now() + this.callTimeoutMs }, (error, response) => {
        signal?.removeEventListener('abort', onAbort);
        if (signal?.aborted) reject(abortedBy(signal));
        else if (error) reject(error);
        else {
          if (at === this.current && this.promoted) {
            this.promoted = false;
            this.probeDelayMs = this.probe.firstMs;
          }
          resolve(response);
        }
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * A watch on the current server, without a deadline, cancelled when `signal` aborts. With a
   * token function, the stream opens once it has given the token.
   */
  watch(request: WatchChatRequest, signal: AbortSignal): AsyncIterable<WatchChatResponse> {
    const { token } = this.options;
    if (typeof token !== 'function') return this.openWatch(request, this.metadataWith(token), signal);
    const open = async () => this.openWatch(request, this.metadataWith(await token()), signal);
    return {
      async *[Symbol.asyncIterator]() {
        yield* await open();
      },
    };
  }

  private openWatch(request: WatchChatRequest, metadata: Metadata, signal: AbortSignal): AsyncIterable<WatchChatResponse> {
    const stream = this.client(this.current).watchChat(request, metadata);
    const onAbort = () => stream.cancel();
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    stream.on('close', () => signal.removeEventListener('abort', onAbort));
    return stream;
  }

  /** Closes every channel and stops probing. */
  close(): void {
    this.closed = true;
    clearTimeout(this.probeTimer);
    this.listeners.clear();
    for (let i = 0; i < this.clients.length; i += 1) this.drop(i);
  }

  private moveTo(index: number): void {
    if (index === this.current) return;
    this.current = index;
    this.scheduleProbe();
    for (const listener of [...this.listeners]) listener(this.address);
  }

  /** While away from the home, looks again after the current wait (jittered to between half and all of it). */
  private scheduleProbe(): void {
    clearTimeout(this.probeTimer);
    this.probeTimer = undefined;
    if (this.closed || this.current === 0) return;
    const waitMs = this.probeDelayMs / 2 + (this.random() * this.probeDelayMs) / 2;
    this.probeTimer = setTimeout(() => void this.probeBetter(), waitMs);
    this.probeTimer.unref(); // probing never keeps a process alive
  }

  /** Health-checks every better-placed server at once and moves to the best one SERVING. */
  private async probeBetter(): Promise<void> {
    const better = this.ranking.slice(0, this.current).map((_, index) => index);
    const serving = await Promise.all(better.map((index) => this.serving(index)));
    if (this.closed) return;
    const best = serving.indexOf(true);
    if (best >= 0 && best < this.current) {
      this.promoted = true;
      this.moveTo(best);
      return;
    }
    this.probeDelayMs = Math.min(this.probe.maxMs, this.probeDelayMs * 2);
    this.scheduleProbe();
  }

  /** Whether the server at `index` answers its health check with SERVING for ChatService. */
  private async serving(index: number): Promise<boolean> {
    const metadata = await this.metadata().catch(() => undefined);
    if (metadata === undefined) return false; // no token now: try again at the next probe
    const health = new HealthClient(this.ranking[index]!, this.channelCredentials, { channelOverride: this.client(index).getChannel() });
    return new Promise((resolve) => {
      health.check({ service: 'chat.v1.ChatService' }, metadata, { deadline: Date.now() + this.probe.checkTimeoutMs }, (error, response) => {
        const up = !error && response.status === HealthCheckResponse_ServingStatus.SERVING;
        // A fresh channel for the next probe: a failed one would wait out grpc-js's reconnect backoff.
        if (!up && index !== this.current) this.drop(index);
        resolve(up);
      });
    });
  }

  /** The metadata of the next call: the chat id, and the token of the moment. */
  private async metadata(): Promise<Metadata> {
    const { token } = this.options;
    return this.metadataWith(typeof token === 'function' ? await token() : token);
  }

  private metadataWith(token: string | undefined): Metadata {
    const metadata = new Metadata();
    metadata.set(CHAT_ID_HEADER, this.options.chatId);
    if (token) metadata.set(AUTHORIZATION_HEADER, `Bearer ${token}`);
    return metadata;
  }

  /** The client of the server at `index`, made on first use. */
  private client(index: number): ChatServiceClient {
    // A channel of its own (not grpc-js's shared subchannel pool), so a failover really
    // reconnects; keepalive pings, so a watch on a dead or frozen server is noticed.
    return (this.clients[index] ??= new ChatServiceClient(this.ranking[index]!, this.channelCredentials, {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.keepalive_time_ms': CLIENT_DEFAULTS.keepalive.timeMs,
      'grpc.keepalive_timeout_ms': CLIENT_DEFAULTS.keepalive.timeoutMs,
      'grpc.keepalive_permit_without_calls': 1,
      ...this.options.channelOptions,
    }));
  }

  private drop(index: number): void {
    this.clients[index]?.close();
    this.clients[index] = undefined;
  }
}
