import { ChatError, invalid } from './errors.js';
import { MessageType, type Offsets } from './message.js';

/** Checks a required id: non-empty and at most `maxBytes` of UTF-8. */
export function requireId(field: string, value: string, maxBytes: number): string {
  if (value.length === 0) throw invalid(`${field} is required`);
  checkLength(field, value, maxBytes);
  return value;
}

/** Checks an optional id: at most `maxBytes` of UTF-8. */
export function checkLength(field: string, value: string, maxBytes: number): void {
  // A UTF-16 code unit takes at most 3 bytes of UTF-8: most strings need no count.
  if (value.length * 3 <= maxBytes) return;
  const bytes = Buffer.byteLength(value);
  if (bytes > maxBytes) throw invalid(`${field} is ${bytes} bytes; the limit is ${maxBytes}`);
}

/** Checks message content: non-empty and at most `maxBytes` of UTF-8. */
export function requireContent(field: string, value: string, maxBytes: number): void {
  if (value.length === 0) throw invalid(`${field} is empty; a message needs content`);
  checkLength(field, value, maxBytes);
}

/**
 * Checks a caller's offsets: whole numbers from 0 to `max` (the most messages a chat may hold,
 * so no offset above it can name a message).
 */
export function requireOffsets(offsets: Offsets, max: number): Offsets {
  for (const side of ['visitor', 'agent'] as const) {
    const value = offsets[side];
    if (!Number.isSafeInteger(value) || value < 0 || value > max) {
      throw invalid(
        `${side}_offset must be a whole number >= 0 (the messages you hold contiguously) ` +
          `and at most ${max} (--max-messages-per-chat); got ${value}`,
      );
    }
  }
  return offsets;
}

/**
 * The range of google.protobuf.Timestamp, 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z
 * (in milliseconds, which is what a Date holds): a time outside it cannot be sent to a client.
 */
export const EARLIEST_TIME_MS = Date.parse('0001-01-01T00:00:00.000Z');
export const LATEST_TIME_MS = Date.parse('9999-12-31T23:59:59.999Z');

/**
 * Checks a client-supplied time: a real date (the generated decoder turns a Timestamp no Date
 * can hold into an Invalid Date) within the Timestamp range, and, when `notAfterMs` is given,
 * no later than that.
 */
export function requireTime(field: string, value: Date, notAfter?: { readonly ms: number; readonly why: string }): void {
  const ms = value.getTime();
  if (Number.isNaN(ms) || ms < EARLIEST_TIME_MS || ms > LATEST_TIME_MS) {
    throw invalid(`${field} must lie between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999999Z`);
  }
  if (notAfter && ms > notAfter.ms) throw invalid(`${field} ${value.toISOString()} is ${notAfter.why}`);
}

/** The wire name of a message type, for error messages. */
export function typeName(type: number): string {
  return MessageType[type] ? `MESSAGE_TYPE_${MessageType[type]!.toUpperCase()}` : `${type}`;
}

/** Checks that a number names one of the four message types. */
export function requireKnownType(field: string, type: number): MessageType {
  if (typeof MessageType[type] !== 'string') {
    throw invalid(`${field} must be SYSTEM (1), VISITOR (2), AGENT (3) or BOT (4); got ${type}`);
  }
  return type as MessageType;
}

/** Runs a check whose refusals name fields relative to `prefix` ("message."), and names them in full. */
export function within(prefix: string, check: () => void): void {
  try {
    check();
  } catch (error) {
    throw error instanceof ChatError && error.kind === 'invalid-argument' ? invalid(`${prefix}${error.message}`) : error;
  }
}
