import { createHmac, timingSafeEqual } from 'node:crypto';
import { flat } from './flat-string.js';
import type { Message } from './message.js';

/** What a seal covers: everything a message says except its offset, which rebuilds renumber. */
export type Sealable = Pick<Message, 'id' | 'type' | 'senderId' | 'content' | 'sendTime' | 'event' | 'attachments'>;

/** A read position's seal covers the chat, the reader and the message it names. */
export interface SealableRead {
  readonly readerId: string;
  readonly messageId: string;
}

/**
 * The keys a server seals with: `current` seals, every key verifies. Rotation adds a key and
 * makes it current; messages sealed under the old one verify until it is removed.
 */
export interface SealKeys {
  readonly current: string;
  readonly keys: ReadonlyMap<string, Buffer>;
}

/**
 * The bytes a seal is computed over: the chat id, id, type, sender id, content and send time (ms
 * since the epoch), each as a 4-byte big-endian length and its UTF-8 bytes. The lengths keep
 * fields apart, so no two different messages give the same input (`"ab" + "c"` is not `"a" + "bc"`).
 */
export function sealInput(chatId: string, message: Sealable): Buffer {
  const fields = [chatId, message.id, String(message.type), message.senderId, message.content, String(message.sendTime.getTime())];
  // An event and attachments follow, each under its own tag, only when present: the seals of
  // messages without them are what they were before either existed.
  const { event, attachments } = message;
  if (event) fields.push('event', String(event.kind), event.participantId, event.toParticipantId, event.reason);
  if (attachments) {
    fields.push('attachments', String(attachments.length));
    for (const a of attachments) fields.push(a.uri, a.mediaType, String(a.sizeBytes), a.sha256, a.name);
  }
  return lengthPrefixed(fields);
}

/**
 * The bytes a read position's seal is computed over: a tag no message input can start with (a
 * chat id is never empty, and this one is), then the chat id, reader and message id.
 */
export function readSealInput(chatId: string, read: SealableRead): Buffer {
  return lengthPrefixed(['', 'read', chatId, read.readerId, read.messageId]);
}

/** Each field as a 4-byte big-endian length and its UTF-8 bytes, so no two field lists give the same bytes. */
function lengthPrefixed(fields: readonly string[]): Buffer {
  let size = 0;
  for (const field of fields) size += 4 + Buffer.byteLength(field, 'utf8');
  // One buffer, written in place: every send computes a seal.
  const input = Buffer.allocUnsafe(size);
  let at = 0;
  for (const field of fields) {
    const length = input.write(field, at + 4, 'utf8');
    input.writeUInt32BE(length, at);
    at += 4 + length;
  }
  return input;
}

/**
 * Seals messages a server accepted, and checks the seals of messages uploaded back, so a client
 * (the durable store) can only give back what a server with these keys accepted. A seal reads
 * `<key id>.<base64url HMAC-SHA256>`. Pure computation: no I/O, no clock.
 */
export class Sealer {
  private readonly current: { readonly id: string; readonly key: Buffer };

  /** Throws a RangeError when `keys.current` names no key, or a key id is empty or has a dot. */
  constructor(private readonly keys: SealKeys) {
    for (const id of keys.keys.keys()) {
      if (id === '' || id.includes('.')) throw new RangeError(`a seal key id must be non-empty and without dots; got "${id}"`);
    }
    const key = keys.keys.get(keys.current);
    if (!key) throw new RangeError(`the current seal key "${keys.current}" is not among the keys`);
    this.current = { id: keys.current, key };
  }

  /** The ids of the keys, the current one first: what may be logged (never the keys). */
  get keyIds(): string[] {
    return [this.current.id, ...[...this.keys.keys.keys()].filter((id) => id !== this.current.id)];
  }

  /** The seal of `message` in chat `chatId`, under the current key. */
  seal(chatId: string, message: Sealable): string {
    return this.sealBytes(sealInput(chatId, message));
  }

  /** The seal of a read position in chat `chatId`, under the current key. */
  sealRead(chatId: string, read: SealableRead): string {
    return this.sealBytes(readSealInput(chatId, read));
  }

  /** Why `seal` is not a valid seal of the read position, or undefined when it is (as {@link problem}). */
  readProblem(chatId: string, read: SealableRead, seal: string | undefined): string | undefined {
    return this.check(readSealInput(chatId, read), seal, 'its chat, reader or message differs from what was sealed');
  }

  private sealBytes(input: Buffer): string {
    // Flat (see flat-string.ts): the concatenation would take about 130 bytes where its 46
    // characters take 64, and a chat holds a seal for each message.
    return flat(`${this.current.id}.${mac(this.current.key, input).toString('base64url')}`);
  }

  /**
   * Why `seal` is not a valid seal of `message` in chat `chatId` (as a phrase that follows the
   * message's name: "has no seal", ...), or undefined when it is.
   */
  problem(chatId: string, message: Sealable, seal: string | undefined): string | undefined {
    return this.check(sealInput(chatId, message), seal, 'its chat, id, type, sender, content, send time, event or attachments differ from what was sealed');
  }

  private check(input: Buffer, seal: string | undefined, differs: string): string | undefined {
    if (seal === undefined || seal === '') return 'has no seal';
    const dot = seal.indexOf('.');
    if (dot < 0) return 'has a seal that does not match it: it is not "<key id>.<mac>"';
    const keyId = seal.slice(0, dot);
    const key = this.keys.keys.get(keyId);
    if (!key) return `is sealed under a key this server does not know (${JSON.stringify(keyId)})`;
    // Compared as text, not decoded: base64url decoding skips stray characters, and a seal is
    // taken back only exactly as it was given out.
    const given = Buffer.from(seal.slice(dot + 1));
    const expected = Buffer.from(mac(key, input).toString('base64url'));
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      return `has a seal that does not match it: ${differs}`;
    }
    return undefined;
  }
}

function mac(key: Buffer, input: Buffer): Buffer {
  return createHmac('sha256', key).update(input).digest();
}
