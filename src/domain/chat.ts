import { interleave, type Page } from './conversation.js';
import { type MergePlan, planMerge } from './merge.js';
import { type Message, type NewMessage, type Offsets, type Side, type Visitor, sideOf } from './message.js';
import { chatRecordBytes, heldBytes, visitorBytes } from './held-bytes.js';
import { SideLog } from './side-log.js';

/** A client's copy of a chat, or part of it, as uploaded by Rebuild. */
export interface ChatCopy {
  readonly id: string;
  readonly visitor: Visitor | undefined;
  readonly beginTime: Date | undefined;
  /** Each message with the offset the client holds it at, in any order. */
  readonly messages: readonly Message[];
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
}

/**
 * One chat as a server holds it: the visitor side, the agent side and an index by id. Every
 * method runs to completion without yielding, so operations on one chat take effect in one
 * total order, and a send that arrives while a rebuild runs is applied after it.
 */
export class Chat {
  visitor: Visitor | undefined;
  private readonly sides: Readonly<Record<Side, SideLog>> = { visitor: new SideLog(), agent: new SideLog() };
  private readonly byId = new Map<string, Message>();

  /** When a request last touched the chat, for idle eviction. */
  lastActive: Date;

  private bytes: number;

  /**
   * @param epoch this incarnation's random id: within one epoch the server only ever adds
   *   messages, never moves one, so offsets under the same epoch name the same messages.
   * @param overheadBytes what each message and the chat record are counted beyond their strings
   */
  constructor(
    readonly id: string,
    readonly epoch: string,
    public beginTime: Date,
    private readonly overheadBytes = 0,
  ) {
    this.lastActive = beginTime;
    this.bytes = chatRecordBytes(id, undefined, overheadBytes);
  }

  /** What the chat holds, in bytes: its record and every message (see src/domain/held-bytes.ts). */
  get heldBytes(): number {
    return this.bytes;
  }

  /** The contiguous offsets of both sides. */
  get offsets(): Offsets {
    return { visitor: this.sides.visitor.contiguous, agent: this.sides.agent.contiguous };
  }

  /** How many messages the chat holds. */
  get size(): number {
    return this.byId.size;
  }

  /** The message with this id, on either side. */
  find(id: string): Message | undefined {
    return this.byId.get(id);
  }

  /** Appends a message at its side's next offset, stamped with `now`. */
  append(message: NewMessage, now: Date): Message {
    const stored = this.sides[sideOf(message.type)].append((dataOffset) => ({ ...message, dataOffset, sendTime: now }));
    this.byId.set(stored.id, stored);
    this.bytes += heldBytes(stored, this.overheadBytes);
    return stored;
  }

  /**
   * The contiguous messages above `from` on each side, in conversation order, cut to a prefix
   * that fits `budgetBytes`. O(k) for the k messages returned.
   */
  readAfter(from: Offsets, budgetBytes: number): Page {
    const { visitor, agent } = this.sides;
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
    return interleave(this.sides.visitor.reader(), this.sides.agent.reader(), budgetBytes);
  }

  /**
   * Merges a copy whose messages the caller has validated: a union by id. Messages already
   * held are left as they are (so the epoch stays); see {@link planMerge} for where new ones go.
   * In place: O(m log m) for m uploaded messages, however many the chat holds.
   */
  merge(copy: ChatCopy): MergeSummary {
    // Both sides are planned before either changes: a side that cannot take the upload (see
    // planMerge) throws with the chat as it was.
    const plans: MergePlan[] = [];
    for (const side of ['visitor', 'agent'] as const) {
      const uploaded = copy.messages.filter((m) => sideOf(m.type) === side);
      if (!uploaded.some((m) => !this.byId.has(m.id))) continue;
      plans.push(planMerge(this.sides[side], uploaded, (id) => this.byId.get(id)));
    }

    if (!this.visitor && copy.visitor) {
      this.visitor = copy.visitor;
      this.bytes += visitorBytes(copy.visitor);
    }
    if (copy.beginTime && copy.beginTime < this.beginTime) this.beginTime = copy.beginTime;
    let added = 0;
    let displaced = 0;
    for (const plan of plans) {
      const merged = plan.apply();
      for (const message of merged.placed) {
        this.byId.set(message.id, message);
        this.bytes += heldBytes(message, this.overheadBytes);
      }
      added += merged.placed.length;
      displaced += merged.displaced;
    }
    return { added, displaced };
  }
}
