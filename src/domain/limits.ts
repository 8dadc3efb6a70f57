/** The bounds the domain enforces. Defaults and overrides live in src/server/config.ts. */
export interface Limits {
  /** Largest message content, in UTF-8 bytes. */
  readonly maxContentBytes: number;
  /** Largest file an attachment may refer to, in bytes (the bytes stay out of the chat server). */
  readonly maxAttachmentBytes: number;
  /** Largest chat, message, sender or agent id, in UTF-8 bytes. */
  readonly maxIdBytes: number;
  /** Budget for the messages of one response, in bytes (kept under gRPC's 4 MiB default). */
  readonly maxResponseBytes: number;
  /** Most chats one server holds. */
  readonly maxChats: number;
  /** Most messages one chat holds. */
  readonly maxMessagesPerChat: number;
  /** Most watch subscriptions one server serves, over all chats. */
  readonly maxWatchers: number;
  /**
   * How far ahead of the server's clock an uploaded send time may be, in milliseconds: client
   * clocks drift, but a message from the future would sort after every later one.
   */
  readonly maxClockSkewMs: number;
  /** Budget for the bytes one server holds, over all chats (see {@link heldBytes}). */
  readonly maxHeldBytes: number;
  /** Budget for the bytes one chat holds. */
  readonly maxChatBytes: number;
  /** What each held message (and each chat record) is counted beyond its strings' bytes. */
  readonly messageOverheadBytes: number;
  /** Heap in use, in percent of the heap limit, above which unwatched chats are evicted. */
  readonly heapHighWaterPercent: number;
  /** Eviction goes on until the heap in use is estimated below this percent of the limit. */
  readonly heapLowWaterPercent: number;
}

/** A source of the current time, injected so tests can fix it. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };
