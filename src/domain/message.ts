/** The domain's vocabulary: messages, sides and offsets, as plain data. */

/** A message's type. The numbers are the original design's and the wire's. */
export enum MessageType {
  System = 1,
  Visitor = 2,
  Agent = 3,
  Bot = 4,
}

/** What a lifecycle event says happened. The numbers are the wire's (EventKind). */
export enum EventKind {
  Joined = 1,
  Left = 2,
  Transferred = 3,
  Ended = 4,
}

/**
 * A lifecycle event, carried by a SYSTEM message on the agent side: in the history, so every
 * copy holds it and Rebuild brings it back like any message (src/domain/events.ts).
 */
export interface ChatEvent {
  readonly kind: EventKind;
  /** Who joined, left or handed over; for an end, who ended it ('' for nobody in particular). */
  readonly participantId: string;
  /** For a transfer: who takes over; '' otherwise. */
  readonly toParticipantId: string;
  /** Why, for people; may be ''. */
  readonly reason: string;
}

/** A reference to a file held elsewhere: the bytes never enter the chat server (src/domain/attachments.ts). */
export interface Attachment {
  readonly uri: string;
  readonly mediaType: string;
  readonly sizeBytes: number;
  /** 64 lowercase hexadecimal digits. */
  readonly sha256: string;
  readonly name: string;
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
  /** A lifecycle event (SYSTEM messages only); absent for an ordinary message. */
  readonly event?: ChatEvent;
  /** Files the message refers to; absent (never empty) when there are none. */
  readonly attachments?: readonly Attachment[];
}

/** A message a client asks to add; the server assigns its offset and time. */
export interface NewMessage {
  readonly id: string;
  readonly content: string;
  readonly type: MessageType;
  readonly senderId: string;
  /** The seal the store computed for it, once its send time and sender are final. */
  readonly seal?: string;
  readonly event?: ChatEvent;
  readonly attachments?: readonly Attachment[];
}

/** What a message carries beside its text: its event and attachments, each absent when none. */
export type Extras = Pick<Message, 'event' | 'attachments'>;

/**
 * A message's event and attachments, only those it has: an empty list of attachments is none, so
 * every message without attachments has the same shape (and the same seal input) however it came.
 */
export function extrasOf(message: { readonly event?: ChatEvent | undefined; readonly attachments?: readonly Attachment[] | undefined }): Extras {
  const { event, attachments } = message;
  const some = attachments !== undefined && attachments.length > 0;
  if (event === undefined) return some ? { attachments } : {};
  return some ? { event, attachments } : { event };
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
export function sameMessage(a: Pick<Message, 'type' | 'content' | 'senderId'> & Extras, b: Pick<Message, 'type' | 'content' | 'senderId'> & Extras): boolean {
  return (
    a.type === b.type &&
    a.content === b.content &&
    (a.senderId === b.senderId || a.senderId === '' || b.senderId === '') &&
    sameEvent(a.event, b.event) &&
    sameAttachments(a.attachments ?? [], b.attachments ?? [])
  );
}

function sameEvent(a: ChatEvent | undefined, b: ChatEvent | undefined): boolean {
  if (!a || !b) return a === b;
  return a.kind === b.kind && a.participantId === b.participantId && a.toParticipantId === b.toParticipantId && a.reason === b.reason;
}

function sameAttachments(a: readonly Attachment[], b: readonly Attachment[]): boolean {
  return (
    a.length === b.length &&
    a.every((x, i) => {
      const y = b[i]!;
      return x.uri === y.uri && x.mediaType === y.mediaType && x.sizeBytes === y.sizeBytes && x.sha256 === y.sha256 && x.name === y.name;
    })
  );
}
