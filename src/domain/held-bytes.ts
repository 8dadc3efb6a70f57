import { wireBytes } from './conversation.js';
import type { Message, Visitor } from './message.js';

/**
 * What holding a message costs, in bytes: its wire size (its strings' UTF-8 bytes plus 48) and
 * `overheadBytes` for the objects around them. UTF-8 never takes fewer bytes than V8 uses for
 * the same string's characters, so the strings are not undercounted.
 */
export function heldBytes(message: Pick<Message, 'id' | 'content' | 'senderId'>, overheadBytes: number): number {
  return wireBytes(message) + overheadBytes;
}

/** What a chat costs before its messages: its id, its visitor's strings and one overhead allowance. */
export function chatRecordBytes(chatId: string, visitor: Visitor | undefined, overheadBytes: number): number {
  return Buffer.byteLength(chatId) + visitorBytes(visitor) + overheadBytes;
}

/** The UTF-8 bytes of a visitor's strings (0 for none). */
export function visitorBytes(visitor: Visitor | undefined): number {
  return visitor ? Buffer.byteLength(visitor.id) + Buffer.byteLength(visitor.name) + Buffer.byteLength(visitor.email) : 0;
}
