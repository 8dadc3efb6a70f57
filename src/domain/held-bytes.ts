import { wireBytes } from './conversation.js';
import { ChatError } from './errors.js';
import type { EvictionReport } from './memory-guard.js';
import type { Message, Visitor } from './message.js';

/**
 * What holding a message costs, in bytes: its wire size (its strings' UTF-8 bytes plus 48, and
 * its seal) and `overheadBytes` for the objects around them. UTF-8 never takes fewer bytes than
 * V8 uses for the same string's characters, so the strings are not undercounted.
 */
export function heldBytes(message: Pick<Message, 'id' | 'content' | 'senderId' | 'seal'>, overheadBytes: number): number {
  return wireBytes(message) + overheadBytes;
}

/**
 * What a chat's own structures take once it holds messages, beyond one overhead allowance: its
 * sides' columns and its index by id start at about 1 KB on Node 20 (an empty chat takes about
 * 220 bytes, and is counted as if it held messages).
 */
const CHAT_STRUCTURE_BYTES = 1024;

/** What a chat costs before its messages: its id, its visitor's strings, its structures and one overhead allowance. */
export function chatRecordBytes(chatId: string, visitor: Visitor | undefined, overheadBytes: number): number {
  return Buffer.byteLength(chatId) + visitorBytes(visitor) + CHAT_STRUCTURE_BYTES + overheadBytes;
}

/** The UTF-8 bytes of a visitor's strings (0 for none). */
export function visitorBytes(visitor: Visitor | undefined): number {
  return visitor ? Buffer.byteLength(visitor.id) + Buffer.byteLength(visitor.name) + Buffer.byteLength(visitor.email) : 0;
}

/** A write that would take a chat past its budget. */
export function chatOverBudget(chatId: string, heldBytes: number, costBytes: number, budgetBytes: number, hint: string): ChatError {
  return new ChatError(
    'resource-exhausted',
    `chat "${chatId}" holds ${heldBytes} bytes; ${costBytes} more would pass its budget of ${budgetBytes} bytes (--max-chat-bytes); ${hint}`,
  );
}

/** A write that would take the server past its budget. */
export function serverOverBudget(heldBytes: number, costBytes: number, budgetBytes: number): ChatError {
  return new ChatError(
    'resource-exhausted',
    `this server holds ${heldBytes} bytes of chats; ${costBytes} more would pass its budget of ${budgetBytes} bytes (--max-held-bytes); try another server`,
  );
}

/** A write while the heap stays above its high-water mark. */
export function shortOfMemory(report: EvictionReport): ChatError {
  const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
  return new ChatError(
    'resource-exhausted',
    `the server is short of memory (heap ${mib(report.heapUsedBytes)} of ${mib(report.heapLimitBytes)} MiB in use, ` +
      'above its high-water mark with no idle chat left to evict); try another server',
  );
}
