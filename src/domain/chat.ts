import { furtherThan, interleave, type Page } from './conversation.js';
import { type MergePlan, planMerge } from './merge.js';
import { extrasOf, type Message, type NewMessage, type Offsets, type Side, type Visitor, sideOf } from './message.js';
import { chatRecordBytes, heldBytes, visitorBytes } from './held-bytes.js';
import { SideLog } from './side-log.js';
import { isEnd } from './events.js';
import { type ReadPosition, readPositionBytes } from './read-positions.js';

/** A client's copy of a chat, or part of it, as uploaded by Rebuild. */
export interface ChatCopy {
  readonly id: string;
  readonly visitor: Visitor | undefined;
  readonly beginTime: Date | undefined;
  /** Each message with the offset the client holds it at, in any order. */
  readonly messages: readonly Message[];
  /** The readers' positions the client holds; each names a message the chat holds or the copy carries. */
  readonly readPositions?: readonly ReadPosition[];
  /**
   * The incarnation this upload extends (an incremental upload, or a later part of a copy sent
   * in several calls): merged only into that one. Empty or absent: a whole copy, merged into any.
   */
  readonly epoch?: string;
}

/** What a merge changed. */
export interface MergeSummary {
  /** Uploaded messages the chat did not hold. */
  readonly added: number;
  /** Of those, how many could not keep their claimed offset. */
  readonly displaced: number;
  /** Read positions the upload moved further (or added). */
  readonly readsMoved: number;
}

/** The read positions of a chat nobody marked. */
const NO_READS: readonly ReadPosition[] = Object.freeze([]);

/** The empty side a chat without messages on it reads from. */
const NO_MESSAGES = new SideLog();

/**
 * One chat as a server holds it: the visitor side, the agent side and an index by id. Every
 * method runs to completion without yielding, so operations on one chat take effect in one
 * total order, and a send that arrives while a rebuild runs is applied after it. An empty chat
 * holds no side and no index until its first message: a server holds many of them.
 */
export class Chat {
  visitor: Visitor | undefined;
  private visitorSide: SideLog | undefined;
  private agentSide: SideLog | undefined;
  /** Each message's place by id: its offset times two, plus one on the agent side. */
  private byId: Map<string, number> | undefined;
  private beginMs: number;
  /** The send time of the earliest end the chat holds; undefined while it has not ended. */
  private endMs: number | undefined;
  /** Each reader's furthest position, made on the first. */
  private reads: Map<string, ReadPosition> | undefined;

  /** When a request last touched the chat (ms since the epoch), for idle eviction. */
  lastActiveMs: number;

  private bytes: number;

  /**
   * @param epoch this incarnation's random id: within one epoch the server only ever adds
   *   messages, never moves one, so offsets under the same epoch name the same messages.
   * @param overheadBytes what each message and the chat record are counted beyond their strings
   */
  constructor(
    readonly id: string,
    readonly epoch: string,
    beginTime: Date,
    private readonly overheadBytes = 0,
  ) {
    this.beginMs = beginTime.getTime();
    this.lastActiveMs = this.beginMs;
    this.bytes = chatRecordBytes(id, undefined, overheadBytes);
  }

  /** When the chat began: its creation, or the earliest begin time an upload gave. */
  get beginTime(): Date {
    return new Date(this.beginMs);
  }

  /** When the chat ended (the earliest end it holds), or undefined while it has not. */
  get endTime(): Date | undefined {
    return this.endMs === undefined ? undefined : new Date(this.endMs);
  }

  /** Whether the chat holds an end: sends are refused from then on. */
  get ended(): boolean {
    return this.endMs !== undefined;
  }

  /** Every reader's position, in the order readers first marked (one shared empty list while there is none: every read answers them). */
  get readPositions(): readonly ReadPosition[] {
    return this.reads ? [...this.reads.values()] : NO_READS;
  }

  /** How many readers have a position. */
  get readerCount(): number {
    return this.reads?.size ?? 0;
  }

  /** Whether `readerId` has a position. */
  hasReader(readerId: string): boolean {
    return this.reads?.has(readerId) ?? false;
  }

  /**
   * Moves a reader's position to `position` when its message lies further than the one held
   * (see {@link furtherThan}); the message must be one the chat holds. Returns whether it moved.
   */
  markRead(position: ReadPosition): boolean {
    const message = this.find(position.messageId);
    if (!message) throw new Error(`read position names message "${position.messageId}", which chat "${this.id}" does not hold`);
    const held = this.reads?.get(position.readerId);
    if (held) {
      const at = this.find(held.messageId)!;
      if (!furtherThan(message, at)) return false;
      this.bytes -= readPositionBytes(held, this.overheadBytes);
    }
    (this.reads ??= new Map()).set(position.readerId, position);
    this.bytes += readPositionBytes(position, this.overheadBytes);
    return true;
  }

