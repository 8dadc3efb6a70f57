import { type ServiceError, status } from '@grpc/grpc-js';
import * as wire from '../../generated/chat/v1/chat.js';
import { ChatSdkError } from '../../src/client/errors.js';
import type { ChatMethod } from '../../src/client/transport.js';
import { toServiceError } from '../../src/server/status.js';
import { below, chance, type Random } from '../support/random.js';
import { type Call, type Delivery, describeResponse, serviceError, type StreamEvent } from './deliveries.js';
import { type Faults, NO_FAULTS } from './faults.js';
import type { SimClock } from './sim-clock.js';
import { silent, type SimServer } from './sim-server.js';
import { CODECS, type Codec, overTheWire } from './wire-codec.js';
import { SimStream } from './watch-stream.js';
import type { Caller } from '../../src/domain/access.js';

/*
 * The simulated world: servers running the real domain and handler code (SimServer), and a
 * network that holds every call until the simulation delivers it, in an order and with the
 * faults a seeded source picks. No gRPC, no sockets, no real time: a run is a pure function of
 * its schedule.
 */

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
    /** Who each client is to the servers (its token's principal). */
    private readonly callerOf: (client: string) => Caller,
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
      response = overTheWire(CODECS[method][1] as Codec<unknown>, server.handle(method, call.request as never, this.callerOf(call.client)));
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
          stream.feed = server.watch(stream.request, this.callerOf(stream.client));
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
