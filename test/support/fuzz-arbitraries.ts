import fc from 'fast-check';
import { type Mutation, type WireAckTranscript, type WireAttachment, type WireEvent, type WireMarkRead, type WireReadPosition, type WireSetTyping, type WireAddAgent, type WireAddVisitor, type WireChat, type WireHealthCheck, type WireMessage, type WireRead, type WireRebuild, type WireString, type WireTimestamp } from './fuzz-wire.js';
import { RAW_METHODS, type RawMethod } from './raw-client.js';

/**
 * fast-check arbitraries for the fuzz test (test/server/fuzz.test.ts): sequences of commands
 * against one server. Requests name the chats of the run and their epochs by token; the test
 * replaces the tokens with the run's chat ids and the epochs the server gave them, so every run
 * works on fresh chats and a replayed case means the same thing.
 */

/** The chats each run targets (and checks before and after every request). */
export const CHATS_PER_RUN = 2;
/** The limits the spawned server is configured with, small to keep cases fast. */
export const LIMITS = { maxContentBytes: 32, maxIdBytes: 16, maxMessagesPerChat: 12 } as const;

/** Stands for the run's chat `i` (its id) and its epoch. */
export const chatToken = (i: number) => `\u0000chat${i}`;
export const epochToken = (i: number) => `\u0000epoch${i}`;

/**
 * Stand for the offsets the server held for the chat a request names, when it was last read
 * (so that many sends are accepted, and chats fill up); values no other generator makes.
 */
export const HELD_VISITOR_OFFSET = -(2n ** 62n) - 11n;
export const HELD_AGENT_OFFSET = -(2n ** 62n) - 13n;

/** Message ids of the seeded messages and of most generated ones, so ids collide often. */
export const MESSAGE_IDS = ['m0', 'm1', 'm2', 'm3', 'm4'] as const;

const bad = (...bytes: number[]) => Uint8Array.from(bytes);
/** Byte strings that are not UTF-8: a stray byte, an overlong NUL, a surrogate, a cut sequence, beyond U+10FFFF. */
const invalidUtf8: fc.Arbitrary<Uint8Array> = fc
  .tuple(
    fc.constantFrom(bad(0xff), bad(0xc0, 0x80), bad(0xed, 0xa0, 0x80), bad(0xe2, 0x82), bad(0xf4, 0x90, 0x80, 0x80), bad(0x80)),
    fc.constantFrom('', 'm0', 'hi'),
  )
  .map(([b, text]) => Uint8Array.from(Buffer.concat([Buffer.from(text), b])));

const anyText = (maxLength: number): fc.Arbitrary<string> =>
  fc.oneof(fc.string({ maxLength }), fc.string({ unit: 'binary', maxLength }), fc.string({ unit: 'grapheme', maxLength }));

/** An id-like string: usually one of `common`, sometimes empty, too long, odd text or not UTF-8. */
const idLike = (...common: string[]): fc.Arbitrary<WireString> =>
  fc.oneof(
    { weight: 40, arbitrary: fc.constantFrom(...common) },
    { weight: 1, arbitrary: fc.constant('') },
    { weight: 1, arbitrary: fc.constantFrom('x'.repeat(LIMITS.maxIdBytes), 'x'.repeat(LIMITS.maxIdBytes + 1), 'é'.repeat(LIMITS.maxIdBytes / 2 + 1)) },
    { weight: 1, arbitrary: anyText(20) },
    { weight: 1, arbitrary: invalidUtf8 },
  );

const chatRef: fc.Arbitrary<WireString> = fc.oneof(
  { weight: 20, arbitrary: fc.nat(CHATS_PER_RUN - 1).map(chatToken) },
  { weight: 1, arbitrary: idLike('other-chat') },
);

