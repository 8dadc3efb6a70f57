import {
  type Chat,
  type ChatMessage,
  type GetNewMessageResponse,
  type MarkReadResponse,
  MessageType,
  type ReadPosition,
  type RebuildRequest,
  type RebuildResponse,
  ResultCode,
  type Typing,
  type Visitor,
  type WatchChatResponse,
} from '../../generated/chat/v1/chat.js';

/**
 * The client's one translation between the wire (generated types) and what the session works
 * with. Inside the SDK, offsets have one shape, {@link Offsets}; only this module knows that the
 * wire spells them `visitor_offset`, `visitor_data_offset` and so on.
 */

/** Per-side counts of messages held contiguously from offset 1 (-1/-1: a server had no such chat). */
export interface Offsets {
  readonly visitor: number;
  readonly agent: number;
}

export type Side = keyof Offsets;

/** A session's offsets as the public API spells them (the wire's request field names). */
export interface ClientOffsets {
  readonly visitorOffset: number;
  readonly agentOffset: number;
}

export const sideOf = (m: Pick<ChatMessage, 'messageType'>): Side => (m.messageType === MessageType.MESSAGE_TYPE_VISITOR ? 'visitor' : 'agent');

export function clientOffsets(offsets: Offsets): ClientOffsets {
  return { visitorOffset: offsets.visitor, agentOffset: offsets.agent };
}

/** Where a caller stands, as every send, read and watch request carries it. */
export function position(chatId: string, offsets: Offsets, epoch: string): { chatId: string; visitorOffset: number; agentOffset: number; epoch: string } {
  return { chatId, visitorOffset: offsets.visitor, agentOffset: offsets.agent, epoch };
}

/** A send's, read's or watch's answer, as the session needs it. */
export interface Answer {
  /** The server asked for a rebuild (RESULT_CODE_REBUILD_REQUIRED). */
  readonly rebuild: boolean;
  /** The server's offsets. */
  readonly server: Offsets;
  /** The server chat's epoch (empty when it had no such chat). */
  readonly epoch: string;
  readonly messages: readonly ChatMessage[];
}

/** A read's or watch's answer: an {@link Answer}, with the state kept beside the history. */
export interface ReadAnswer extends Answer {
  /** The chat has ended (an ENDED event is in its history). */
  readonly ended: boolean;
  readonly readPositions: readonly ReadPosition[];
  /** Who is typing now (watch responses only; undefined for a read). */
  readonly typing: readonly Typing[] | undefined;
}

export function readAnswer(response: GetNewMessageResponse | WatchChatResponse): ReadAnswer {
  return {
    rebuild: response.code === ResultCode.RESULT_CODE_REBUILD_REQUIRED,
    server: { visitor: response.visitorDataOffset, agent: response.agentDataOffset },
    epoch: response.epoch,
    messages: response.messages,
    ended: response.ended ?? false,
    readPositions: response.readPositions ?? [],
    typing: 'typing' in response ? (response.typing ?? []) : undefined,
  };
}

/** A send's answer: the stored message unless a rebuild is required. */
export function sendAnswer(response: {
  code: ResultCode;
  visitorDataOffset: number;
  agentDataOffset: number;
  message?: ChatMessage | undefined;
  epoch: string;
}): Answer & { readonly stored: ChatMessage | undefined } {
  const rebuild = response.code === ResultCode.RESULT_CODE_REBUILD_REQUIRED || !response.message;
  return {
    rebuild,
    server: { visitor: response.visitorDataOffset, agent: response.agentDataOffset },
    epoch: response.epoch,
    messages: rebuild ? [] : [response.message!],
    stored: rebuild ? undefined : response.message,
  };
}

/** What an upload carries besides its messages. */
export interface UploadHeader {
  readonly chatId: string;
  readonly offsets: Offsets;
  readonly visitor: Visitor | undefined;
  readonly beginTime: Date | undefined;
  /** The incarnation the upload extends; empty for (the first part of) a whole copy. */
  readonly base: string;
}

export function rebuildRequest(header: UploadHeader, messages: ChatMessage[], readPositions: readonly ReadPosition[] = []): RebuildRequest {
  const chat: Chat = {
    id: header.chatId,
    visitorDataOffset: header.offsets.visitor,
    agentDataOffset: header.offsets.agent,
    messages,
    visitor: header.visitor,
    beginTime: header.beginTime,
    epoch: header.base,
    readPositions: [...readPositions],
  };
  return { chat };
}

/** The highest offset each side of `messages` reaches, from `from` on. */
export function advance(from: Offsets, messages: readonly ChatMessage[]): Offsets {
  const at = { ...from };
  for (const m of messages) at[sideOf(m)] = Math.max(at[sideOf(m)], m.dataOffset);
  return at;
}

/** A Rebuild's answer, as the session needs it. */
export interface RebuildAnswer {
  /** The upload extends another incarnation than the server's: nothing was merged. */
  readonly rebuild: boolean;
  readonly epoch: string;
  /** The server's messages after the merge: all of them, unless `truncated`. */
  readonly messages: readonly ChatMessage[];
  readonly truncated: boolean;
  readonly visitor: Visitor | undefined;
  readonly beginTime: Date | undefined;
  readonly readPositions: readonly ReadPosition[];
}

export function rebuildAnswer(response: RebuildResponse): RebuildAnswer {
  return {
    rebuild: response.code === ResultCode.RESULT_CODE_REBUILD_REQUIRED,
    epoch: response.chat?.epoch ?? '',
    messages: response.chat?.messages ?? [],
    truncated: response.truncated,
    visitor: response.chat?.visitor,
    beginTime: response.chat?.beginTime,
    readPositions: response.chat?.readPositions ?? [],
  };
}

/** A MarkRead's answer, as the session needs it. */
export interface MarkReadAnswer {
  /** The server lacks the chat, or holds another incarnation: rebuild, then mark again. */
  readonly rebuild: boolean;
  readonly epoch: string;
  readonly readPositions: readonly ReadPosition[];
}

export function markReadAnswer(response: MarkReadResponse): MarkReadAnswer {
  return { rebuild: response.code === ResultCode.RESULT_CODE_REBUILD_REQUIRED, epoch: response.epoch, readPositions: response.readPositions };
}
