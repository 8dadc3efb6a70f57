import type { handleServerStreamingCall, ServerErrorResponse, ServerWritableStream, StatusObject } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Caller } from '../domain/access.js';

import type { Config } from './config.js';
import type { CallGate } from './placement.js';
import { resetCall } from './reset-stream.js';
import type { ResponseBudget } from './response-budget.js';
import { serverStopping, toServiceError, watchFellBehind } from './status.js';
import type { WatchFeed } from './watch-feed.js';

type Status = Partial<StatusObject> | Partial<ServerErrorResponse>;

/**
 * A server-streaming handler as the service writes it (WatchChat, WatchTranscripts): a request and
 * its authenticated caller in, a feed of responses (or a thrown error) out.
 */
export type WatchHandler<Req, Res> = (request: Req, caller: Caller) => WatchFeed<Res>;

/** How one streaming method is adapted: its name, its responses' encoder, and the chat its request names ('' for none). */
export interface StreamMethod<Req, Res> {
  readonly method: string;
  readonly encode: (response: Res) => Buffer;
  readonly chatId: (request: Req) => string;
}

/** The settings a watch stream needs. */
export type StreamConfig = Pick<Config, 'watchStallMs' | 'watchCutoffGraceMs' | 'watchMaxAgeMs'>;

/**
 * How long one stream may live: uniform in [maxAgeMs/2, maxAgeMs], so watchers opened together
 * do not all come back together; undefined for no limit (0).
 */
export function watchLifetimeMs(maxAgeMs: number, random: () => number): number | undefined {
  if (maxAgeMs <= 0) return undefined;
  return Math.round(maxAgeMs / 2 + random() * (maxAgeMs / 2));
}

/**
 * The open WatchChat streams of one server: the adapter that opens them, and the shutdown that
 * ends them (grpc-js's tryShutdown would otherwise wait for streams that never end).
 */
export class WatchStreams {
  /** Whatever they stream, all the server does with them is end them. */
  private readonly open = new Set<Pick<FeedStream<unknown, unknown>, 'end'>>();
  private stopping = false;

  /**
   * @param responses the answers in flight: a watch is a read (refused over budget), and each
   *   page counts until its client has taken it
   * @param random the source of each stream's lifetime (see {@link watchLifetimeMs})
   */
  constructor(
    private readonly config: StreamConfig,
    private readonly logger: Logger,
    private readonly responses: ResponseBudget,
    private readonly random: () => number = Math.random,
  ) {}

  /** How many streams are open (a stream being cut off counts until it has ended). */
  get size(): number {
    return this.open.size;
  }

  /** Adapts a feed handler to grpc-js, authenticating each caller first and mapping every error in one place. */
  adapt<Req, Res>(handler: WatchHandler<Req, Res>, gate: CallGate, method: StreamMethod<Req, Res>): handleServerStreamingCall<Req, Res> {
    return (call) => {
      const lifetimeMs = watchLifetimeMs(this.config.watchMaxAgeMs, this.random);
      const stream: FeedStream<Req, Res> = new FeedStream(call, method, this.config, lifetimeMs, this.logger, this.responses, () => this.open.delete(stream));
      this.open.add(stream);
      if (this.stopping) stream.end(serverStopping(), undefined);
      else stream.start(handler, gate);
    };
  }

  /**
   * Ends every open watch with UNAVAILABLE, and refuses new ones the same way. A stream whose
   * status is stuck behind responses its client does not read is left to the shutdown's
   * deadline, which drops the connection (the client sees UNAVAILABLE too).
   */
  endAll(): void {
    this.stopping = true;
    for (const stream of this.open) stream.end(serverStopping(), undefined);
  }
}

/**
 * One WatchChat stream over a feed. At most one response is in flight: the next pull waits
 * until the stream has taken the last one, and a change meanwhile only marks the stream dirty.
 * A response the stream does not take within `watchStallMs` cuts it off. At its lifetime it
 * ends with OK, once the response in flight (if any) is taken.
 */
class FeedStream<Req, Res> {
  private chatId = '';
  private feed: WatchFeed<Res> | undefined;
  /** A response is in flight (its write callback, or a 'drain', is still due). */
  private writing = false;
  /** A change was heard, or the last response was taken: the feed may have more. */
  private dirty = false;
  private scheduled = false;
  /** The lifetime is over: no more pulls; the stream ends once nothing is in flight. */
  private expired = false;
  /** The stream has decided how it ends; it writes nothing more of its own. */
  private ended = false;
  private stallTimer: NodeJS.Timeout | undefined;
  private resetTimer: NodeJS.Timeout | undefined;
  private ageTimer: NodeJS.Timeout | undefined;
  private readonly peer: string;
  /** Stops counting the page in flight against the budgets (a no-op when none is). */
  private releasePage: () => void = () => {};

  constructor(
    private readonly call: ServerWritableStream<Req, Res>,
    private readonly method: StreamMethod<Req, Res>,
    private readonly config: StreamConfig,
    private readonly lifetimeMs: number | undefined,
    private readonly logger: Logger,
    private readonly responses: ResponseBudget,
    private readonly onClosed: () => void,
  ) {
    this.peer = call.getPeer();
    call.once('cancelled', () => this.closed());
    call.once('close', () => this.closed());
    call.once('finish', () => clearTimeout(this.resetTimer));
  }