const epoch: fc.Arbitrary<WireString> = fc.oneof(
  { weight: 6, arbitrary: fc.constant('') },
  { weight: 3, arbitrary: fc.nat(CHATS_PER_RUN - 1).map(epochToken) },
  { weight: 1, arbitrary: idLike('an-epoch-never-given') },
);

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const SAFE = 2n ** 53n;
/** int64 values: mostly small, with negatives, values around 2^53 and the int64 extremes. */
const int64 = (low: bigint, high: bigint): fc.Arbitrary<bigint> =>
  fc.oneof(
    { weight: 30, arbitrary: fc.bigInt(low, high) },
    { weight: 2, arbitrary: fc.bigInt(-3n, 20n) },
    { weight: 2, arbitrary: fc.bigInt(SAFE - 3n, SAFE + 2n) },
    { weight: 1, arbitrary: fc.constantFrom(INT64_MIN, INT64_MAX, -SAFE - 1n, -SAFE + 1n, 2n ** 32n, 2n ** 31n, -(2n ** 31n)) },
    { weight: 1, arbitrary: fc.bigInt(INT64_MIN, INT64_MAX) },
  );
const callerOffset = (held: bigint) =>
  fc.oneof({ weight: 4, arbitrary: fc.constant(held) }, { weight: 3, arbitrary: int64(0n, 3n) });
const dataOffset = fc.oneof({ weight: 3, arbitrary: int64(1n, 6n) }, { weight: 1, arbitrary: fc.bigInt(SAFE - 3n, SAFE - 1n) });

/** A message type: mostly 0 to 4, sometimes outside the enum (any int32, or a wider varint). */
const messageType = (common: bigint[]): fc.Arbitrary<bigint> =>
  fc.oneof(
    { weight: 30, arbitrary: fc.constantFrom(...common) },
    { weight: 2, arbitrary: fc.bigInt(-3n, 10n) },
    { weight: 1, arbitrary: fc.constantFrom(-(2n ** 31n), 2n ** 31n - 1n, 2n ** 32n + 2n, INT64_MIN) },
  );

/** Timestamps: recent ones, the edges of the valid range (years 1 to 9999) and beyond, odd nanos. */
const timestamp: fc.Arbitrary<WireTimestamp> = fc.record({
  seconds: fc.oneof(
    { weight: 12, arbitrary: fc.bigInt(1_600_000_000n, 1_900_000_000n) },
    { weight: 2, arbitrary: fc.constantFrom(-62_135_596_800n, 253_402_300_799n, -62_135_596_801n, 253_402_300_800n, 0n, -1n, 8_640_000_000_000n, 8_640_000_000_001n) },
    { weight: 1, arbitrary: fc.bigInt(INT64_MIN, INT64_MAX) },
  ),
  nanos: fc.oneof(
    { weight: 12, arbitrary: fc.integer({ min: 0, max: 999_999_999 }) },
    { weight: 1, arbitrary: fc.constantFrom(-1, 1_000_000_000, -(2 ** 31), 2 ** 31 - 1) },
  ),
});

/** Content: a few fixed texts (so resends and re-uploads match), empty, at and above the limit. */
const content: fc.Arbitrary<WireString> = fc.oneof(
  { weight: 30, arbitrary: fc.constantFrom('hi', 'hello') },
  { weight: 1, arbitrary: fc.constant('') },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      'x'.repeat(LIMITS.maxContentBytes),
      'x'.repeat(LIMITS.maxContentBytes + 1),
      'é'.repeat(LIMITS.maxContentBytes / 2),
      `x${'é'.repeat(LIMITS.maxContentBytes / 2)}`,
    ),
  },
  { weight: 2, arbitrary: anyText(LIMITS.maxContentBytes) },
  { weight: 1, arbitrary: invalidUtf8 },
);

/** Present with probability `1 - 1/freq`, otherwise left out. */
const opt = <T>(arb: fc.Arbitrary<T>, freq = 6) => fc.option(arb, { nil: undefined, freq });
/** Present once in `1 + absent` times, otherwise left out. */
const rarely = <T>(arb: fc.Arbitrary<T>, absent = 3) =>
  fc.oneof({ weight: absent, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arb });

