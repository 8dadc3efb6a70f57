import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import type {
  AckTranscriptRequest,
  AddAgentMessageRequest,
  MarkReadRequest,
  SetTypingRequest,
  AddVisitorMessageRequest,
  GetNewMessageRequest,
  RebuildRequest,
  WatchChatRequest,
} from '../../generated/chat/v1/chat.js';
import type { HealthCheckRequest } from '../../generated/health/v1/health.js';

/**
 * Requests as the fuzz test writes them: the generated types, widened to everything the wire
 * can carry and the generated encoders cannot. An int64 is a bigint (beyond 2^53 too), an enum
 * any int32, a Timestamp its raw seconds and nanos (out of range too), a string either text or
 * raw bytes (which may not be UTF-8), and every field may be left out.
 */
export interface WireTimestamp {
  readonly seconds: bigint;
  readonly nanos: number;
}
export type WireString = string | Uint8Array;
export type Wire<T> = T extends Date
  ? WireTimestamp
  : T extends string
    ? WireString
    : T extends number
      ? bigint
      : T extends boolean
        ? boolean
        : T extends (infer E)[]
          ? Wire<E>[]
          : T extends object
            ? { [K in keyof T]?: Wire<T[K]> }
            : T;

export type WireAddVisitor = Wire<AddVisitorMessageRequest>;
export type WireAddAgent = Wire<AddAgentMessageRequest>;
export type WireRead = Wire<GetNewMessageRequest> & Wire<WatchChatRequest>;
export type WireRebuild = Wire<RebuildRequest>;
export type WireChat = NonNullable<WireRebuild['chat']>;
export type WireMessage = NonNullable<WireAddVisitor['message']>;
export type WireHealthCheck = Wire<HealthCheckRequest>;
export type WireEvent = NonNullable<WireMessage['event']>;
export type WireAttachment = NonNullable<WireMessage['attachments']>[number];
export type WireReadPosition = NonNullable<WireChat['readPositions']>[number];
export type WireMarkRead = Wire<MarkReadRequest>;
export type WireSetTyping = Wire<SetTypingRequest>;
export type WireAckTranscript = Wire<AckTranscriptRequest>;

function str(w: BinaryWriter, no: number, value: WireString | undefined): void {
  if (value === undefined) return;
  w.tag(no, WireType.LengthDelimited);
  if (typeof value === 'string') w.string(value);
  else w.bytes(value);
}

function int(w: BinaryWriter, no: number, value: bigint | undefined): void {
  if (value !== undefined) w.tag(no, WireType.Varint).int64(value);
}

function sub<T>(w: BinaryWriter, no: number, value: T | undefined, encode: (w: BinaryWriter, value: T) => void): void {
  if (value === undefined) return;
  w.tag(no, WireType.LengthDelimited).fork();
  encode(w, value);
  w.join();
}

function timestamp(w: BinaryWriter, t: WireTimestamp): void {
  int(w, 1, t.seconds);
  w.tag(2, WireType.Varint).int32(t.nanos);
}

function message(w: BinaryWriter, m: WireMessage): void {
  str(w, 1, m.id);
  int(w, 2, m.dataOffset);
  str(w, 3, m.content);
  int(w, 4, m.messageType);
  sub(w, 5, m.sendTime, timestamp);
  str(w, 6, m.senderId);
  sub(w, 7, m.seal, (w2, seal) => str(w2, 1, seal)); // a google.protobuf.StringValue
  sub(w, 8, m.event, (w2, e) => {
    int(w2, 1, e.kind);
    str(w2, 2, e.participantId);
    str(w2, 3, e.toParticipantId);
    str(w2, 4, e.reason);
  });
  for (const a of m.attachments ?? []) {
    sub(w, 9, a, (w2, x) => {
      str(w2, 1, x.uri);
      str(w2, 2, x.mediaType);
      int(w2, 3, x.sizeBytes);
      str(w2, 4, x.sha256);
      str(w2, 5, x.name);
    });
  }
}

function readPosition(w: BinaryWriter, p: WireReadPosition): void {
  str(w, 1, p.readerId);
  str(w, 2, p.messageId);
  sub(w, 3, p.seal, (w2, seal) => str(w2, 1, seal));
}

function chat(w: BinaryWriter, c: WireChat): void {
  str(w, 1, c.id);
  int(w, 2, c.visitorDataOffset);
  int(w, 3, c.agentDataOffset);
  for (const m of c.messages ?? []) sub(w, 4, m, message);
  sub(w, 5, c.visitor, (w2, v) => {
    str(w2, 1, v.id);
    str(w2, 2, v.name);
    str(w2, 3, v.email);
  });
  sub(w, 6, c.beginTime, timestamp);
  str(w, 7, c.epoch);
  for (const p of c.readPositions ?? []) sub(w, 8, p, readPosition);
}

const finish = (fill: (w: BinaryWriter) => void): Uint8Array => {
  const w = new BinaryWriter();
  fill(w);
  return w.finish();
};

