import {
  type Chat as WireChat,
  type ChatMessage,
  MessageType as WireMessageType,
  ResultCode,
  type Visitor as WireVisitor,
} from '../../generated/chat/v1/chat.js';
import type { ChatCopy } from '../domain/chat.js';
import { invalid } from '../domain/errors.js';
import type { Message, MessageType, Offsets, Visitor } from '../domain/message.js';
import type { ReadOutcome, Submission } from '../domain/store.js';

/** Translations between the wire (generated types) and the domain, and nothing else. */

export function toSubmission(message: ChatMessage | undefined): Submission {
  if (!message) throw invalid('message is required');
  return {
    id: message.id,
    content: message.content,
    type: message.messageType === WireMessageType.MESSAGE_TYPE_UNSPECIFIED ? undefined : message.messageType,
    senderId: message.senderId,
  };
}

export function toWireMessage(message: Message): ChatMessage {
  const { id, dataOffset, content, sendTime, senderId, seal } = message;
  const messageType = message.type as number as WireMessageType;
  return seal === undefined ? { id, dataOffset, content, messageType, sendTime, senderId } : { id, dataOffset, content, messageType, sendTime, senderId, seal };
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
      return seal ? { id, dataOffset, content, type, sendTime, senderId, seal } : { id, dataOffset, content, type, sendTime, senderId };
    }),
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
} {
  return {
    code: resultCode(outcome.rebuildRequired),
    ...wireOffsets(outcome.offsets),
    messages: outcome.messages.map(toWireMessage),
    epoch: outcome.epoch,
  };
}

export function wireOffsets(offsets: Offsets): { visitorDataOffset: number; agentDataOffset: number } {
  return { visitorDataOffset: offsets.visitor, agentDataOffset: offsets.agent };
}