  /** Passes the call through the gate (who the caller is), then opens the feed and sends its first response (possibly empty). */
  start(handler: WatchHandler<Req, Res>, gate: CallGate): void {
    this.chatId = this.method.chatId(this.call.request);
    // Always after this turn, as an asynchronous gate would be, and with a thrown refusal a rejection.
    Promise.resolve(this.chatId)
      .then((chatId) => gate(this.call.metadata, chatId))
      .then(
        (caller) => {
          if (!this.ended) this.open(handler, caller); // ended meanwhile: cancelled, or the server is stopping
        },
        (error: unknown) => this.fail(error),
      );
  }

  private open(handler: WatchHandler<Req, Res>, caller: Caller): void {
    try {
      this.responses.admit(this.peer);
      this.feed = handler(this.call.request, caller);
      this.feed.onChange(() => this.heard());
      this.logger.debug({ method: this.method.method, chatId: this.chatId, request: this.call.request, peer: this.peer }, 'watch started');
      if (this.lifetimeMs !== undefined) this.ageTimer = setTimeout(() => this.expire(), this.lifetimeMs);
      this.pull();
    } catch (error) {
      this.fail(error);
    }
  }

  /**
   * Ends the stream with `status` (OK when undefined). The status waits behind responses the
   * client has not taken; if it is not out after `lingerMs`, the stream is reset.
   */
  end(status: Status | undefined, lingerMs: number | undefined): void {
    if (this.ended) return;
    this.ended = true;
    this.feed?.close();
    clearTimeout(this.stallTimer);
    clearTimeout(this.ageTimer);
    if (this.call.cancelled || this.call.destroyed) return;
    if (lingerMs !== undefined) this.resetTimer = setTimeout(() => this.reset(), lingerMs);
    if (status) this.call.emit('error', status);
    else this.call.end();
  }

  private heard(): void {
    this.dirty = true;
    this.schedule();
  }

  /** Pulls on a later turn of the event loop, so a burst of changes becomes one read. */
  private schedule(): void {
    if (this.scheduled || this.writing || this.ended || this.expired || !this.dirty) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.writing || this.ended || this.expired || !this.dirty) return;
      this.dirty = false;
      try {
        this.pull();
      } catch (error) {
        this.fail(error);
      }
    });
  }

  /** Writes the feed's next response, if any; the feed's last one ends the stream with OK. */
  private pull(): void {
    const response = this.feed!.next();
    if (response === undefined) return;
    if (this.feed!.done) {
      this.logger.debug({ method: this.method.method, chatId: this.chatId, response }, 'watch ends: its last response');
      this.call.write(this.encode(response));
      this.end(undefined, this.config.watchStallMs || undefined); // 0: never cut off
      return;
    }
    this.write(response);
  }

  private write(response: Res): void {
    this.writing = true;
    if (this.config.watchStallMs > 0) this.stallTimer = setTimeout(() => this.cutOff(), this.config.watchStallMs);
    let taken = false;
    let drained = true;
    const done = () => {
      if (!taken || !drained) return;
      clearTimeout(this.stallTimer);
      this.releasePage();
      this.writing = false;
      if (this.expired) return this.end(undefined, this.config.watchStallMs || undefined);
      this.dirty = true; // a page cut by the size budget leaves more to read
      this.schedule();
    };
    const more = this.call.write(this.encode(response), (error: Error | null | undefined) => {
      if (error) return; // the stream is gone; 'close' cleans up
      taken = true;
      done();
    });
    if (!more) {
      drained = false;
      this.call.once('drain', () => {
        drained = true;
        done();
      });
    }
  }

  /**
   * Encodes a page, counting it against the budgets until it is taken or the stream closes.
   * (withEncodedResponses sends the Buffer as it is.)
   */
  private encode(response: Res): Res {
    const bytes = this.method.encode(response);
    this.releasePage = this.responses.hold(this.peer, bytes.length);
    return bytes as unknown as Res;
  }

  /**
   * The lifetime is over: end with OK now, or once the response in flight is taken. A proxy
   * keeps a stream on the backend it first picked; a bounded lifetime brings every watcher
   * back through the balancer (to the chat's current home) within the maximum age.
   */
  private expire(): void {
    this.logger.debug({ chatId: this.chatId, lifetimeMs: this.lifetimeMs, inFlight: this.writing }, 'watch ends: maximum age');
    this.expired = true;
    this.feed?.close();
    if (!this.writing) this.end(undefined, this.config.watchStallMs || undefined);
  }

  private fail(error: unknown): void {
    this.end(toServiceError(error, this.method.method, this.logger), this.config.watchCutoffGraceMs);
  }

  private cutOff(): void {
    this.logger.warn(
      { chatId: this.chatId, peer: this.call.getPeer(), watchStallMs: this.config.watchStallMs },
      'watch cut off: the client took no response in time',
    );
    this.end(watchFellBehind(this.chatId, this.config.watchStallMs), this.config.watchCutoffGraceMs);
  }

  /** The status did not get out in time: reset the stream, freeing what it holds. */
  private reset(): void {
    if (this.call.cancelled || this.call.destroyed) return;
    this.logger.debug({ chatId: this.chatId }, 'watch stream reset: its status could not get through');
    if (!resetCall(this.call)) this.call.destroy();
  }

  /** The stream is over (ended, cancelled by the client, or its connection dropped). */
  private closed(): void {
    this.ended = true;
    this.releasePage();
    this.feed?.close();
    clearTimeout(this.stallTimer);
    clearTimeout(this.resetTimer);
    clearTimeout(this.ageTimer);
    this.onClosed();
  }
}