/** An event kind: mostly 1 to 4 (ENDED less often, so chats stay open), sometimes 0 or outside the enum. */
const eventKind: fc.Arbitrary<bigint> = fc.oneof(
  { weight: 20, arbitrary: fc.constantFrom(1n, 2n, 3n) },
  { weight: 4, arbitrary: fc.constant(4n) },
  { weight: 2, arbitrary: fc.constant(0n) },
  { weight: 2, arbitrary: fc.constantFrom(5n, -1n, 2n ** 31n - 1n, -(2n ** 31n), 2n ** 32n + 1n, INT64_MIN) },
);

const PARTICIPANTS = ['agent-1', 'agent-2', 'bot-1', 'visitor-1', 'service'];
const event: fc.Arbitrary<WireEvent> = fc.record({
  kind: opt(eventKind, 10),
  participantId: opt(idLike(...PARTICIPANTS), 4),
  toParticipantId: rarely(idLike(...PARTICIPANTS), 2),
  reason: rarely(fc.oneof(content, fc.constantFrom('x'.repeat(1024), 'x'.repeat(1025), 'é'.repeat(513))), 2),
});

const SHA = 'a'.repeat(64);
const attachment: fc.Arbitrary<WireAttachment> = fc.record({
  uri: opt(
    fc.oneof(
      { weight: 10, arbitrary: fc.constant('https://files.example.com/a.png') },
      { weight: 1, arbitrary: fc.constantFrom('http://files.example.com/a.png', 'files/a.png', 'https://', '', 'javascript:alert(1)', `https://x.example/${'a'.repeat(2048)}`) },
      { weight: 1, arbitrary: anyText(20) },
      { weight: 1, arbitrary: invalidUtf8 },
    ),
    20,
  ),
  mediaType: opt(fc.oneof({ weight: 10, arbitrary: fc.constant('image/png') }, { weight: 1, arbitrary: fc.constantFrom('image', '/png', 'image/', 'a/b/c', 'x'.repeat(64) + '/' + 'y'.repeat(64)) }, { weight: 1, arbitrary: anyText(12) }), 20),
  sizeBytes: opt(fc.oneof({ weight: 10, arbitrary: fc.bigInt(1n, 10_000n) }, { weight: 2, arbitrary: int64(-2n, 2n) }, { weight: 1, arbitrary: fc.constantFrom(100n * 2n ** 20n, 100n * 2n ** 20n + 1n) }), 20),
  sha256: opt(fc.oneof({ weight: 10, arbitrary: fc.constant(SHA) }, { weight: 1, arbitrary: fc.constantFrom('A'.repeat(64), 'a'.repeat(63), 'a'.repeat(65), 'g'.repeat(64), '') }, { weight: 1, arbitrary: anyText(64) }), 20),
  name: opt(fc.oneof({ weight: 10, arbitrary: fc.constant('a.png') }, { weight: 1, arbitrary: fc.constantFrom('', 'a/b.png', 'a\nb', '\u0000', '..', 'x'.repeat(255), 'x'.repeat(256), 'é'.repeat(128)) }, { weight: 1, arbitrary: anyText(12) }, { weight: 1, arbitrary: invalidUtf8 }), 20),
});
/** Attachments: usually none, a few, sometimes more than the 10 allowed. */
const attachments: fc.Arbitrary<WireAttachment[]> = fc.oneof(
  { weight: 12, arbitrary: fc.constant([] as WireAttachment[]) },
  { weight: 4, arbitrary: fc.array(attachment, { minLength: 1, maxLength: 2 }) },
  { weight: 1, arbitrary: fc.array(attachment, { minLength: 10, maxLength: 11 }) },
);

const readPosition: fc.Arbitrary<WireReadPosition> = fc.record({
  readerId: opt(idLike('visitor-1', 'agent-1', 'bot-1'), 20),
  messageId: opt(idLike(...MESSAGE_IDS, 'no-such-message'), 20),
  seal: rarely(fc.constantFrom('', 'not-a-seal', 'k0.AAAA'), 2),
});

