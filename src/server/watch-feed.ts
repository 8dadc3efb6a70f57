import type { WatchChatRequest, WatchChatResponse } from '../../generated/chat/v1/chat.js';
import { type Position, sideOf } from '../domain/message.js';
import type { ChatStore, ReadOutcome } from '../domain/store.js';
import type { ChatChange } from '../domain/watchers.js';
import { readResponse, toWireTyping } from './convert.js';

/** One server stream as the handler gives it (a WatchChat's, a WatchTranscripts'): responses pulled one at a time, no gRPC. */
export interface WatchFeed<Res = WatchChatResponse> {
  /**
   * The next response, or undefined when there is nothing new right now. The first call always
   * returns a response (possibly without messages: the watch is then established). Each
   * response continues the previous one's position (the request's, for the first) without a gap
   * or duplicate; a page is cut to the response size budget and the rest comes on the next call.
   * A RESULT_CODE_REBUILD_REQUIRED response is the last one: after it `done` is true and next()
   * returns undefined.
   */
  next(): Res | undefined;
  /** True once the last response was returned: the stream then ends with OK. */
  readonly done: boolean;
  /**
   * Sets the one listener, called synchronously right after any change that may give next()
   * something new (a send, a merge that adds messages, an eviction). It must do little (note it,
   * pull later).
   */
  onChange(listener: () => void): void;
  /** Cancels the subscription (frees the watcher slot); idempotent. */
  close(): void;
}

/**
 * Opens a watch of `request.chatId` from the request's position. Subscribing and the first read
 * are one synchronous step, so every change after that read is heard. Throws a ChatError for a
 * request GetNewMessage would refuse, and at the watcher limit; a missing chat is created, and
 * the first response then asks for a rebuild (-1/-1).
 */
export function openWatchFeed(store: ChatStore, request: WatchChatRequest): WatchFeed {
  return new StoreFeed(store, request);
}

/**
 * A feed over the store: it keeps the watcher's position and reads from it with GetNewMessage's
 * read whenever the chat may have changed (or the last page was cut), advancing it by each
 * response's messages, so catch-up and live are one sequence of reads.
 */
class StoreFeed implements WatchFeed {
  private readonly chatId: string;
  private position: Position;
  /** The first read, made when the feed opened, until next() returns it. */
  private first: ReadOutcome | undefined;
  /** There may be something to read: a change was heard, or the last page was cut. */
  private dirty = false;
  /** The state beside the history changed (a read position, typing) since the last response. */
  private activity = false;
  private listener: () => void = () => {};
  private unsubscribe: () => void;
  private closed = false;
  private last = false;

  constructor(
    private readonly store: ChatStore,
    request: WatchChatRequest,
  ) {
    const { chatId, visitorOffset, agentOffset, epoch } = request;
    this.chatId = chatId;
    const caller = { visitor: visitorOffset, agent: agentOffset, epoch };
    // One synchronous step: every change after the first read is heard.
    this.unsubscribe = store.watch(chatId, (change) => this.heard(change));
    try {
      this.first = store.getNewMessages(chatId, caller);
    } catch (error) {
      this.unsubscribe();
      throw error;
    }
    this.position = { visitor: caller.visitor, agent: caller.agent, epoch: this.first.epoch };
  }

  get done(): boolean {
    return this.last;
  }

  next(): WatchChatResponse | undefined {
    if (this.last || this.closed) return undefined;
    let read = this.first;
    this.first = undefined;
    if (!read) {
      if (!this.dirty) return undefined;
      this.dirty = false;
      read = this.store.readNew(this.chatId, this.position);
      // A response without messages moves no offset: sent only when the state beside the history changed.
      if (!read.rebuildRequired && read.messages.length === 0 && !this.activity) return undefined;
    }
    this.activity = false;
    return this.advance(read);
  }

  onChange(listener: () => void): void {
    this.listener = listener;
  }

  close(): void {
    this.closed = true;
    this.unsubscribe();
  }

  private heard(change: ChatChange): void {
    this.dirty = true;
    if (change === 'activity') this.activity = true;
    this.listener();
  }

  /** Moves the position past one read's messages; a rebuild answer is the last one. */
  private advance(read: ReadOutcome): WatchChatResponse {
    if (read.rebuildRequired) {
      this.last = true;
      this.unsubscribe();
      return { ...readResponse(read), typing: [] };
    }
    let { visitor, agent } = this.position;
    for (const message of read.messages) {
      if (sideOf(message.type) === 'visitor') visitor += 1;
      else agent += 1;
    }
    this.position = { ...this.position, visitor, agent };
    // A page cut by the size budget: more to read on the next call.
    if (visitor < read.offsets.visitor || agent < read.offsets.agent) this.dirty = true;
    return { ...readResponse(read), typing: toWireTyping(this.store.typingIn(this.chatId)) };
  }
}
