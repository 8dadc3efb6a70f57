import { type ChatMessage, EventKind, type ReadPosition, type Visitor } from '../../generated/chat/v1/chat.js';
import { furtherThan } from '../domain/conversation.js';
import { LocalCopy } from './local-copy.js';
import type { LocalChatState, LocalStore, PendingMessage } from './local-store.js';
import { clientOffsets, type ClientOffsets, type Offsets, position } from './wire.js';

/** What a LocalChat reports. */
export interface LocalChatEvents {
  /** A message the copy did not hold before, once it is saved. */
  message(message: ChatMessage): void;
  /** The copy now follows another server incarnation (it adopted that server's order). */
  epoch(epoch: string): void;
  /** A reader's position moved (this device's own marks included), once it is saved. */
  read?(position: ReadPosition): void;
}

/**
 * Everything a session holds of its chat: the copy, the epoch its offsets refer to, the
 * visitor and begin time, and the outbox; and the one rule about where placements may come
 * from. Every message is placed through {@link take} (or {@link adopt}) with the epoch of the
 * answer that carried it, and `take` refuses an answer of another incarnation than the copy's.
 * So the copy's placed messages are always exactly some one incarnation's (docs/protocol.md,
 * Lemma 2), whatever streams and calls to other servers are still in flight.
 */
export class LocalChat {
  readonly copy: LocalCopy;
  outbox: PendingMessage[];
  visitor: Visitor | undefined;
  beginTime: Date | undefined;
  /** The server chat incarnation the copy's offsets refer to; undefined until a server says. */
  private currentEpoch: string | undefined;
  /** The copy holds messages but no epoch: it must be checked against a server before use. */
  unverified: boolean;
  /** Each reader's furthest position known here, by reader id. */
  private readonly reads = new Map<string, ReadPosition>();
  /** Readers whose held position is this device's own mark that no server acknowledged yet. */
  private readonly unsent = new Set<string>();
  /** A server said the chat ended (its history may not have reached this copy yet). */
  private endedFlag = false;

  constructor(
    readonly chatId: string,
    private readonly store: LocalStore,
    /** Whether epochs are carried (false: the original offsets-only protocol). */
    readonly detects: boolean,
    saved: LocalChatState | undefined,
    visitor: Visitor | undefined,
    private readonly events: LocalChatEvents,
  ) {
    this.copy = new LocalCopy(saved?.messages ?? []);
    this.outbox = [...(saved?.outbox ?? [])];
    this.visitor = saved?.visitor ?? visitor;
    this.beginTime = saved?.beginTime;
    this.currentEpoch = saved?.epoch;
    this.unverified = detects && this.currentEpoch === undefined && this.copy.size > 0;
    for (const position of saved?.readPositions ?? []) this.reads.set(position.readerId, position);
    for (const readerId of saved?.unsentReads ?? []) this.unsent.add(readerId);
  }

  /** Whether the chat has ended: the copy holds an ENDED event, or a server said so. */
  get ended(): boolean {
    return this.endedFlag || this.endMessage() !== undefined;
  }

  /** The ENDED event message the copy holds, if any. */
  endMessage(): ChatMessage | undefined {
    return this.copy.all().find((m) => m.event?.kind === EventKind.EVENT_KIND_ENDED);
  }

  /** Notes a server's `ended` flag (a flag once set stays: an end is never undone). */
  noteEnded(ended: boolean): void {
    if (ended) this.endedFlag = true;
  }

  get readPositions(): ReadPosition[] {
    return [...this.reads.values()];
  }

  /**
   * Merges read positions (a server's, or this device's own mark), keeping each reader's
   * furthest by the messages' send time then id, the order every server uses too. A position
   * whose message (or whose held one's) the copy lacks cannot be ranked here: it is kept as
   * given, the newer word. Saves and reports the positions that moved. `own`: this device's
   * mark, held back from uploads until a server acknowledges it.
   */
  async takeReads(positions: readonly ReadPosition[], own = false): Promise<void> {
    const moved: ReadPosition[] = [];
    let changed = false;
    for (const position of positions) {
      const held = this.reads.get(position.readerId);
      if (held && held.messageId === position.messageId) {
        // The server's word on our own mark: now it may be uploaded (with the server's seal).
        if (!own && (this.unsent.delete(position.readerId) || held.seal !== position.seal)) {
          this.reads.set(position.readerId, position);
          changed = true;
        }
        continue;
      }
      if (held && !this.further(position, held)) continue;
      this.reads.set(position.readerId, position);
      if (own) this.unsent.add(position.readerId);
      else this.unsent.delete(position.readerId);
      moved.push(position);
    }
    if (moved.length === 0 && !changed) return;
    await this.persist();
    for (const position of moved) this.events.read?.(position);
  }

