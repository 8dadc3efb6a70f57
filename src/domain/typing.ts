import { ChatError } from './errors.js';
import { MAX_READERS_PER_CHAT } from './read-positions.js';

/** Someone typing in a chat, until `expireMs`. */
export interface TypingNow {
  readonly participantId: string;
  readonly expireMs: number;
}

/** What a SetTyping did: whether watchers must hear of it, and when the indication lapses. */
export interface TypingChange {
  readonly announce: boolean;
  /** Undefined after typing = false. */
  readonly expireMs: number | undefined;
}

interface Entry {
  expireMs: number;
  /** When watchers were last told of this participant's typing. */
  announcedMs: number;
}

/**
 * Who is typing in each chat: ephemeral state beside the history, never stored in it, never
 * uploaded or rebuilt, and lost with the server (a lapse is all a client would see). Each
 * indication lapses `ttlMs` after it was last renewed. Watchers are told of a participant who
 * starts or stops typing at once, and of one who keeps typing at most once per `throttleMs`:
 * renewals in between extend the indication silently.
 */
export class TypingBoard {
  private readonly byChat = new Map<string, Map<string, Entry>>();

  constructor(
    private readonly ttlMs: number,
    private readonly throttleMs: number,
  ) {}

  /** Whether anyone types anywhere (so lapsing has something to do). */
  get active(): boolean {
    return this.byChat.size > 0;
  }

  /** Records that `participantId` is typing (or stopped) at `nowMs`. */
  set(chatId: string, participantId: string, typing: boolean, nowMs: number): TypingChange {
    if (!typing) return { announce: this.clear(chatId, participantId), expireMs: undefined };
    let entries = this.byChat.get(chatId);
    const entry = entries?.get(participantId);
    const expireMs = nowMs + this.ttlMs;
    if (entry && entry.expireMs > nowMs) {
      entry.expireMs = expireMs;
      if (nowMs - entry.announcedMs < this.throttleMs) return { announce: false, expireMs };
      entry.announcedMs = nowMs;
      return { announce: true, expireMs };
    }
    if (!entries) this.byChat.set(chatId, (entries = new Map()));
    if (!entry && entries.size >= MAX_READERS_PER_CHAT) {
      throw new ChatError('resource-exhausted', `chat "${chatId}" already shows ${entries.size} participants typing, its limit`);
    }
    entries.set(participantId, { expireMs, announcedMs: nowMs });
    return { announce: true, expireMs };
  }

  /** Ends `participantId`'s indication (it stopped, or sent its message); returns whether there was one. */
  clear(chatId: string, participantId: string): boolean {
    const entries = this.byChat.get(chatId);
    if (!entries?.delete(participantId)) return false;
    if (entries.size === 0) this.byChat.delete(chatId);
    return true;
  }

  /** Who types in `chatId` at `nowMs`, in the order they started. */
  list(chatId: string, nowMs: number): TypingNow[] {
    const entries = this.byChat.get(chatId);
    if (!entries) return [];
    const typing: TypingNow[] = [];
    for (const [participantId, { expireMs }] of entries) if (expireMs > nowMs) typing.push({ participantId, expireMs });
    return typing;
  }

  /** Drops every indication lapsed by `nowMs`; returns the chats whose watchers must hear of it. */
  lapse(nowMs: number): string[] {
    const changed: string[] = [];
    for (const [chatId, entries] of this.byChat) {
      let lapsed = false;
      for (const [participantId, entry] of entries) {
        if (entry.expireMs <= nowMs) {
          entries.delete(participantId);
          lapsed = true;
        }
      }
      if (entries.size === 0) this.byChat.delete(chatId);
      if (lapsed) changed.push(chatId);
    }
    return changed;
  }

  /** Forgets a chat (evicted). */
  drop(chatId: string): void {
    this.byChat.delete(chatId);
  }
}
