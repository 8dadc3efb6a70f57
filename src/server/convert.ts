import {
  type Attachment as WireAttachment,
  type Chat as WireChat,
  type ChatEvent as WireEvent,
  type ChatMessage,
  type ReadPosition as WireReadPosition,
  type Typing,
  type WatchTranscriptsResponse,
  MessageType as WireMessageType,
  ResultCode,
  type Visitor as WireVisitor,
} from '../../generated/chat/v1/chat.js';
import type { ChatCopy } from '../domain/chat.js';
import { invalid } from '../domain/errors.js';
import { type Attachment, type ChatEvent, type EventKind, type Extras, extrasOf, type Message, type MessageType, type Offsets, type Visitor } from '../domain/message.js';
import type { ReadPosition } from '../domain/read-positions.js';
import type { ReadOutcome, Submission } from '../domain/store.js';
import type { Transcript } from '../domain/transcripts.js';
import type { TypingNow } from '../domain/typing.js';

/** Translations between the wire (generated types) and the domain, and nothing else. */

export function toSubmission(message: ChatMessage | undefined): Submission {
  if (!message) throw invalid('message is required');
  return {
    id: message.id,
    content: message.content,
    type: message.messageType === WireMessageType.MESSAGE_TYPE_UNSPECIFIED ? undefined : message.messageType,
    senderId: message.senderId,
    ...wireExtras(message),
  };
}

/** A wire message's event and attachments, in the domain's words, only those it has. */
function wireExtras(message: ChatMessage): Extras {
  return extrasOf({ event: message.event && toEvent(message.event), attachments: message.attachments.length > 0 ? message.attachments.map(toAttachment) : undefined });
}

function toEvent(event: WireEvent): ChatEvent {
  return { kind: event.kind as number as EventKind, participantId: event.participantId, toParticipantId: event.toParticipantId, reason: event.reason };
}

function toAttachment(attachment: WireAttachment): Attachment {
  const { uri, mediaType, sizeBytes, sha256, name } = attachment;
  return { uri, mediaType, sizeBytes, sha256, name };
}

/** No attachments, shared by every message without any (the generated encoder only reads it). */
const NO_ATTACHMENTS: WireAttachment[] = [];

export function toWireMessage(message: Message): ChatMessage {
  const { id, dataOffset, content, sendTime, senderId, seal, event, attachments } = message;
  const messageType = message.type as number as WireMessageType;
  const wire: ChatMessage =
    seal === undefined
      ? { id, dataOffset, content, messageType, sendTime, senderId, attachments: NO_ATTACHMENTS }
      : { id, dataOffset, content, messageType, sendTime, senderId, seal, attachments: NO_ATTACHMENTS };
  if (event === undefined && attachments === undefined) return wire;
  return { ...wire, ...(event && { event: { ...event, kind: event.kind as number } }), attachments: attachments ? [...attachments] : NO_ATTACHMENTS };
}

export function toReadPosition(position: WireReadPosition): ReadPosition {
  const { readerId, messageId, seal } = position;
  return seal ? { readerId, messageId, seal } : { readerId, messageId };
}

export function toWireReadPosition(position: ReadPosition): WireReadPosition {
  return { ...position };
}

export function toWireTyping(typing: readonly TypingNow[]): Typing[] {
  return typing.map(({ participantId, expireMs }) => ({ participantId, expireTime: new Date(expireMs) }));
}

/** A transcript as WatchTranscripts sends it. */
export function toWireTranscript(transcript: Transcript): WatchTranscriptsResponse {
  return {
    chat: {
      id: transcript.chatId,
      visitorDataOffset: 0,
      agentDataOffset: 0,
      messages: transcript.messages.map(toWireMessage),
      visitor: transcript.visitor,
      beginTime: transcript.beginTime,
      epoch: transcript.epoch,
      readPositions: transcript.readPositions.map(toWireReadPosition),
    },
    truncated: transcript.truncated,
    messageCount: transcript.messageCount,
    endTime: transcript.endTime,
  };
}

/** A client's uploaded chat; messages without a send time take `now`. */
export function toChatCopy(chat: WireChat | undefined, now: Date): ChatCopy {
  if (!chat) throw invalid('chat is required');
  return {
    id: chat.id,
    epoch: chat.epoch,
    visitor: chat.visitor && toVisitor(chat.visitor),
    beginTime: chat.beginTime,
    messages: chat.messages.map((m): Message => {
      const { id, dataOffset, content, senderId, seal } = m;
      const type = m.messageType as number as MessageType;
      const sendTime = m.sendTime ?? now;
      const message: Message = seal ? { id, dataOffset, content, type, sendTime, senderId, seal } : { id, dataOffset, content, type, sendTime, senderId };
      return m.event || m.attachments.length > 0 ? { ...message, ...wireExtras(m) } : message;
    }),
    readPositions: chat.readPositions.map(toReadPosition),
  };
}

function toVisitor(visitor: WireVisitor): Visitor {
  return { id: visitor.id, name: visitor.name, email: visitor.email };
}

export function resultCode(rebuildRequired: boolean): ResultCode {
  return rebuildRequired ? ResultCode.RESULT_CODE_REBUILD_REQUIRED : ResultCode.RESULT_CODE_OK;
}

/** A read's answer, as GetNewMessageResponse and WatchChatResponse (the same fields) carry it. */
export function readResponse(outcome: ReadOutcome): {
  code: ResultCode;
  visitorDataOffset: number;
  agentDataOffset: number;
  messages: ChatMessage[];
  epoch: string;
  ended: boolean;
  readPositions: WireReadPosition[];
} {
  return {
    code: resultCode(outcome.rebuildRequired),
    ...wireOffsets(outcome.offsets),
    messages: outcome.messages.map(toWireMessage),
    epoch: outcome.epoch,
    ended: outcome.ended,
    readPositions: outcome.readPositions.map(toWireReadPosition),
  };
}

export function wireOffsets(offsets: Offsets): { visitorDataOffset: number; agentDataOffset: number } {
  return { visitorDataOffset: offsets.visitor, agentDataOffset: offsets.agent };
}
