import type { handleServerStreamingCall, ServerErrorResponse, ServerWritableStream, StatusObject } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { WatchChatRequest, WatchChatResponse } from '../../generated/chat/v1/chat.js';
import { invalid } from '../domain/errors.js';
import { type Position, sideOf } from '../domain/message.js';
import type { ChatStore, ReadOutcome } from '../domain/store.js';
import type { Config } from './config.js';
import { readResponse } from './convert.js';
import { decodeFailure } from './decoding.js';
import { resetCall } from './reset-stream.js';
import { serverStopping, toServiceError, watchFellBehind } from './status.js';

type WatchCall = ServerWritableStream<WatchChatRequest, WatchChatResponse>;
type Status = Partial<StatusObject> | Partial<ServerErrorResponse>;

/** The settings a watch needs. */
export type WatchConfig = Pick<Config, 'watchStallMs' | 'watchCutoffGraceMs'>;

/**
 * The open WatchChat streams of one server: the handler that opens them, and the shutdown
 * that ends them (grpc-js's tryShutdown would otherwise wait for streams that never end).
 */
export class Watches {
  private readonly open = new Set<Watcher>();
  private stopping = false;

  constructor(
    private readonly store: ChatStore,
    private readonly config: WatchConfig,
    private readonly logger: Logger,
  ) {}

  /** How many streams are open (a stream being cut off counts until it has ended). */
  get size(): number {
    return this.open.size;
  }

  /** The grpc-js handler of WatchChat. */
  readonly handler: handleServerStreamingCall<WatchChatRequest, WatchChatResponse> = (call) => {
    const watcher = new Watcher(call, this.store, this.config, this.logger, () => this.open.delete(watcher));
    this.open.add(watcher);
    if (this.stopping) watcher.end(serverStopping(), undefined);
    else watcher.start();
  };

  /**
   * Ends every open watch with UNAVAILABLE, and refuses new ones the same way. A stream whose
   * status is stuck behind responses its client does not read is left to the shutdown's
   * deadline, which drops the connection (the client sees UNAVAILABLE too).
   */
  endAll(): void {
    this.stopping = true;
    for (const watcher of this.open) watcher.end(serverStopping(), undefined);
  }
}

/**
 * One WatchChat stream. It keeps the client's position and, whenever the chat changes (and
 * once at the start), reads from that position with GetNewMessage's read and writes one
 * response per page, advancing the position: catch-up and live are one sequence of reads, so
 * nothing is skipped or repeated. At most one response is in flight: the next read waits
 * until the stream has taken the last one, and a change meanwhile only marks the watcher
 * dirty. A response the stream does not take within `watchStallMs` cuts the watcher off.
 */
class Watcher {
  private chatId = '';
  private position: Position = { visitor: 0, agent: 0 };
  private unsubscribe: () => void = () => {};
  /** A response is in flight (its write callback, or a 'drain', is still due). */
  private writing = false;
  /** There may be something to read: a change was heard, or the last page was not the end. */
  private dirty = false;
  private scheduled = false;
  /** The watcher has decided how the stream ends; it writes nothing more of its own. */
  private ended = false;
  private stallTimer: NodeJS.Timeout | undefined;
  private resetTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly call: WatchCall,
    private readonly store: ChatStore,
    private readonly config: WatchConfig,
    private readonly logger: Logger,
    private readonly onClosed: () => void,
  ) {
    call.once('cancelled', () => this.closed());
    call.once('close', () => this.closed());
    call.once('finish', () => clearTimeout(this.resetTimer));
  }

  /** Validates the request, subscribes, and sends the first page (possibly empty). */
  start(): void {
    try {
      const failure = decodeFailure(this.call.request);
      if (failure !== undefined) throw invalid(`the WatchChat request could not be decoded: ${failure}`);
      const { chatId, visitorOffset, agentOffset, epoch } = this.call.request;
      this.chatId = chatId;
      const caller = { visitor: visitorOffset, agent: agentOffset, epoch };
      // One synchronous step: every change after the first read is heard.
      this.unsubscribe = this.store.watch(this.chatId, () => this.heard());
      const first = this.store.getNewMessages(this.chatId, caller);
      this.position = { visitor: caller.visitor, agent: caller.agent, epoch: first.epoch };
      this.deliver(first);
      this.logger.debug({ chatId: this.chatId, ...this.position, peer: this.call.getPeer() }, 'watch started');
    } catch (error) {
      this.end(toServiceError(error, 'WatchChat', this.logger), this.config.watchCutoffGraceMs);
    }
  }

  /**
   * Ends the stream with `status` (OK when undefined). The status waits behind responses the
   * client has not taken; if it is not out after `lingerMs`, the stream is reset.
   */
  end(status: Status | undefined, lingerMs: number | undefined): void {
    if (this.ended) return;
    this.ended = true;
    this.unsubscribe();
    clearTimeout(this.stallTimer);
    if (this.call.cancelled || this.call.destroyed) return;
    if (lingerMs !== undefined) this.resetTimer = setTimeout(() => this.reset(), lingerMs);
    if (status) this.call.emit('error', status);
    else this.call.end();
  }

  private heard(): void {
    this.dirty = true;
    this.schedule();
  }

  /** Reads on a later turn of the event loop, so a burst of changes becomes one read. */
  private schedule(): void {
    if (this.scheduled || this.writing || this.ended || !this.dirty) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.writing || this.ended || !this.dirty) return;
      this.dirty = false;
      try {
        const read = this.store.readNew(this.chatId, this.position);
        if (read.rebuildRequired || read.messages.length > 0) this.deliver(read);
      } catch (error) {
        this.end(toServiceError(error, 'WatchChat', this.logger), this.config.watchCutoffGraceMs);
      }
    });
  }

  /** Writes one read's answer and advances the position; a rebuild answer is the last one. */
  private deliver(read: ReadOutcome): void {
    const response = readResponse(read);
    if (read.rebuildRequired) {
      this.logger.debug({ chatId: this.chatId, ...read.offsets, epoch: read.epoch }, 'watch ends: rebuild required');
      this.call.write(response);
      this.end(undefined, this.config.watchStallMs || undefined); // 0: never cut off
      return;
    }
    let { visitor, agent } = this.position;
    for (const message of read.messages) {
      if (sideOf(message.type) === 'visitor') visitor += 1;
      else agent += 1;
    }
    this.position = { ...this.position, visitor, agent };
    // A page cut by the size budget: more to read once this one is out.
    if (visitor < read.offsets.visitor || agent < read.offsets.agent) this.dirty = true;
    this.write(response);
  }

  private write(response: WatchChatResponse): void {
    this.writing = true;
    if (this.config.watchStallMs > 0) this.stallTimer = setTimeout(() => this.cutOff(), this.config.watchStallMs);
    let taken = false;
    let drained = true;
    const done = () => {
      if (!taken || !drained) return;
      clearTimeout(this.stallTimer);
      this.writing = false;
      this.schedule();
    };
    const more = this.call.write(response, (error: Error | null | undefined) => {
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
    this.unsubscribe();
    clearTimeout(this.stallTimer);
    clearTimeout(this.resetTimer);
    this.onClosed();
  }
}
