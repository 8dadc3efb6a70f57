import type { Message, Visitor } from './message.js';
import type { ReadPosition } from './read-positions.js';

/** The final history of an ended chat, as offered to an archiver. */
export interface Transcript {
  readonly chatId: string;
  readonly epoch: string;
  readonly visitor: Visitor | undefined;
  readonly beginTime: Date;
  readonly endTime: Date;
  /** In conversation order; a prefix when `truncated` (the rest is read with GetNewMessage). */
  readonly messages: readonly Message[];
  readonly truncated: boolean;
  /** How many messages the chat holds: the transcript's revision within its epoch. */
  readonly messageCount: number;
  readonly readPositions: readonly ReadPosition[];
}

/**
 * What a transcript listener is told: a chat to offer (read it from the store when it is sent), or
 * a transcript already taken (its chat is being evicted: there is nothing left to read later).
 */
export type TranscriptOffer = { readonly chatId: string; readonly final?: Transcript };

interface Pending {
  readonly epoch: string;
  readonly messageCount: number;
}

/**
 * The transcripts a server has to offer: each ended chat whose latest revision nobody
 * acknowledged. Offers are at least once: a new listener is given every pending one, and a
 * revision is pending until acknowledged (or its chat is evicted, after a last offer).
 */
export class TranscriptDesk {
  private readonly pending = new Map<string, Pending>();
  private readonly listeners = new Set<(offer: TranscriptOffer) => void>();

  /** How many transcripts wait for an acknowledgement. */
  get size(): number {
    return this.pending.size;
  }

  /** Whether `chatId` has a transcript nobody acknowledged. */
  isPending(chatId: string): boolean {
    return this.pending.has(chatId);
  }

  /** Marks a revision pending and tells every listener. */
  offer(chatId: string, epoch: string, messageCount: number): void {
    this.pending.set(chatId, { epoch, messageCount });
    for (const listener of [...this.listeners]) listener({ chatId });
  }

  /** The chat is being evicted: a last offer of what it held, and it is pending no more. */
  last(transcript: Transcript): void {
    this.pending.delete(transcript.chatId);
    for (const listener of [...this.listeners]) listener({ chatId: transcript.chatId, final: transcript });
  }

  /**
   * Acknowledges a revision: it is pending no more unless the chat has grown past it (or is
   * another incarnation). Returns whether it was pending.
   */
  ack(chatId: string, epoch: string, messageCount: number): boolean {
    const pending = this.pending.get(chatId);
    if (!pending || pending.epoch !== epoch || pending.messageCount > messageCount) return false;
    this.pending.delete(chatId);
    return true;
  }

  /** Subscribes; the listener is told of every pending chat at once, then of each offer. Returns the unsubscribe. */
  listen(listener: (offer: TranscriptOffer) => void): () => void {
    this.listeners.add(listener);
    for (const chatId of this.pending.keys()) listener({ chatId });
    return () => this.listeners.delete(listener);
  }
}
