import type { Message } from './message.js';

/** A participant's read position: the last message it has read, by id (offsets are renumbered). */
export interface ReadPosition {
  readonly readerId: string;
  readonly messageId: string;
  /** The server's seal (src/domain/seal.ts); absent when nothing sealed it. */
  readonly seal?: string;
}

/** Most readers one chat keeps a position for. */
export const MAX_READERS_PER_CHAT = 100;

/**
 * Whether `a` lies further in the conversation than `b`: by send time, then by id. The order is
 * the messages' own (a message's send time and id are the same on every server and in every
 * copy: the seal covers both), so every server and client ranks two positions alike, and "keep
 * the furthest" is a maximum over one fixed total order: it commutes, it is idempotent, and
 * merges in any order and grouping reach the same positions (docs/protocol.md).
 */
export function furtherThan(a: Pick<Message, 'sendTime' | 'id'>, b: Pick<Message, 'sendTime' | 'id'>): boolean {
  const at = a.sendTime.getTime();
  const bt = b.sendTime.getTime();
  return at > bt || (at === bt && a.id > b.id);
}

/** What holding a read position costs, in bytes, beyond `overheadBytes`. */
export function readPositionBytes(position: ReadPosition, overheadBytes: number): number {
  return Buffer.byteLength(position.readerId) + Buffer.byteLength(position.messageId) + (position.seal?.length ?? 0) + overheadBytes;
}
