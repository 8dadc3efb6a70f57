import type { Message } from './message.js';

/**
 * One side of a chat: messages by offset. Offsets 1..contiguous are held in an array, so a
 * read from any offset is O(1) to find plus O(k) to copy; messages uploaded above a gap wait
 * in a map until the gap is filled.
 */
export class SideLog {
  private readonly prefix: Message[] = [];
  private readonly beyondGap = new Map<number, Message>();

  /**
   * Builds a log from messages with distinct offsets, in any order. Throws, rather than keep one
   * of two messages at the same offset (or one at an offset that is not a safe whole number
   * from 1), so a log can never silently lose a message.
   */
  static of(messages: Iterable<Message>): SideLog {
    const log = new SideLog();
    for (const message of messages) {
      const offset = message.dataOffset;
      if (!Number.isSafeInteger(offset) || offset < 1) throw new Error(`message "${message.id}" has offset ${offset}, not a safe whole number from 1`);
      const other = log.beyondGap.get(offset);
      if (other) throw new Error(`messages "${other.id}" and "${message.id}" both have offset ${offset}`);
      log.beyondGap.set(offset, message);
    }
    log.absorb();
    return log;
  }

  /** How many messages are held contiguously from offset 1. */
  get contiguous(): number {
    return this.prefix.length;
  }

  /** How many messages are held in all, gaps or not. */
  get size(): number {
    return this.prefix.length + this.beyondGap.size;
  }

  /** The message at a 1-based offset within the contiguous prefix, if any. */
  at(offset: number): Message | undefined {
    return this.prefix[offset - 1];
  }

  /** Whether any message holds this offset. */
  holds(offset: number): boolean {
    return offset <= this.prefix.length ? offset >= 1 : this.beyondGap.has(offset);
  }

  /** Appends at the next contiguous offset, which is always free. */
  append(build: (offset: number) => Message): Message {
    const message = build(this.prefix.length + 1);
    this.prefix.push(message);
    this.absorb();
    return message;
  }

  /** Every message held, ordered by offset. */
  all(): Message[] {
    const rest = [...this.beyondGap.values()].sort((a, b) => a.dataOffset - b.dataOffset);
    return rest.length === 0 ? [...this.prefix] : [...this.prefix, ...rest];
  }

  private absorb(): void {
    for (let next = this.beyondGap.get(this.prefix.length + 1); next; next = this.beyondGap.get(this.prefix.length + 1)) {
      this.beyondGap.delete(next.dataOffset);
      this.prefix.push(next);
    }
  }
}