const sentMessage = (types: bigint[], senders: string[]): fc.Arbitrary<WireMessage> =>
  fc.record({
    id: opt(idLike(...MESSAGE_IDS), 30),
    dataOffset: rarely(dataOffset),
    content: opt(content, 30),
    messageType: opt(messageType(types), 3),
    sendTime: rarely(timestamp),
    senderId: opt(idLike(...senders), 2),
    event: rarely(event),
    attachments,
  });

const uploadedMessage: fc.Arbitrary<WireMessage> = fc.record({
  id: opt(idLike(...MESSAGE_IDS), 20),
  dataOffset: opt(dataOffset, 20),
  content: opt(content, 20),
  messageType: opt(messageType([1n, 2n, 2n, 3n, 4n]), 20),
  sendTime: opt(timestamp, 2),
  senderId: opt(idLike('visitor-1', 'agent-1', 'bot-1'), 2),
  event: rarely(event, 4),
  attachments,
});

const visitor = fc.record({ id: opt(idLike('visitor-1', 'visitor-2')), name: opt(idLike('Ada')), email: opt(idLike('ada@example.com')) });

const chat: fc.Arbitrary<WireChat> = fc.record({
  id: opt(chatRef, 30),
  visitorDataOffset: rarely(int64(0n, 4n)),
  agentDataOffset: rarely(int64(0n, 4n)),
  messages: fc.array(uploadedMessage, { maxLength: 4 }),
  visitor: rarely(visitor, 1),
  beginTime: rarely(timestamp),
  epoch: opt(epoch, 2),
  readPositions: fc.oneof({ weight: 4, arbitrary: fc.constant([] as WireReadPosition[]) }, { weight: 1, arbitrary: fc.array(readPosition, { maxLength: 3 }) }),
});

const addVisitor: fc.Arbitrary<WireAddVisitor> = fc.record({
  chatId: opt(chatRef, 30),
  visitorOffset: opt(callerOffset(HELD_VISITOR_OFFSET)),
  agentOffset: opt(callerOffset(HELD_AGENT_OFFSET)),
  message: opt(sentMessage([0n, 2n], ['visitor-1']), 30),
  epoch: opt(epoch, 2),
});

const addAgent: fc.Arbitrary<WireAddAgent> = fc.record({
  chatId: opt(chatRef, 30),
  agentId: opt(idLike('agent-1', 'bot-1'), 30),
  visitorOffset: opt(callerOffset(HELD_VISITOR_OFFSET)),
  agentOffset: opt(callerOffset(HELD_AGENT_OFFSET)),
  message: opt(sentMessage([0n, 1n, 3n, 4n], ['agent-1']), 30),
  epoch: opt(epoch, 2),
});

const read: fc.Arbitrary<WireRead> = fc.record({
  chatId: opt(chatRef, 30),
  visitorOffset: opt(callerOffset(HELD_VISITOR_OFFSET)),
  agentOffset: opt(callerOffset(HELD_AGENT_OFFSET)),
  epoch: opt(epoch, 2),
});

const rebuild: fc.Arbitrary<WireRebuild> = fc.record({ chat: opt(chat, 30) });

const healthCheck: fc.Arbitrary<WireHealthCheck> = fc.record({
  service: opt(idLike('', 'chat.v1.ChatService', 'grpc.health.v1.Health', 'no.such.Service')),
});

const markRead: fc.Arbitrary<WireMarkRead> = fc.record({
  chatId: opt(chatRef, 30),
  readerId: opt(idLike('visitor-1', 'agent-1', 'bot-1'), 8),
  messageId: opt(idLike(...MESSAGE_IDS, 'no-such-message'), 30),
  epoch: opt(epoch, 2),
});

