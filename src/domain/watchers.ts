import { ChatError } from './errors.js';

/**
 * What happened to a watched chat: messages were added (a send or a merge), its state beside the
 * history changed (a read position, typing), or it was evicted.
 */
export type ChatChange = 'messages' | 'activity' | 'evicted';

/**
 * Told synchronously, right after the change, on the event loop turn that made it. A listener
 * must not throw (it runs inside the send or rebuild that changed the chat) and should do
 * little: note that there is something to read, and read it later.
 */
export type ChatListener = (change: ChatChange) => void;

/**
 * The listeners of each chat, by chat id, and the server-wide limit on how many there are.
 * A subscription is independent of the chat's incarnation: it lasts until it is cancelled,
 * across an eviction too (the listener hears 'evicted', and decides what to do).
 */
export class ChatWatchers {
  private readonly byChat = new Map<string, Set<ChatListener>>();
  private total = 0;

  constructor(private readonly maxWatchers: number) {}

  /** How many subscriptions are open, over all chats. */
  get size(): number {
    return this.total;
  }

  /** Whether anyone watches `chatId`. */
  watched(chatId: string): boolean {
    return this.byChat.has(chatId);
  }

  /**
   * Subscribes `listener` to `chatId`; returns the function that cancels it (idempotent).
   * Refused with RESOURCE_EXHAUSTED at the limit.
   */
  add(chatId: string, listener: ChatListener): () => void {
    if (this.total >= this.maxWatchers) {
      throw new ChatError(
        'resource-exhausted',
        `this server serves ${this.total} watchers, its limit; poll with GetNewMessage, or watch on another server`,
      );
    }
    // Each subscription gets its own entry, so one listener added twice is cancelled one at a time.
    const entry: ChatListener = (change) => listener(change);
    let listeners = this.byChat.get(chatId);
    if (!listeners) this.byChat.set(chatId, (listeners = new Set()));
    listeners.add(entry);
    this.total += 1;
    return () => {
      if (!listeners.delete(entry)) return;
      this.total -= 1;
      if (listeners.size === 0 && this.byChat.get(chatId) === listeners) this.byChat.delete(chatId);
    };
  }

  /** Tells every listener of `chatId`, in subscription order. */
  notify(chatId: string, change: ChatChange): void {
    const listeners = this.byChat.get(chatId);
    if (!listeners) return;
    // A copy: a listener may cancel its own or another subscription while being told.
    for (const listener of [...listeners]) if (listeners.has(listener)) listener(change);
  }
}
