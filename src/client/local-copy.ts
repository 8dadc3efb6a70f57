import type { ChatMessage } from '../../generated/chat/v1/chat.js';
import { interleave } from '../domain/conversation.js';
import { type Offsets, type Side, sideOf } from './wire.js';

/**
 * A client's copy of one chat: messages by id and by side and offset, with the offsets as
 * contiguous prefixes. The server's word on where a message sits wins; a message of ours
 * whose offset the server gave to another one is never dropped: it becomes a stray, uploaded
 * again at the next rebuild so the server places it anew.
 */
export class LocalCopy {
  private readonly byId = new Map<string, ChatMessage>();
  private readonly slots: Record<Side, Map<number, string>> = { visitor: new Map(), agent: new Map() };
  private readonly contiguous: Record<Side, number> = { visitor: 0, agent: 0 };
  private readonly strays = new Map<string, ChatMessage>();

  constructor(messages: readonly ChatMessage[] = []) {
    this.take(messages);
  }

  /** The contiguous prefix held on each side. */
  get offsets(): Offsets {
    return { ...this.contiguous };
  }

  /** Messages whose offset another message took, waiting to be uploaded again. */
  get strayMessages(): ChatMessage[] {
    return [...this.strays.values()];
  }

  /** How many messages are held, strays included. */
  get size(): number {
    return this.byId.size + this.strays.size;
  }

  /**
   * Forgets where every message sits (they all become strays, none is dropped): the server's
   * order replaces ours as it is read again from offset 0.
   */
  unplaceAll(): void {
    for (const message of this.byId.values()) this.strays.set(message.id, message);
    this.byId.clear();
    for (const side of ['visitor', 'agent'] as const) {
      this.slots[side].clear();
      this.contiguous[side] = 0;
    }
  }

  /** The message with this id, placed or stray. */
  get(id: string): ChatMessage | undefined {
    return this.byId.get(id) ?? this.strays.get(id);
  }

  /** Whether the message with this id sits at an offset (is not a stray). */
  isPlaced(id: string): boolean {
    return this.byId.has(id);
  }

  /** Every message held, strays included: what a durable store keeps. */
  all(): ChatMessage[] {
    return [...this.byId.values(), ...this.strays.values()];
  }

  /** The placed messages in conversation order (by send time, visitor first on a tie). */
  conversation(): ChatMessage[] {
    const [visitor, agent] = (['visitor', 'agent'] as const).map((side) =>
      [...this.slots[side].keys()].sort((a, b) => a - b).map((offset) => this.byId.get(this.slots[side].get(offset)!)!),
    );
    return interleave((i) => visitor![i], (i) => agent![i]).messages;
  }

  /** Takes messages as the server placed them; returns the ones this copy did not hold before. */
  take(messages: readonly ChatMessage[]): ChatMessage[] {
    const fresh: ChatMessage[] = [];
    for (const message of messages) {
      if (!this.byId.has(message.id) && !this.strays.has(message.id)) fresh.push(message);
      this.place(message);
    }
    return fresh;
  }

  /**
   * Replaces the placement of every message with the server's complete view, after a rebuild
   * uploaded everything this copy held: messages the view lacks are kept as strays.
   */
  adopt(messages: readonly ChatMessage[]): ChatMessage[] {
    const known = new Set(this.all().map((m) => m.id));
    this.unplaceAll();
    this.take(messages);
    return messages.filter((m) => !known.has(m.id));
  }

  /**
   * What a rebuild uploads to a server with this copy's history that holds `server`: the
   * placed messages above its offsets, ordered by offset so each upload extends the server's
   * contiguous prefix, then the strays, renumbered to follow them (see {@link whole}).
   */
  above(server: Offsets): ChatMessage[] {
    const placed = [...this.byId.values()].filter((m) => m.dataOffset > server[sideOf(m)]);
    const last = { visitor: server.visitor, agent: server.agent };
    for (const m of placed) last[sideOf(m)] = Math.max(last[sideOf(m)], m.dataOffset);
    return byOffset([...placed, ...this.renumberedStrays(last)]);
  }

  /**
   * What a rebuild uploads to a server whose history is not this copy's (another epoch, or
   * none): every placed message, each side renumbered 1, 2, 3, ... in its order, then the
   * strays after them. A copy can hold its own sends beyond a gap (messages of others it never
   * read); claiming those offsets on a new server would leave a hole there that nobody may ever
   * fill, and nothing above a hole can be read. Renumbered, they extend the server's sides
   * without gaps.
   */
  whole(): ChatMessage[] {
    const ranked: ChatMessage[] = [];
    for (const side of ['visitor', 'agent'] as const) {
      const offsets = [...this.slots[side].keys()].sort((a, b) => a - b);
      offsets.forEach((offset, i) => ranked.push({ ...this.byId.get(this.slots[side].get(offset)!)!, dataOffset: i + 1 }));
    }
    return byOffset([...ranked, ...this.renumberedStrays({ visitor: this.slots.visitor.size, agent: this.slots.agent.size })]);
  }

  /**
   * The strays, each side in its old order, claiming the offsets right after `last`. Their old
   * offsets are no use: another message holds each, several strays may share one (the server
   * refuses an upload that claims an offset twice), and one far above `last` would leave a
   * hole where later sends land before messages sent earlier.
   */
  private renumberedStrays(last: Offsets): ChatMessage[] {
    const next = { ...last };
    return [...this.strays.values()]
      .sort((a, b) => a.dataOffset - b.dataOffset)
      .map((m) => ({ ...m, dataOffset: (next[sideOf(m)] += 1) }));
  }

  private place(message: ChatMessage): void {
    const side = sideOf(message);
    const slots = this.slots[side];
    const previous = this.byId.get(message.id);
    if (previous && previous.dataOffset === message.dataOffset && sideOf(previous) === side) return;
    if (previous) this.vacate(previous);
    const occupant = slots.get(message.dataOffset);
    if (occupant !== undefined && occupant !== message.id) {
      const displaced = this.byId.get(occupant)!;
      this.vacate(displaced);
      this.strays.set(displaced.id, displaced);
    }
    this.strays.delete(message.id);
    this.byId.set(message.id, message);
    slots.set(message.dataOffset, message.id);
    while (slots.has(this.contiguous[side] + 1)) this.contiguous[side] += 1;
  }

  private vacate(message: ChatMessage): void {
    const side = sideOf(message);
    this.byId.delete(message.id);
    if (this.slots[side].get(message.dataOffset) === message.id) this.slots[side].delete(message.dataOffset);
    if (message.dataOffset <= this.contiguous[side]) this.contiguous[side] = message.dataOffset - 1;
  }
}

/** Ordered by offset (visitor first on a tie), so each upload extends the server's prefixes. */
function byOffset(messages: ChatMessage[]): ChatMessage[] {
  return messages.sort((a, b) => a.dataOffset - b.dataOffset || Number(sideOf(a) === 'agent') - Number(sideOf(b) === 'agent'));
}