const setTyping: fc.Arbitrary<WireSetTyping> = fc.record({
  chatId: opt(chatRef, 30),
  participantId: opt(idLike('visitor-1', 'agent-1', 'bot-1'), 8),
  typing: opt(fc.boolean(), 6),
});

/** A message count: the held one is unknown here, so small ones (which it often is), negatives, huge. */
const messageCount: fc.Arbitrary<bigint> = fc.oneof({ weight: 6, arbitrary: fc.bigInt(0n, 14n) }, { weight: 2, arbitrary: int64(-3n, 3n) });

const ackTranscript: fc.Arbitrary<WireAckTranscript> = fc.record({
  chatId: opt(chatRef, 30),
  // Mostly the chat's epoch: an ack must name one.
  epoch: opt(fc.oneof({ weight: 4, arbitrary: fc.nat(CHATS_PER_RUN - 1).map(epochToken) }, { weight: 1, arbitrary: epoch }), 10),
  messageCount: opt(messageCount, 6),
});

/** A service's SYSTEM message ending the chat, well-formed but for a hostile reason or attachments sometimes: so chats end often. */
const endChat: fc.Arbitrary<WireAddAgent> = fc.record({
  chatId: opt(chatRef, 30),
  agentId: idLike('service', 'agent-1'),
  visitorOffset: opt(callerOffset(HELD_VISITOR_OFFSET)),
  agentOffset: opt(callerOffset(HELD_AGENT_OFFSET)),
  message: fc.record({
    id: fc.oneof({ weight: 4, arbitrary: fc.constantFrom('e0', 'e1') }, { weight: 1, arbitrary: idLike(...MESSAGE_IDS) }),
    content: fc.oneof({ weight: 4, arbitrary: fc.constant('bye') }, { weight: 1, arbitrary: fc.constant('') }),
    messageType: fc.constant(1n),
    event: fc.record({ kind: fc.constant(4n), participantId: rarely(idLike('agent-1', 'service'), 1), reason: rarely(fc.constantFrom('done', 'x'.repeat(1025)), 2) }),
    attachments,
  }),
  epoch: opt(epoch, 2),
});

/** A well-formed request to one RPC, built from the generated request types. */
export type Call =
  | { readonly rpc: 'AddVisitorMessage'; readonly request: WireAddVisitor }
  | { readonly rpc: 'AddAgentMessage'; readonly request: WireAddAgent }
  | { readonly rpc: 'GetNewMessage' | 'WatchChat'; readonly request: WireRead }
  | { readonly rpc: 'Rebuild'; readonly request: WireRebuild }
  | { readonly rpc: 'HealthCheck' | 'HealthWatch'; readonly request: WireHealthCheck }
  | { readonly rpc: 'MarkRead'; readonly request: WireMarkRead }
  | { readonly rpc: 'SetTyping'; readonly request: WireSetTyping }
  | { readonly rpc: 'WatchTranscripts'; readonly request: Record<string, never> }
  | { readonly rpc: 'AckTranscript'; readonly request: WireAckTranscript };