  /** What the chat holds, in bytes: its record and every message (see src/domain/held-bytes.ts). */
  get heldBytes(): number {
    return this.bytes;
  }

  /** The contiguous offsets of both sides. */
  get offsets(): Offsets {
    return { visitor: this.visitorSide?.contiguous ?? 0, agent: this.agentSide?.contiguous ?? 0 };
  }

  /** How many messages the chat holds. */
  get size(): number {
    return this.byId?.size ?? 0;
  }

  /** The message with this id, on either side. */
  find(id: string): Message | undefined {
    const place = this.byId?.get(id);
    if (place === undefined) return undefined;
    return (place % 2 === 1 ? this.agentSide : this.visitorSide)?.get(Math.floor(place / 2));
  }

  /** The offset of the message with this id, on whichever side holds it. */
  offsetOf(id: string): number | undefined {
    const place = this.byId?.get(id);
    return place === undefined ? undefined : Math.floor(place / 2);
  }

  /** Appends a message at its side's next offset, stamped with `now`. */
  append(message: NewMessage, now: Date): Message {
    const side = sideOf(message.type);
    const { id, content, type, senderId, seal } = message;
    const stored = this.side(side).append((dataOffset) => {
      const plain: Message = seal === undefined ? { id, dataOffset, content, type, sendTime: now, senderId } : { id, dataOffset, content, type, sendTime: now, senderId, seal };
      return message.event === undefined && message.attachments === undefined ? plain : { ...plain, ...extrasOf(message) };
    });
    this.index(side, stored);
    this.bytes += heldBytes(stored, this.overheadBytes);
    this.noteEnd(stored);
    return stored;
  }

  /**
   * The contiguous messages above `from` on each side, in conversation order, cut to a prefix
   * that fits `budgetBytes`. O(k) for the k messages returned.
   */
  readAfter(from: Offsets, budgetBytes: number): Page {
    const visitor = this.visitorSide ?? NO_MESSAGES;
    const agent = this.agentSide ?? NO_MESSAGES;
    return interleave(
      (i) => visitor.at(from.visitor + 1 + i),
      (i) => agent.at(from.agent + 1 + i),
      budgetBytes,
    );
  }

  /**
   * Every message held (beyond gaps too), in conversation order, cut to `budgetBytes`. O(k) for
   * the k messages returned, whatever the chat's size.
   */
  snapshot(budgetBytes: number): Page {
    return interleave((this.visitorSide ?? NO_MESSAGES).reader(), (this.agentSide ?? NO_MESSAGES).reader(), budgetBytes);
  }

  /**
   * Merges a copy whose messages the caller has validated: a union by id. Messages already
   * held are left as they are (so the epoch stays); see {@link planMerge} for where new ones go.
   * In place: O(m log m) for m uploaded messages, however many the chat holds.
   */
  merge(copy: ChatCopy): MergeSummary {
    // Both sides are planned before either changes: a side that cannot take the upload (see
    // planMerge) throws with the chat as it was.
    const plans: { readonly side: Side; readonly plan: MergePlan }[] = [];
    for (const side of ['visitor', 'agent'] as const) {
      const uploaded = copy.messages.filter((m) => sideOf(m.type) === side);
      if (!uploaded.some((m) => !this.byId?.has(m.id))) continue;
      plans.push({ side, plan: planMerge(this.side(side), uploaded, (id) => this.offsetOf(id)) });
    }

    if (!this.visitor && copy.visitor) {
      this.visitor = copy.visitor;
      this.bytes += visitorBytes(copy.visitor);
    }
    if (copy.beginTime && copy.beginTime.getTime() < this.beginMs) this.beginMs = copy.beginTime.getTime();
    let added = 0;
    let displaced = 0;
    for (const { side, plan } of plans) {
      const merged = plan.apply();
      for (const message of merged.placed) {
        this.index(side, message);
        this.bytes += heldBytes(message, this.overheadBytes);
        this.noteEnd(message);
      }
      added += merged.placed.length;
      displaced += merged.displaced;
    }
    // After the messages: a position may name a message this very upload brought.
    let readsMoved = 0;
    for (const position of copy.readPositions ?? []) if (this.markRead(position)) readsMoved += 1;
    return { added, displaced, readsMoved };
  }

  /** Keeps the earliest end: two ends (made on two servers apart) leave the chat ended at the first. */
  private noteEnd(message: Message): void {
    if (!isEnd(message)) return;
    const ms = message.sendTime.getTime();
    if (this.endMs === undefined || ms < this.endMs) this.endMs = ms;
  }

  /** A side, made on first use. */
  private side(side: Side): SideLog {
    if (side === 'visitor') return (this.visitorSide ??= new SideLog());
    return (this.agentSide ??= new SideLog());
  }

  private index(side: Side, message: Message): void {
    (this.byId ??= new Map()).set(message.id, message.dataOffset * 2 + (side === 'agent' ? 1 : 0));
  }
}
