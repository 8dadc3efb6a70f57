export { furtherThan } from './conversation.js';

/** A participant's read position: the last message it has read, by id (offsets are renumbered). */
export interface ReadPosition {
  readonly readerId: string;
  readonly messageId: string;
  /** The server's seal (src/domain/seal.ts); absent when nothing sealed it. */
  readonly seal?: string;
}

/** Most readers one chat keeps a position for. */
export const MAX_READERS_PER_CHAT = 100;

/** What holding a read position costs, in bytes, beyond `overheadBytes`. */
export function readPositionBytes(position: ReadPosition, overheadBytes: number): number {
  return Buffer.byteLength(position.readerId) + Buffer.byteLength(position.messageId) + (position.seal?.length ?? 0) + overheadBytes;
}
