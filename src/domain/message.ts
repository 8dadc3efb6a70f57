/** The domain's vocabulary: messages, sides and offsets, as plain data. */

/** A message's type. The numbers are the original design's and the wire's. */
export enum MessageType {
  System = 1,
  Visitor = 2,
  Agent = 3,
  Bot = 4,
}

/** The two ordered sequences of a chat. */
export type Side = 'visitor' | 'agent';

/** The side a message type belongs to. */
export function sideOf(type: MessageType): Side {
  return type === MessageType.Visitor ? 'visitor' : 'agent';
}

/** A message as a chat holds it. */
export interface Message {
  /** Client-generated, unique within the chat: the idempotency key of a send. */
  readonly id: string;
  /** 1-based position in its side's sequence. */
  readonly dataOffset: number;
  readonly content: string;
  readonly type: MessageType;
  readonly sendTime: Date;
  readonly senderId: string;
  /** The server's seal (src/domain/seal.ts), as stored by a send or uploaded; absent when nothing sealed it. */
  readonly seal?: string;
}

/** A message a client asks to add; the server assigns its offset and time. */
export interface NewMessage {
  readonly id: string;
  readonly content: string;
  readonly type: MessageType;
  readonly senderId: string;
  /** The seal the store computed for it, once its send time and sender are final. */
  readonly seal?: string;
}

/** Per-side counts of messages held contiguously from offset 1. */
export interface Offsets {
  readonly visitor: number;
  readonly agent: number;
}

/** Where a caller stands: its offsets, and the epoch of the server chat they refer to. */
export interface Position extends Offsets {
  /** Empty or absent: the caller gives offsets only (the original protocol). */
  readonly epoch?: string;
}

/** The offsets a response carries for a chat the server did not have. */
export const MISSING_CHAT_OFFSETS: Offsets = Object.freeze({ visitor: -1, agent: -1 });

/** The visitor of a chat. */
export interface Visitor {
  readonly id: string;
  readonly name: string;
  readonly email: string;
}

/**
 * Why a server asks a caller to rebuild: it had no such chat, the caller's offsets refer to
 * another incarnation of it (another epoch), or the caller holds more of a side than it does.
 * The words are the metrics' label values (chat_rebuild_required_total{reason}).
 */
export type RebuildCause = 'missing_chat' | 'epoch_mismatch' | 'caller_ahead';

/**
 * Why the server cannot serve the caller from its history, or undefined when it can: the
 * caller's offsets refer to another incarnation of the chat (another epoch), so they may name
 * other messages even where they look fine (docs/reference.md section 4), or the caller holds
 * more of either side. An epoch mismatch comes first: the caller then uploads its whole copy,
 * whatever its offsets.
 */
export function rebuildCause(caller: Position, server: Offsets, epoch: string): RebuildCause | undefined {
  if (!!caller.epoch && caller.epoch !== epoch) return 'epoch_mismatch';
  if (caller.visitor > server.visitor || caller.agent > server.agent) return 'caller_ahead';
  return undefined;
}

/**
 * Whether two messages under one id are the same message: what a resend, or an upload of a
 * message the chat holds, must keep. Type and content must be equal; so must the sender ids,
 * except that an empty one names no sender in particular and matches any. An empty sender id
 * is how a visitor message is stored while the chat's visitor is unknown, so two servers (and
 * the copies their clients took) may hold one send with and without the visitor's id; a resend
 * that leaves the sender empty matches whatever it was stored with. Nothing held ever changes
 * for a match: the stored message stays as it was.
 */
export function sameMessage(a: Pick<Message, 'type' | 'content' | 'senderId'>, b: Pick<Message, 'type' | 'content' | 'senderId'>): boolean {
  return a.type === b.type && a.content === b.content && (a.senderId === b.senderId || a.senderId === '' || b.senderId === '');
}
