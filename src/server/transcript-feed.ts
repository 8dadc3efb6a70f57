import type { WatchTranscriptsResponse } from '../../generated/chat/v1/chat.js';
import type { ChatStore } from '../domain/store.js';
import type { Transcript } from '../domain/transcripts.js';
import { toWireTranscript } from './convert.js';
import type { WatchFeed } from './watch-feed.js';

/**
 * A WatchTranscripts stream's feed: every transcript not acknowledged when it opens, then each
 * one offered, in the order offered. A chat offered again before its last offer went out is sent
 * once, as it is then (its latest revision). A transcript is read from the store as it is sent,
 * except the last offer of a chat being evicted, which comes taken.
 */
export function openTranscriptFeed(store: ChatStore): WatchFeed<WatchTranscriptsResponse> {
  const queue = new Map<string, Transcript | undefined>();
  let listener = () => {};
  let unsubscribe: () => void = () => {};
  unsubscribe = store.listenTranscripts(({ chatId, final }) => {
    queue.delete(chatId); // to the end: offered again, it goes out as it is by then
    queue.set(chatId, final);
    listener();
  });
  return {
    done: false,
    next() {
      for (const [chatId, final] of queue) {
        queue.delete(chatId);
        const transcript = final ?? store.transcript(chatId);
        if (transcript) return toWireTranscript(transcript);
      }
      return undefined;
    },
    onChange(heard) {
      listener = heard;
    },
    close() {
      unsubscribe();
      queue.clear();
    },
  };
}