  /** This device's own marks no server acknowledged yet (a crash came in between, say). */
  get unsentReads(): ReadPosition[] {
    return this.readPositions.filter((p) => this.unsent.has(p.readerId));
  }

  /**
   * The positions a rebuild may upload: those whose message the upload carries or the server
   * holds (`held`), so the server never refuses the upload for a position it cannot place.
   */
  uploadableReads(held: (messageId: string) => boolean): ReadPosition[] {
    return this.readPositions.filter((p) => !this.unsent.has(p.readerId) && held(p.messageId));
  }

  private further(a: ReadPosition, b: ReadPosition): boolean {
    const [x, y] = [this.copy.get(a.messageId), this.copy.get(b.messageId)];
    if (!x?.sendTime || !y?.sendTime) return true;
    return furtherThan({ sendTime: x.sendTime, id: x.id }, { sendTime: y.sendTime, id: y.id });
  }

  get epoch(): string | undefined {
    return this.currentEpoch;
  }

  get offsets(): Offsets {
    return this.copy.offsets;
  }

  get publicOffsets(): ClientOffsets {
    return clientOffsets(this.copy.offsets);
  }

  /** The epoch to send: this copy's, or none in offsets-only mode. */
  get marker(): string {
    return this.detects ? (this.currentEpoch ?? '') : '';
  }

  /** The copy's position, as a send, read or watch request carries it. */
  position(): ReturnType<typeof position> {
    return position(this.chatId, this.copy.offsets, this.marker);
  }

  /**
   * Places messages as the server incarnation `epoch` gave them; returns those the copy did not
   * hold before, or undefined, changing nothing, when `epoch` is not the copy's: those offsets
   * number another history. A copy without an epoch takes the first one it is given (it is
   * empty, or was just checked), unless it is unverified.
   */
  take(messages: readonly ChatMessage[], epoch: string): ChatMessage[] | undefined {
    if (this.detects) {
      if (this.currentEpoch === undefined) {
        if (this.unverified) return undefined;
        if (epoch) this.currentEpoch = epoch;
      } else if (epoch !== this.currentEpoch) return undefined;
    }
    return this.copy.take(messages);
  }

  /**
   * Replaces the placement of every message with incarnation `epoch`'s complete view, after a
   * rebuild uploaded everything this copy held; messages the view lacks stay, as strays.
   */
  adopt(view: readonly ChatMessage[], epoch: string): ChatMessage[] {
    const fresh = this.copy.adopt(view);
    this.unverified = false; // checked: follow() below is a no-op in offsets-only mode
    this.follow(epoch);
    return fresh;
  }

  /** Follows incarnation `epoch` from now on (its history extends this copy's). */
  follow(epoch: string): void {
    if (!this.detects || !epoch) return;
    this.unverified = false;
    const changed = this.currentEpoch !== undefined && this.currentEpoch !== epoch;
    this.currentEpoch = epoch;
    if (changed) this.events.epoch(epoch);
  }

  /** Saves the state, then announces `fresh` (saved first, so an announced message is durable). */
  async save(fresh: readonly ChatMessage[] = []): Promise<void> {
    await this.persist();
    for (const message of fresh) this.events.message(message);
  }

  /** Like {@link save}, but saves only when there is something to announce. */
  async announce(fresh: readonly ChatMessage[]): Promise<void> {
    if (fresh.length > 0) await this.save(fresh);
  }

  persist(): Promise<void> {
    return this.store.save({
      chatId: this.chatId,
      messages: this.copy.all(),
      outbox: this.outbox,
      visitor: this.visitor,
      beginTime: this.beginTime,
      epoch: this.currentEpoch,
      readPositions: this.readPositions,
      unsentReads: [...this.unsent],
    });
  }
}