/** Encoders for each request type, field by field as in proto/chat/v1/chat.proto. */
export const encode = {
  addVisitor: (r: WireAddVisitor) =>
    finish((w) => {
      str(w, 1, r.chatId);
      int(w, 2, r.visitorOffset);
      int(w, 3, r.agentOffset);
      sub(w, 4, r.message, message);
      str(w, 5, r.epoch);
    }),
  addAgent: (r: WireAddAgent) =>
    finish((w) => {
      str(w, 1, r.chatId);
      str(w, 2, r.agentId);
      int(w, 3, r.visitorOffset);
      int(w, 4, r.agentOffset);
      sub(w, 5, r.message, message);
      str(w, 6, r.epoch);
    }),
  read: (r: WireRead) =>
    finish((w) => {
      str(w, 1, r.chatId);
      int(w, 2, r.visitorOffset);
      int(w, 3, r.agentOffset);
      str(w, 4, r.epoch);
    }),
  rebuild: (r: WireRebuild) => finish((w) => sub(w, 1, r.chat, chat)),
  healthCheck: (r: WireHealthCheck) => finish((w) => str(w, 1, r.service)),
  markRead: (r: WireMarkRead) =>
    finish((w) => {
      str(w, 1, r.chatId);
      str(w, 2, r.readerId);
      str(w, 3, r.messageId);
      str(w, 4, r.epoch);
    }),
  setTyping: (r: WireSetTyping) =>
    finish((w) => {
      str(w, 1, r.chatId);
      str(w, 2, r.participantId);
      if (r.typing !== undefined) w.tag(3, WireType.Varint).bool(r.typing);
    }),
  watchTranscripts: (_r: Record<string, never>) => new Uint8Array(0),
  ackTranscript: (r: WireAckTranscript) =>
    finish((w) => {
      str(w, 1, r.chatId);
      str(w, 2, r.epoch);
      int(w, 3, r.messageCount);
    }),
};

/** Whether any string in a wire request is raw bytes that are not valid UTF-8. */
export function hasInvalidUtf8(value: unknown): boolean {
  if (value instanceof Uint8Array) return !isUtf8(value);
  if (Array.isArray(value)) return value.some(hasInvalidUtf8);
  if (typeof value === 'object' && value !== null) return Object.values(value).some(hasInvalidUtf8);
  return false;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
function isUtf8(bytes: Uint8Array): boolean {
  try {
    strictUtf8.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/** One edit of an encoded message; indices are taken modulo what they index. */
export type Mutation =
  | { readonly op: 'truncate'; readonly at: number }
  | { readonly op: 'flip'; readonly at: number; readonly bit: number }
  | { readonly op: 'wire-type'; readonly field: number; readonly type: number }
  | { readonly op: 'duplicate'; readonly field: number }
  | { readonly op: 'drop'; readonly field: number }
  | { readonly op: 'append'; readonly no: number; readonly type: number; readonly payload: Uint8Array }
  | { readonly op: 'nested'; readonly field: number; readonly inner: Mutation };

interface Field {
  readonly no: number;
  readonly type: WireType;
  /** The whole field: tag and payload. */
  readonly bytes: Uint8Array;
  /** The payload after the tag (for LEN, after the length too). */
  readonly body: Uint8Array;
}

/** The top-level fields of an encoding, or undefined when it does not parse. */
function fields(bytes: Uint8Array): Field[] | undefined {
  const reader = new BinaryReader(bytes);
  const out: Field[] = [];
  try {
    while (reader.pos < reader.len) {
      const start = reader.pos;
      const [no, type] = reader.tag();
      const afterTag = reader.pos;
      reader.skip(type, no);
      const all = bytes.subarray(start, reader.pos);
      const body = type === WireType.LengthDelimited ? new BinaryReader(bytes.subarray(afterTag, reader.pos)).bytes() : bytes.subarray(afterTag, reader.pos);
      out.push({ no, type, bytes: all, body });
    }
    return out;
  } catch {
    return undefined;
  }
}

const concat = (parts: Uint8Array[]) => Uint8Array.from(Buffer.concat(parts));
const tagBytes = (no: number, type: number) => new BinaryWriter().uint32(((no << 3) | type) >>> 0).finish();

/** Applies `mutation` to an encoding (at the byte level when its fields do not parse). */
export function mutate(bytes: Uint8Array, mutation: Mutation): Uint8Array {
  switch (mutation.op) {
    case 'truncate':
      return bytes.subarray(0, bytes.length === 0 ? 0 : mutation.at % bytes.length);
    case 'flip': {
      if (bytes.length === 0) return bytes;
      const out = Uint8Array.from(bytes);
      out[mutation.at % out.length]! ^= 1 << mutation.bit;
      return out;
    }
    case 'append':
      return concat([bytes, tagBytes(mutation.no, mutation.type), appendPayload(mutation.type, mutation.payload)]);
    default:
      break;
  }
  const parsed = fields(bytes);
  if (!parsed || parsed.length === 0) return bytes;
  const i = mutation.field % parsed.length;
  const field = parsed[i]!;
  const replace = (...parts: Uint8Array[]) => concat([...parsed.slice(0, i).map((f) => f.bytes), ...parts, ...parsed.slice(i + 1).map((f) => f.bytes)]);
  switch (mutation.op) {
    case 'wire-type':
      return replace(tagBytes(field.no, mutation.type), field.bytes.subarray(tagBytes(field.no, field.type).length));
    case 'duplicate':
      return replace(field.bytes, field.bytes);
    case 'drop':
      return replace();
    case 'nested': {
      if (field.type !== WireType.LengthDelimited) return bytes;
      const inner = mutate(field.body, mutation.inner);
      return replace(tagBytes(field.no, field.type), new BinaryWriter().bytes(inner).finish());
    }
  }
}

function appendPayload(type: number, payload: Uint8Array): Uint8Array {
  switch (type) {
    case WireType.Varint:
      return payload.length === 0 ? Uint8Array.of(0) : Uint8Array.from(payload, (b, j) => (j === payload.length - 1 ? b & 0x7f : b | 0x80));
    case WireType.LengthDelimited:
      return new BinaryWriter().bytes(payload).finish();
    case WireType.Bit32:
      return Uint8Array.from({ length: 4 }, (_, j) => payload[j] ?? 0);
    case WireType.Bit64:
      return Uint8Array.from({ length: 8 }, (_, j) => payload[j] ?? 0);
    default: // groups and the invalid wire types 6 and 7: a tag with whatever follows
      return payload;
  }
}
