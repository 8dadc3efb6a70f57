import { invalid } from './errors.js';
import { MessageType, type Offsets } from './message.js';

/** Checks a required id: non-empty and at most `maxBytes` of UTF-8. */
export function requireId(field: string, value: string, maxBytes: number): string {
  if (value.length === 0) throw invalid(`${field} is required`);
  checkLength(field, value, maxBytes);
  return value;
}

/** Checks an optional id: at most `maxBytes` of UTF-8. */
export function checkLength(field: string, value: string, maxBytes: number): void {
  const bytes = Buffer.byteLength(value);
  if (bytes > maxBytes) throw invalid(`${field} is ${bytes} bytes; the limit is ${maxBytes}`);
}

/** Checks message content: non-empty and at most `maxBytes` of UTF-8. */
export function requireContent(field: string, value: string, maxBytes: number): void {
  if (value.length === 0) throw invalid(`${field} is empty; a message needs content`);
  const bytes = Buffer.byteLength(value);
  if (bytes > maxBytes) throw invalid(`${field} is ${bytes} bytes; the limit is ${maxBytes}`);
}

/** Checks a caller's offsets: whole numbers, zero or more. */
export function requireOffsets(offsets: Offsets): Offsets {
  for (const side of ['visitor', 'agent'] as const) {
    const value = offsets[side];
    if (!Number.isSafeInteger(value) || value < 0) {
      throw invalid(`${side}_offset must be a whole number >= 0 (the messages you hold contiguously); got ${value}`);
    }
  }
  return offsets;
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