const CALLS: { readonly rpc: Call['rpc']; readonly weight: number; readonly arbitrary: fc.Arbitrary<Call> }[] = [
  { rpc: 'AddVisitorMessage', weight: 4, arbitrary: addVisitor.map((request) => ({ rpc: 'AddVisitorMessage' as const, request })) },
  { rpc: 'AddAgentMessage', weight: 4, arbitrary: addAgent.map((request) => ({ rpc: 'AddAgentMessage' as const, request })) },
  { rpc: 'AddAgentMessage', weight: 3, arbitrary: endChat.map((request) => ({ rpc: 'AddAgentMessage' as const, request })) },
  { rpc: 'GetNewMessage', weight: 2, arbitrary: read.map((request) => ({ rpc: 'GetNewMessage' as const, request })) },
  { rpc: 'Rebuild', weight: 4, arbitrary: rebuild.map((request) => ({ rpc: 'Rebuild' as const, request })) },
  { rpc: 'WatchChat', weight: 2, arbitrary: read.map((request) => ({ rpc: 'WatchChat' as const, request })) },
  { rpc: 'HealthCheck', weight: 1, arbitrary: healthCheck.map((request) => ({ rpc: 'HealthCheck' as const, request })) },
  { rpc: 'HealthWatch', weight: 1, arbitrary: healthCheck.map((request) => ({ rpc: 'HealthWatch' as const, request })) },
  { rpc: 'MarkRead', weight: 2, arbitrary: markRead.map((request) => ({ rpc: 'MarkRead' as const, request })) },
  { rpc: 'SetTyping', weight: 2, arbitrary: setTyping.map((request) => ({ rpc: 'SetTyping' as const, request })) },
  { rpc: 'WatchTranscripts', weight: 1, arbitrary: fc.constant({ rpc: 'WatchTranscripts' as const, request: {} }) },
  { rpc: 'AckTranscript', weight: 1, arbitrary: ackTranscript.map((request) => ({ rpc: 'AckTranscript' as const, request })) },
];

const baseMutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat(7) }),
  fc.record({ op: fc.constant('wire-type' as const), field: fc.nat(), type: fc.nat(7) }),
  fc.record({ op: fc.constant('duplicate' as const), field: fc.nat() }),
  fc.record({ op: fc.constant('drop' as const), field: fc.nat() }),
  fc.record({
    op: fc.constant('append' as const),
    no: fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 2 ** 29 - 1 })),
    type: fc.nat(7),
    payload: fc.uint8Array({ maxLength: 12 }),
  }),
);
const nested = (inner: fc.Arbitrary<Mutation>) => fc.record({ op: fc.constant('nested' as const), field: fc.nat(), inner });
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 3, arbitrary: baseMutation },
  { weight: 2, arbitrary: nested(baseMutation) },
  { weight: 1, arbitrary: nested(nested(baseMutation)) },
);

/** One step of a run. */
export type Command =
  | { readonly kind: 'call'; readonly call: Call }
  | { readonly kind: 'mutated'; readonly call: Call; readonly mutations: readonly Mutation[] }
  | { readonly kind: 'raw'; readonly method: RawMethod; readonly bytes: Uint8Array }
  /** Resends the `pick`-th send the server accepted in this run, exactly as it was sent, from offsets 0/0. */
  | { readonly kind: 'resend'; readonly pick: number };

/**
 * A run: a few commands against fresh chats, to the methods in `methods` (all by default; a
 * subset focuses the search).
 */
export function commands(maxLength: number, methods: ReadonlySet<RawMethod> = new Set(Object.keys(RAW_METHODS) as RawMethod[])): fc.Arbitrary<Command[]> {
  const calls = CALLS.filter((c) => methods.has(c.rpc));
  const raws = (Object.keys(RAW_METHODS) as RawMethod[]).filter((m) => methods.has(m));
  const kinds: fc.WeightedArbitrary<Command>[] = [];
  if (calls.length > 0) {
    const call = fc.oneof(...calls);
    kinds.push(
      { weight: 8, arbitrary: call.map((c) => ({ kind: 'call' as const, call: c })) },
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('mutated' as const), call, mutations: fc.array(mutation, { minLength: 1, maxLength: 3 }) }) },
    );
  }
  if (raws.length > 0) {
    kinds.push({
      weight: 1,
      arbitrary: fc.record({ kind: fc.constant('raw' as const), method: fc.constantFrom(...raws), bytes: fc.uint8Array({ maxLength: 48 }) }),
    });
  }
  if (methods.has('AddVisitorMessage') || methods.has('AddAgentMessage')) {
    kinds.push({ weight: 2, arbitrary: fc.record({ kind: fc.constant('resend' as const), pick: fc.nat() }) });
  }
  if (kinds.length === 0) throw new Error(`no method to fuzz in ${[...methods].join(', ')}`);
  return fc.array(fc.oneof(...kinds), { minLength: 1, maxLength });
}
