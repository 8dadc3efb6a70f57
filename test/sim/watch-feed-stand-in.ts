import type { WatchChatRequest, WatchChatResponse } from '../../generated/chat/v1/chat.js';
import { type Position, sideOf } from '../../src/domain/message.js';
import type { ChatStore, ReadOutcome } from '../../src/domain/store.js';
import { readResponse } from '../../src/server/convert.js';

/**
 * TEMPORARY: the WatchFeed interface of branch server-watch (src/server/watch-feed.ts) and a
 * stand-in for its `watchChat` handler, written after src/server/watch.ts, so the simulation
 * runs until that branch is merged. Delete this file then.
 */
export interface WatchFeed {
  next(): WatchChatResponse | undefined;
  readonly done: boolean;
  onChange(listener: () => void): void;
  close(): void;
}

export function standInWatchChat(store: ChatStore, request: WatchChatRequest): WatchFeed {
  const { chatId, visitorOffset, agentOffset, epoch } = request;
  let dirty = false;
  let done = false;
  let listener: () => void = () => {};
  const unsubscribe = store.watch(chatId, () => {
    dirty = true;
    listener();
  });
  let first: ReadOutcome | undefined;
  try {
    first = store.getNewMessages(chatId, { visitor: visitorOffset, agent: agentOffset, epoch });
  } catch (error) {
    unsubscribe();
    throw error;
  }
  let position: Position = { visitor: visitorOffset, agent: agentOffset, epoch: first.epoch };
  const close = () => {
    done = true;
    unsubscribe();
  };
  return {
    get done() {
      return done;
    },
    onChange(l) {
      listener = l;
    },
    close,
    next() {
      if (done) return undefined;
      let read: ReadOutcome;
      if (first) {
        read = first;
        first = undefined;
      } else {
        if (!dirty) return undefined;
        dirty = false;
        read = store.readNew(chatId, position);
        if (!read.rebuildRequired && read.messages.length === 0) return undefined;
      }
      if (read.rebuildRequired) {
        close();
        return readResponse(read);
      }
      let { visitor, agent } = position;
      for (const m of read.messages) {
        if (sideOf(m.type) === 'visitor') visitor += 1;
        else agent += 1;
      }
      position = { ...position, visitor, agent };
      if (visitor < read.offsets.visitor || agent < read.offsets.agent) dirty = true;
      return readResponse(read);
    },
  };
}
