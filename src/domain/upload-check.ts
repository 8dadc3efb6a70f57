import type { Chat, ChatCopy } from './chat.js';
import { ChatError, denied, invalid } from './errors.js';
import type { Limits } from './limits.js';
import { requireAttachments } from './attachments.js';
import { requireEvent } from './events.js';
import { MAX_READERS_PER_CHAT, type ReadPosition } from './read-positions.js';
import { type Message, sameMessage, sideOf } from './message.js';
import type { Sealer } from './seal.js';
import { checkLength, requireContent, requireId, requireKnownType, requireTime, within } from './validate.js';

/** The limits an upload is checked against. */
export type UploadLimits = Pick<Limits, 'maxIdBytes' | 'maxContentBytes' | 'maxMessagesPerChat' | 'maxClockSkewMs' | 'maxAttachmentBytes'>;

/**
 * Validates the messages of an upload (Rebuild) against the chat it goes into, and returns
 * those the chat lacks. Refuses (INVALID_ARGUMENT) a malformed upload and one that alters a
 * message the chat holds; the chat and server limits are the store's to check.
 *
 * Every time an upload carries must lie in the Timestamp range (or no answer containing it
 * could be sent), and a send time may be at most `maxClockSkewMs` ahead of `now`. Every claimed
 * offset must be one a chat can hold (at most `maxMessagesPerChat`), so the offsets a merge
 * gives out stay far below 2^53.
 */
export function freshMessages(copy: ChatCopy, chat: Chat | undefined, limits: UploadLimits, now: Date): Message[] {
  const { maxIdBytes, maxContentBytes, maxMessagesPerChat, maxClockSkewMs, maxAttachmentBytes } = limits;
  const future = {
    ms: now.getTime() + maxClockSkewMs,
    // Written only for a refusal: an upload checks every message against it.
    get why() {
      return `in the future: more than ${maxClockSkewMs} ms (--max-clock-skew-ms) ahead of the server's clock (${now.toISOString()})`;
    },
  };
  if (copy.beginTime) requireTime('chat.begin_time', copy.beginTime);
  if (copy.visitor) {
    checkLength('chat.visitor.id', copy.visitor.id, maxIdBytes);
    checkLength('chat.visitor.name', copy.visitor.name, maxIdBytes);
    checkLength('chat.visitor.email', copy.visitor.email, maxIdBytes);
  }
  const ids = new Set<string>();
  const claimed = { visitor: new Set<number>(), agent: new Set<number>() };
  const fresh: Message[] = [];
  copy.messages.forEach((message, i) => {
    // Field names are relative to the message; the refusal gets its place only when there is one.
    try {
      requireId('id', message.id, maxIdBytes);
      if (ids.has(message.id)) throw invalid(`id "${message.id}" appears twice in the upload`);
      ids.add(message.id);
      if (message.type === undefined || (message.type as number) === 0) throw invalid('message_type is required in an upload');
      requireKnownType('message_type', message.type);
      if (!Number.isSafeInteger(message.dataOffset) || message.dataOffset < 1) {
        throw invalid(`data_offset must be 1 or more (the offset you hold it at); got ${message.dataOffset}`);
      }
      if (message.dataOffset > maxMessagesPerChat) {
        throw invalid(
          `data_offset ${message.dataOffset} is above ${maxMessagesPerChat} (--max-messages-per-chat), ` +
            'the most messages a chat may hold on one side',
        );
      }
      const side = claimed[sideOf(message.type)];
      if (side.has(message.dataOffset)) throw invalid(`data_offset ${message.dataOffset} is claimed twice on the ${sideOf(message.type)} side`);
      side.add(message.dataOffset);
      if (message.event || message.attachments) checkLength('content', message.content, maxContentBytes);
      else requireContent('content', message.content, maxContentBytes);
      if (message.attachments) requireAttachments(message.attachments, maxAttachmentBytes);
      if (message.event) requireEvent(message.event, message.type, maxIdBytes);
      checkLength('sender_id', message.senderId, maxIdBytes);
      requireTime('send_time', message.sendTime, future);

      const stored = chat?.find(message.id);
      if (!stored) fresh.push(message);
      else if (!sameMessage(stored, message)) throw invalid(`id "${message.id}" names a message that differs from the message the server holds under that id`);
    } catch (error) {
      throw error instanceof ChatError ? invalid(`chat.messages[${i}].${error.message}`) : error;
    }
  });
  return fresh;
}

/**
 * The refusal (PERMISSION_DENIED) of an upload whose `fresh` messages (those the chat lacks, from
 * {@link freshMessages}) include one without a valid seal, naming the first by its place, and how
 * many such messages there are; undefined when every one is sealed. Held messages an upload names
 * are compared with what is held instead, so they need no seal.
 */
export function unsealed(copy: ChatCopy, fresh: readonly Message[], sealer: Sealer): { readonly refusal: ChatError; readonly count: number } | undefined {
  const adding = new Set(fresh);
  let first: string | undefined;
  let count = 0;
  copy.messages.forEach((message, i) => {
    if (!adding.has(message)) return;
    const problem = sealer.problem(copy.id, message, message.seal);
    if (problem === undefined) return;
    count += 1;
    first ??= `chat.messages[${i}] (id ${JSON.stringify(message.id)}) ${problem}`;
  });
  if (first === undefined) return undefined;
  const more = count > 1 ? ` (and ${count - 1} more)` : '';
  return { refusal: denied(`${first}${more}; this server takes back only messages a server with its seal keys accepted`), count };
}

/**
 * Validates the read positions of an upload and returns those that would add a reader (what the
 * chat must find room for). Each names a reader and a message the chat holds or the upload
 * carries (INVALID_ARGUMENT otherwise), at most one per reader; with a sealer, each must carry a
 * valid seal (PERMISSION_DENIED otherwise: a position is taken back only as a server gave it).
 * The chat may keep at most {@link MAX_READERS_PER_CHAT} readers (RESOURCE_EXHAUSTED).
 */
export function uploadedReads(copy: ChatCopy, chat: Chat | undefined, limits: Pick<Limits, 'maxIdBytes'>, sealer: Sealer | undefined): ReadPosition[] {
  const positions = copy.readPositions ?? [];
  if (positions.length === 0) return [];
  const uploaded = new Set(copy.messages.map((m) => m.id));
  const readers = new Set<string>();
  const held = new Set((chat?.readPositions ?? []).map((p) => p.readerId));
  const added: ReadPosition[] = [];
  positions.forEach((position, i) => {
    within(`chat.read_positions[${i}].`, () => {
      requireId('reader_id', position.readerId, limits.maxIdBytes);
      requireId('message_id', position.messageId, limits.maxIdBytes);
      if (readers.has(position.readerId)) throw invalid(`reader_id "${position.readerId}" has two positions in the upload`);
      readers.add(position.readerId);
      if (!uploaded.has(position.messageId) && !chat?.find(position.messageId)) {
        throw invalid(`message_id "${position.messageId}" names no message the chat holds or the upload carries`);
      }
    });
    if (sealer) {
      const problem = sealer.readProblem(copy.id, position, position.seal);
      if (problem) throw denied(`chat.read_positions[${i}] (reader ${JSON.stringify(position.readerId)}) ${problem}; this server takes back only read positions a server with its seal keys recorded`);
    }
    if (!held.has(position.readerId)) added.push(position);
  });
  if (held.size + added.length > MAX_READERS_PER_CHAT) {
    throw new ChatError('resource-exhausted', `chat "${copy.id}" would keep read positions for ${held.size + added.length} readers; the limit is ${MAX_READERS_PER_CHAT}`);
  }
  return added;
}
