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

  crash(): void {
    this.isUp = false;
    this.boot();
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
  readonly client: string;
  readonly server: SimServer;
  readonly incarnation: number;
  readonly method: ChatMethod;
  readonly request: unknown;
  /** Absent for a duplicate: nobody waits for its answer. */
  readonly reply?: { resolve(response: unknown): void; reject(error: Error): void; detach(): void };
}

/** An error shaped like the one grpc-js gives a client. */
function serviceError(code: status, details: string): ServiceError {
  return Object.assign(new Error(`${code} ${status[code]}: ${details}`), { code, details, metadata: new Metadata() });
}

/** The calls in flight between clients and servers, delivered one at a time when the simulation says. */
export class SimNetwork {
  private readonly inFlight: Call[] = [];
  faults: Faults = NO_FAULTS;
  /** Calls clients made. */
  calls = 0;
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

  /** How many calls (duplicates included) wait for delivery. */
  get waiting(): number {
    return this.inFlight.length;
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
      const call: Call = { client, server, incarnation: server.incarnation, method, request, reply: { resolve, reject, detach } };
      this.inFlight.push(call);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Delivers one call in flight, chosen by the seeded source; false when none is in flight. */
  deliverOne(): boolean {
    if (this.inFlight.length === 0) return false;
    const call = this.inFlight.splice(below(this.random, this.inFlight.length), 1)[0]!;
    call.reply?.detach();
    this.clock.tick();
    const outcome = this.process(call);
    this.trace?.(`${call.client} ${call.reply ? '' : '(duplicate) '}${call.method} -> ${call.server.name}: ${outcome}`);
    return true;
  }

  /** Forgets the duplicates still in flight (the network is healthy from now on). */
  dropDuplicates(): void {
    for (let i = this.inFlight.length - 1; i >= 0; i -= 1) if (!this.inFlight[i]!.reply) this.inFlight.splice(i, 1);
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
      const mapped = toServiceError(thrown, method, silent);
      if (mapped.code === status.INTERNAL) this.internalErrors.push(thrown);
      error = serviceError(mapped.code!, mapped.details!);
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
 * behind a load balancer). Each call is asynchronous and waits in the network.
 */
export class SimTransport implements Transport {
  private current: number;
  private pinned = false;

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
    this.current = server;
    this.pinned = pin;
  }

  failover(): void {
    if (!this.pinned) this.current = (this.current + 1) % this.servers.length;
  }

  async call<M extends ChatMethod>(method: M, request: RequestOf<M>, signal?: AbortSignal): Promise<ResponseOf<M>> {
    await Promise.resolve();
    if (signal?.aborted) throw new ChatSdkError('aborted', 'the operation was aborted', undefined, { cause: signal.reason });
    const sent = overTheWire(CODECS[method][0] as Codec<RequestOf<M>>, request);
    return (await this.network.send(this.client, this.servers[this.current]!, method, sent, signal)) as ResponseOf<M>;
  }

  close(): void {}
}

/** Resolves once every microtask queued so far, and every one those queue, has run. */
export function quiescence(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
