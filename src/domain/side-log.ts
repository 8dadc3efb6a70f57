import { MessageColumns } from './message-columns.js';
import type { Message } from './message.js';

/**
 * One side of a chat: messages by offset. Offsets 1..contiguous are held as columns (see
 * {@link MessageColumns}), so a read from any offset is O(1) to find plus O(k) to copy; messages
 * uploaded above a gap wait in a map (by offset) and an ordered run list until the gap is
 * filled. Every change is in place and touches only the messages it adds: a side is never
 * copied or rebuilt. A message read back is a new object each time, equal to the one stored.
 */
export class SideLog {
  private readonly prefix = new MessageColumns();
  /** Made on the first message held beyond a gap (an upload's), with its ordered runs. */
  private beyond: { readonly byOffset: Map<number, Message>; readonly ordered: OrderedRuns } | undefined;
  /** The highest offset ever held beyond a gap (held still, in the map or absorbed). */
  private highest = 0;

  /**
   * Builds a log from messages with distinct offsets, in any order. Throws, rather than keep one
   * of two messages at the same offset (or one at an offset that is not a safe whole number
   * from 1), so a log can never silently lose a message.
   */
  static of(messages: Iterable<Message>): SideLog {
    const log = new SideLog();
    const sorted = [...messages].sort((a, b) => a.dataOffset - b.dataOffset);
    for (const message of sorted) log.insert(message);
    return log;
  }

  /** How many messages are held contiguously from offset 1. */
  get contiguous(): number {
    return this.prefix.length;
  }

  /** How many messages are held in all, gaps or not. */
  get size(): number {
    return this.prefix.length + (this.beyond?.byOffset.size ?? 0);
  }

  /** The highest offset held, gaps or not (0 for an empty side). O(1). */
  get last(): number {
    return Math.max(this.prefix.length, this.highest);
  }

  /** The message at a 1-based offset within the contiguous prefix, if any. */
  at(offset: number): Message | undefined {
    return this.prefix.message(offset - 1, offset);
  }

  /** The message at a 1-based offset, within the prefix or beyond a gap, if any. */
  get(offset: number): Message | undefined {
    return offset <= this.prefix.length ? this.at(offset) : this.beyond?.byOffset.get(offset);
  }

  /** Whether any message holds this offset. O(1). */
  holds(offset: number): boolean {
    return offset <= this.prefix.length ? offset >= 1 : (this.beyond?.byOffset.has(offset) ?? false);
  }

  /** Appends at the next contiguous offset, which is always free. */
  append(build: (offset: number) => Message): Message {
    const message = build(this.prefix.length + 1);
    this.prefix.push(message);
    this.absorb();
    return message;
  }

  /**
   * Holds a message at its own offset, which must be free (the caller checked {@link holds}).
   * O(1) at the contiguous end or past the last offset; O(log g) plus a bounded shift within
   * one run for a message among the g held beyond a gap.
   */
  insert(message: Message): Message {
    const offset = message.dataOffset;
    // Never keep one of two messages at one offset (or one at no offset): a log loses nothing.
    if (!Number.isSafeInteger(offset) || offset < 1) throw new Error(`message "${message.id}" has offset ${offset}, not a safe whole number from 1`);
    if (this.holds(offset)) throw new Error(`message "${message.id}" claims offset ${offset}, which another message holds`);
    if (offset === this.prefix.length + 1) {
      this.prefix.push(message);
      this.absorb();
    } else {
      this.beyond ??= { byOffset: new Map(), ordered: new OrderedRuns() };
      this.beyond.byOffset.set(offset, message);
      this.beyond.ordered.insert(message);
      this.highest = Math.max(this.highest, offset);
    }
    return message;
  }

  /**
   * Reads the held messages in offset order by 0-based index, gaps skipped: the prefix, then
   * what lies beyond a gap. For indices read in increasing order (as a page is), each read is
   * O(1); the reader is valid until the log changes.
   */
  reader(): (index: number) => Message | undefined {
    const { prefix } = this;
    const rest = this.beyond?.ordered.reader() ?? (() => undefined);
    return (index) => (index < prefix.length ? prefix.message(index, index + 1) : rest(index - prefix.length));
  }

  /** Every message held, ordered by offset. O(n). */
  all(): Message[] {
    const read = this.reader();
    const messages: Message[] = [];
    for (let index = 0, size = this.size; index < size; index += 1) messages.push(read(index)!);
    return messages;
  }

  /** Moves what a filled gap joined to the prefix: each message moves once, O(1) amortized. */
  private absorb(): void {
    const { beyond } = this;
    if (!beyond) return;
    let absorbed = 0;
    for (let next = beyond.byOffset.get(this.prefix.length + 1); next; next = beyond.byOffset.get(this.prefix.length + 1)) {
      beyond.byOffset.delete(next.dataOffset);
      this.prefix.push(next);
      absorbed += 1;
    }
    // The beyond-gap offsets are all above the prefix, so the absorbed ones are the lowest.
    if (absorbed > 0) beyond.ordered.dropFirst(absorbed);
    if (beyond.byOffset.size === 0) this.beyond = undefined;
  }
}

/** Longest run before it is split in two. */
const MAX_RUN = 1024;

/**
 * Messages ordered by offset, in runs of at most {@link MAX_RUN}: an insert finds its run by
 * binary search over the runs' last offsets and its place by binary search within the run, and
 * shifts at most one run (plus, on a split, the list of runs, 1/512 of the messages).
 */
class OrderedRuns {
  private readonly runs: Message[][] = [];

  /** Removes the `count` lowest messages. O(count + runs). */
  dropFirst(count: number): void {
    let whole = 0;
    while (whole < this.runs.length && count >= this.runs[whole]!.length) count -= this.runs[whole++]!.length;
    this.runs.splice(0, whole);
    if (count > 0) this.runs[0]?.splice(0, count);
  }

  insert(message: Message): void {
    const offset = message.dataOffset;
    const { runs } = this;
    const lastRun = runs.at(-1);
    if (!lastRun || lastRun.at(-1)!.dataOffset < offset) {
      // Past the end: the common case (messages moved after the side's last offset).
      if (!lastRun || lastRun.length >= MAX_RUN) runs.push([message]);
      else lastRun.push(message);
      return;
    }
    const r = firstAtOrAbove(runs.length, (i) => runs[i]!.at(-1)!.dataOffset, offset);
    const run = runs[r]!;
    run.splice(firstAtOrAbove(run.length, (i) => run[i]!.dataOffset, offset), 0, message);
    if (run.length > MAX_RUN) runs.splice(r + 1, 0, run.splice(MAX_RUN / 2));
  }

  /** Reads by 0-based index; O(1) a read for increasing indices, O(runs) for a jump back. */
  reader(): (index: number) => Message | undefined {
    let run = 0;
    let start = 0; // the index of runs[run][0]
    return (index) => {
      if (index < start) {
        run = 0;
        start = 0;
      }
      while (run < this.runs.length && index >= start + this.runs[run]!.length) {
        start += this.runs[run]!.length;
        run += 1;
      }
      return this.runs[run]?.[index - start];
    };
  }
}

/** The first index in 0..length-1 whose key is >= target (keys ascending), or length. */
function firstAtOrAbove(length: number, key: (index: number) => number, target: number): number {
  let lo = 0;
  let hi = length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (key(mid) < target) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
