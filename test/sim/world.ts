import { Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { pino } from 'pino';
import * as wire from '../../generated/chat/v1/chat.js';
import { ChatSdkError } from '../../src/client/errors.js';
import type { ChatMethod, RequestOf, ResponseOf, Transport } from '../../src/client/transport.js';
import type { Clock, Limits } from '../../src/domain/limits.js';
import { ChatStore } from '../../src/domain/store.js';
import { type ChatHandlers, chatHandlers } from '../../src/server/chat-service.js';
import { toServiceError } from '../../src/server/status.js';
import { below, chance, type Random } from '../support/random.js';
import type { WatchFeed } from '../../src/server/watch-feed.js';
import { SimStream } from './watch-stream.js';

/**
 * The simulated world: servers running the real domain and handler code, and a network that
 * holds every call until the simulation delivers it, in an order and with the faults a seeded
 * source picks. No gRPC, no sockets, no real time: a run is a pure function of its schedule.
 */

const silent = pino({ level: 'silent' });

interface Codec<T> {
  encode(message: T): { finish(): Uint8Array };
  decode(bytes: Uint8Array): T;
}

/** Each request and response goes through its protobuf encoding, as on the wire. */
const CODECS: { readonly [M in ChatMethod]: readonly [Codec<RequestOf<M>>, Codec<ResponseOf<M>>] } = {
  addVisitorMessage: [wire.AddVisitorMessageRequest, wire.AddVisitorMessageResponse],
  addAgentMessage: [wire.AddAgentMessageRequest, wire.AddAgentMessageResponse],
  getNewMessage: [wire.GetNewMessageRequest, wire.GetNewMessageResponse],
  rebuild: [wire.RebuildRequest, wire.RebuildResponse],
};

function overTheWire<T>(codec: Codec<T>, message: T): T {
  return codec.decode(codec.encode(message).finish());
}

/** A clock the network moves one second per delivery. */
export class SimClock implements Clock {
  private ms = Date.UTC(2026, 0, 1);

  now(): Date {
    return new Date(this.ms);
  }

  tick(): void {
    this.ms += 1000;
  }
}

/**
 * One chat server: a real ChatStore behind the real handlers. A crash loses every chat (the
 * next incarnation starts empty and gives new chats new epochs) and leaves the server down
 * until `restart()`; `down()`/`up()` cut it off and reconnect it with its chats intact.
 */
export class SimServer {
  private store!: ChatStore;
  private handlers!: ChatHandlers;
  private auditing = false;
  /** Bumped by each crash: calls sent to an earlier incarnation die with the connection. */
  incarnation = 0;
  isUp = true;

  constructor(
    readonly name: string,
    private readonly limits: Limits,
    private readonly clock: Clock,
    private readonly newEpoch: () => string,
  ) {
    this.boot();
  }

  private readonly crashListeners: (() => void)[] = [];

  /** Tells `listener` of every crash (the network breaks the crashed incarnation's streams). */
  onCrash(listener: () => void): void {
    this.crashListeners.push(listener);
  }

  crash(): void {
    this.isUp = false;
    this.boot();
    for (const listener of this.crashListeners) listener();
  }

  restart(): void {
    this.isUp = true;
  }

  down(): void {
    this.isUp = false;
  }

  up(): void {
    this.isUp = true;
  }

  /** Drops the chat, as idle eviction does; the next call about it finds it missing. */
  evict(chatId: string): boolean {
    return this.store.evict(chatId);
  }

  /** One request through the real handlers; a refusal is thrown as a ChatError. */
  handle<M extends ChatMethod>(method: M, request: RequestOf<M>): ResponseOf<M> {
    return (this.handlers[method] as (request: RequestOf<M>) => ResponseOf<M>)(request);
  }

  /** Opens a watch through the real handler; a refusal is thrown as a ChatError. */
  watch(request: wire.WatchChatRequest): WatchFeed {
    return this.handlers.watchChat(request);
  }

  /**
   * Everything the server holds of a chat, gaps or not, through the handlers (a Rebuild that
   * uploads nothing, answered without the page limit).
   */
  audit(chatId: string): wire.RebuildResponse {
    this.auditing = true;
    try {
      return this.handle('rebuild', { chat: { id: chatId, visitorDataOffset: 0, agentDataOffset: 0, messages: [], visitor: undefined, beginTime: undefined, epoch: '' } });
    } finally {
      this.auditing = false;
    }
  }

  /** The chat as a client reads it from offsets 0/0, page by page, through the handlers. */
  read(chatId: string): wire.GetNewMessageResponse[] {
    const pages: wire.GetNewMessageResponse[] = [];
    const at = { visitorOffset: 0, agentOffset: 0 };
    for (;;) {
      const page = this.handle('getNewMessage', { chatId, ...at, epoch: '' });
      pages.push(page);
      if (page.code === wire.ResultCode.RESULT_CODE_REBUILD_REQUIRED || page.messages.length === 0) return pages;
      for (const m of page.messages) {
        if (m.messageType === wire.MessageType.MESSAGE_TYPE_VISITOR) at.visitorOffset = Math.max(at.visitorOffset, m.dataOffset);
        else at.agentOffset = Math.max(at.agentOffset, m.dataOffset);
      }
      if (pages.length > 10_000) throw new Error(`reading ${chatId} from ${this.name} does not end`);
    }
  }

  private boot(): void {
    const limits = this.limits;
    const server = this;
    const budgeted: Limits = {
      ...limits,
      get maxResponseBytes() {
        return server.auditing ? Number.POSITIVE_INFINITY : limits.maxResponseBytes;
      },
    };
    this.incarnation += 1;
    this.store = new ChatStore(budgeted, this.clock, this.newEpoch);
    this.handlers = chatHandlers(this.store, this.clock, silent);
  }
}

/** Fault probabilities, each in [0, 1], applied per delivery. */
export interface Faults {
  /** The request never reaches the server: UNAVAILABLE. */
  readonly lostRequest: number;
  /** The server applies it, the answer is lost: UNAVAILABLE or DEADLINE_EXCEEDED. */
  readonly lostResponse: number;
  /** A copy of the request is delivered again later (nobody sees that answer). */
  readonly duplicate: number;
}

export const NO_FAULTS: Faults = Object.freeze({ lostRequest: 0, lostResponse: 0, duplicate: 0 });

interface Call {
  readonly kind: 'call';
  readonly client: string;
  readonly server: SimServer;
  readonly incarnation: number;
  readonly method: ChatMethod;
  readonly request: unknown;
  /** Absent for a duplicate: nobody waits for its answer. */
  readonly reply?: { resolve(response: unknown): void; reject(error: Error): void; detach(): void };
}

/** A stream's events: its opening, one pushed response, or its end (OK, or broken). */
type StreamEvent =
  | { readonly kind: 'open'; readonly stream: SimStream }
  | { readonly kind: 'push'; readonly stream: SimStream; readonly response: wire.WatchChatResponse; readonly last: boolean }
  | { readonly kind: 'end'; readonly stream: SimStream; readonly error?: ServiceError };

type Delivery = Call | StreamEvent;

/** An error shaped like the one grpc-js gives a client. */
function serviceError(code: status, details: string): ServiceError {
  return Object.assign(new Error(`${code} ${status[code]}: ${details}`), { code, details, metadata: new Metadata() });
}

/**
 * The calls and stream events in flight between clients and servers, delivered one at a time
 * when the simulation says: a seeded choice among them while failures last, oldest first
 * (`fair`) after, so that every event is delivered within as many deliveries as are in flight.
 *
 * A watch is an open (a call: lost, refused by a down server or a crashed incarnation, or
 * answered by the real handler's WatchFeed), then one event per response the feed gives, at
 * most one in flight per stream: the next is pulled from the feed only once the client's
 * iterator took the previous one, or, when the feed had nothing, when it signals a change. A
 * crash breaks its streams (the client hears UNAVAILABLE at a later delivery); a server that is
 * down holds their responses until it is up again (a frozen process).
 */
export class SimNetwork {
  private readonly inFlight: Delivery[] = [];
  private readonly streams = new Set<SimStream>();
  private streamIds = 0;
  faults: Faults = NO_FAULTS;
  /** Oldest first instead of the seeded choice. */
  fair = false;
  /** Calls clients made (watch opens included). */
  calls = 0;
  /** Deliveries made. */
  deliveries = 0;
  /** Errors the handlers threw that are not refusals: server bugs. */
  readonly internalErrors: unknown[] = [];

  constructor(
    private random: Random,
    private readonly clock: SimClock,
    /** Receives one line per delivery, when given. */
    private readonly trace?: (line: string) => void,
  ) {}

  /**
   * Draws the network's next choices from `random`: each step of a schedule brings its own,
   * so removing one step (as shrinking does) leaves the others' luck as it was.
   */
  reseed(random: Random): void {
    this.random = random;
  }

  /** How many calls and stream events (duplicates included) wait for delivery. */
  get waiting(): number {
    return this.inFlight.length;
  }

  /** Where `client`'s open (or opening) watch streams are, by server name. */
  watchesOf(client: string): string[] {
    return [...this.streams].filter((s) => s.client === client && s.state !== 'closed').map((s) => s.server.name);
  }

  /** How many streams are open (or opening) on `server`. */
  watchedOn(server: SimServer): number {
    return [...this.streams].filter((s) => s.server === server && s.state !== 'closed').length;
  }

  /** Parks a call until it is delivered; a fired `signal` withdraws it unsent. */
  send(client: string, server: SimServer, method: ChatMethod, request: unknown, signal: AbortSignal | undefined): Promise<unknown> {
    this.calls += 1;
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        const index = this.inFlight.indexOf(call);
        if (index >= 0) this.inFlight.splice(index, 1);
        reject(new ChatSdkError('aborted', 'the operation was aborted', undefined, { cause: signal?.reason }));
      };
      const detach = () => signal?.removeEventListener('abort', onAbort);
      const call: Call = { kind: 'call', client, server, incarnation: server.incarnation, method, request, reply: { resolve, reject, detach } };
      this.inFlight.push(call);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Opens a watch stream to `server`; `signal` cancels it (the iterator then ends). */
  watch(client: string, server: SimServer, request: wire.WatchChatRequest, signal: AbortSignal): SimStream {
    this.calls += 1;
    const stream = new SimStream(
      (this.streamIds += 1),
      client,
      server,
      server.incarnation,
      request,
      (s) => {
        s.busy = false;
        this.pump(s);
      },
      (s) => this.cancel(s),
    );
    if (signal.aborted) {
      stream.state = 'closed';
      stream.cancelled();
      return stream;
    }
    this.streams.add(stream);
    this.inFlight.push({ kind: 'open', stream });
    const onAbort = () => this.cancel(stream);
    signal.addEventListener('abort', onAbort, { once: true });
    stream.onFinished(() => signal.removeEventListener('abort', onAbort));
    return stream;
  }

  /** A server crashed: its streams break (closing their feeds); their clients hear it later. */
  crashed(server: SimServer): void {
    for (const stream of this.streams) if (stream.server === server && stream.state === 'open') this.break(stream, 'connection reset by a crash');
  }

  /**
   * The client's connections were cut (it moved): its streams break, those still opening too.
   * (Its unary calls in flight still reach their server, as the simulation always had them.)
   */
  disconnect(client: string): void {
    for (const stream of this.streams) if (stream.client === client && stream.state !== 'closed') this.break(stream, 'connection closed: the client moved');
  }

  /** Delivers one call or stream event, chosen by the seeded source; false when none can be. */
  deliverOne(): boolean {
    const eligible = this.inFlight.filter((d) => d.kind !== 'push' || d.stream.server.isUp);
    if (eligible.length === 0) return false;
    const delivery = eligible[this.fair ? 0 : below(this.random, eligible.length)]!;
    this.inFlight.splice(this.inFlight.indexOf(delivery), 1);
    this.deliveries += 1;
    this.clock.tick();
    if (delivery.kind === 'call') {
      delivery.reply?.detach();
      const outcome = this.process(delivery);
      this.trace?.(`${delivery.client} ${delivery.reply ? '' : '(duplicate) '}${delivery.method} -> ${delivery.server.name}: ${outcome}`);
    } else {
      const { stream } = delivery;
      const outcome = this.processStream(delivery);
      this.trace?.(`${stream.client} watch#${stream.id} ${delivery.kind} ${delivery.kind === 'open' ? '->' : '<-'} ${stream.server.name}: ${outcome}`);
    }
    return true;
  }

  /** Forgets the duplicates still in flight (the network is healthy from now on). */
  dropDuplicates(): void {
    for (let i = this.inFlight.length - 1; i >= 0; i -= 1) {
      const d = this.inFlight[i]!;
      if (d.kind === 'call' && !d.reply) this.inFlight.splice(i, 1);
    }
  }

  private process(call: Call): string {
    const { server, reply, method } = call;
    const fail = (code: status, why: string) => {
      reply?.reject(serviceError(code, why));
      return `${status[code]} (${why})`;
    };
    if (!server.isUp) return fail(status.UNAVAILABLE, 'server down');
    if (server.incarnation !== call.incarnation) return fail(status.UNAVAILABLE, 'connection reset by a crash');
    if (reply && chance(this.random, this.faults.lostRequest)) return fail(status.UNAVAILABLE, 'request lost');
    if (reply && chance(this.random, this.faults.duplicate)) {
      const { reply: _, ...duplicate } = call;
      this.inFlight.push(duplicate);
    }
    let response: unknown;
    let error: ServiceError | undefined;
    try {
      response = overTheWire(CODECS[method][1] as Codec<unknown>, server.handle(method, call.request as never));
    } catch (thrown) {
      error = this.refusal(thrown, method);
    }
    const summary = error ? `${status[error.code]}: ${error.details}` : describeResponse(response);
    if (!reply) return summary;
    if (chance(this.random, this.faults.lostResponse)) {
      return `${fail(this.random() < 0.5 ? status.UNAVAILABLE : status.DEADLINE_EXCEEDED, 'response lost')} after ${summary}`;
    }
    if (error) reply.reject(error);
    else reply.resolve(response);
    return summary;
  }

  private processStream(event: StreamEvent): string {
    const { stream } = event;
    const { server } = stream;
    const fail = (code: status, why: string) => {
      stream.closeFeed();
      this.streams.delete(stream);
      stream.arrive({ error: serviceError(code, why) });
      return `${status[code]} (${why})`;
    };
    switch (event.kind) {
      case 'open': {
        if (!server.isUp) return fail(status.UNAVAILABLE, 'server down');
        if (server.incarnation !== stream.incarnation) return fail(status.UNAVAILABLE, 'connection reset by a crash');
        if (chance(this.random, this.faults.lostRequest)) return fail(status.UNAVAILABLE, 'request lost');
        try {
          stream.feed = server.watch(stream.request);
        } catch (thrown) {
          const error = this.refusal(thrown, 'WatchChat');
          return fail(error.code, error.details);
        }
        stream.state = 'open';
        // Deferred: the listener runs inside the send or rebuild that changed the chat.
        stream.feed.onChange(() => queueMicrotask(() => this.pump(stream)));
        this.pump(stream);
        return `opened at ${stream.request.visitorOffset}/${stream.request.agentOffset} epoch ${stream.request.epoch}`;
      }
      case 'push': {
        if (chance(this.random, this.faults.lostResponse)) return `${fail(status.UNAVAILABLE, 'connection broken')} with ${describeResponse(event.response)}`;
        stream.arrive({ response: event.response });
        if (event.last) {
          stream.closeFeed();
          this.streams.delete(stream);
          stream.arrive({ end: true });
        }
        return `${describeResponse(event.response)}${event.last ? ', stream ends (OK)' : ''}`;
      }
      case 'end':
        stream.arrive(event.error ? { error: event.error } : { end: true });
        this.streams.delete(stream);
        return event.error ? `${status[event.error.code]} (${event.error.details})` : 'stream ends (OK)';
    }
  }

  /** Pulls the feed's next response into the network, unless one is in flight or untaken. */
  private pump(stream: SimStream): void {
    const feed = stream.feed;
    if (stream.state !== 'open' || stream.busy || !feed) return;
    const response = feed.next();
    if (response === undefined) {
      if (!feed.done) return;
      stream.state = 'closed';
      stream.busy = true;
      this.inFlight.push({ kind: 'end', stream });
      return;
    }
    stream.busy = true;
    this.inFlight.push({ kind: 'push', stream, response: overTheWire(wire.WatchChatResponse, response), last: feed.done });
  }

  /** The stream breaks now; the client hears `why` as UNAVAILABLE at a later delivery. */
  private break(stream: SimStream, why: string): void {
    stream.closeFeed();
    this.withdraw(stream);
    this.inFlight.push({ kind: 'end', stream, error: serviceError(status.UNAVAILABLE, why) });
  }

  /** The client cancelled: the feed closes, nothing more reaches the client. */
  private cancel(stream: SimStream): void {
    stream.closeFeed();
    this.withdraw(stream);
    this.streams.delete(stream);
    stream.cancelled();
  }

  private withdraw(stream: SimStream): void {
    for (let i = this.inFlight.length - 1; i >= 0; i -= 1) {
      const d = this.inFlight[i]!;
      if (d.kind !== 'call' && d.stream === stream) this.inFlight.splice(i, 1);
    }
  }

  private refusal(thrown: unknown, method: string): ServiceError {
    const mapped = toServiceError(thrown, method, silent);
    if (mapped.code === status.INTERNAL) this.internalErrors.push(thrown);
    return serviceError(mapped.code!, mapped.details!);
  }
}

function describeResponse(response: unknown): string {
  const r = response as Partial<wire.GetNewMessageResponse & wire.AddVisitorMessageResponse & wire.RebuildResponse>;
  const chat = r.chat;
  const offsets = chat ? `${chat.visitorDataOffset}/${chat.agentDataOffset}` : `${r.visitorDataOffset}/${r.agentDataOffset}`;
  const code = r.code === wire.ResultCode.RESULT_CODE_REBUILD_REQUIRED ? 'REBUILD_REQUIRED' : 'OK';
  const messages = chat?.messages ?? r.messages ?? (r.message ? [r.message] : []);
  const listed = messages.map((m) => `${m.id}@${m.dataOffset}`).join(' ');
  return `${code} ${offsets} epoch ${chat?.epoch ?? r.epoch ?? ''}${listed ? ` [${listed}]` : ''}${r.truncated ? ' truncated' : ''}`;
}

/**
 * A client's way to the servers: calls go to the server the schedule routed it to, and a
 * failover moves on to the next one in the list (unless the client is pinned to one, as
 * behind a load balancer). Each call is asynchronous and waits in the network, and so does
 * each watch stream's every event. `onMove` listeners hear each change of address.
 */
export class SimTransport implements Transport {
  private current: number;
  private pinned = false;
  private readonly moveListeners = new Set<(address: string) => void>();

  constructor(
    private readonly client: string,
    private readonly network: SimNetwork,
    private readonly servers: readonly SimServer[],
    first: number,
  ) {
    this.current = first;
  }

  get address(): string {
    return this.servers[this.current]!.name;
  }

  /** Sends later calls to `server`; `pin` keeps them there even after failures. */
  routeTo(server: number, pin = false): void {
    this.pinned = pin;
    this.moveTo(server);
  }

  failover(): void {
    if (!this.pinned) this.moveTo((this.current + 1) % this.servers.length);
  }

  /** Tells `listener` whenever calls start going to another address; returns the unsubscribe. */
  onMove(listener: (address: string) => void): () => void {
    this.moveListeners.add(listener);
    return () => this.moveListeners.delete(listener);
  }

  async call<M extends ChatMethod>(method: M, request: RequestOf<M>, signal?: AbortSignal): Promise<ResponseOf<M>> {
    await Promise.resolve();
    if (signal?.aborted) throw new ChatSdkError('aborted', 'the operation was aborted', undefined, { cause: signal.reason });
    const sent = overTheWire(CODECS[method][0] as Codec<RequestOf<M>>, request);
    return (await this.network.send(this.client, this.servers[this.current]!, method, sent, signal)) as ResponseOf<M>;
  }

  watch(request: wire.WatchChatRequest, signal: AbortSignal): AsyncIterable<wire.WatchChatResponse> {
    return this.network.watch(this.client, this.servers[this.current]!, overTheWire(wire.WatchChatRequest, request), signal);
  }

  close(): void {}

  private moveTo(server: number): void {
    if (server === this.current) return;
    this.current = server;
    for (const listener of [...this.moveListeners]) listener(this.address);
  }
}

/** Resolves once every microtask queued so far, and every one those queue, has run. */
export function quiescence(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
