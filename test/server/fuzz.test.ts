import { status } from '@grpc/grpc-js';
import fc from 'fast-check';
import {
  AckTranscriptResponse,
  AddAgentMessageResponse,
  AddVisitorMessageResponse,
  Chat,
  ChatMessage,
  EventKind,
  GetNewMessageResponse,
  MarkReadResponse,
  RebuildResponse,
  ResultCode,
  SetTypingResponse,
  WatchChatResponse,
  WatchTranscriptsResponse,
} from '../../generated/chat/v1/chat.js';
import { HealthCheckResponse, HealthCheckResponse_ServingStatus } from '../../generated/health/v1/health.js';
import { type Call, CHATS_PER_RUN, type Command, chatToken, commands, epochToken, HELD_AGENT_OFFSET, HELD_VISITOR_OFFSET, LIMITS, MESSAGE_IDS } from '../support/fuzz-arbitraries.js';
import { encode, hasInvalidUtf8, mutate, type WireString } from '../support/fuzz-wire.js';
import { RawChatClient, type RawMethod, type RawOutcome } from '../support/raw-client.js';
import { testSeal } from '../support/security.js';
import { type ServerProcess, spawnServer } from '../support/servers.js';

/**
 * Fuzzes a real server process with fast-check: well-formed requests with hostile values,
 * mutated encodings of them, and raw bytes, for every RPC of chat.v1.ChatService and the health
 * service (and raw bytes for reflection). FUZZ_RUNS sets the number of runs (each a sequence of
 * up to MAX_COMMANDS requests against two fresh chats); FUZZ_SEED and FUZZ_PATH replay a failure;
 * FUZZ_METHODS (a comma-separated subset of RAW_METHODS' names) focuses the search; FUZZ_TOLERATE
 * (a regular expression) ends a run quietly, as passed, at a failure whose message it matches,
 * to look past a known bug for others while it is being fixed. Neither is set in `npm test`.
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const TOLERATE = process.env.FUZZ_TOLERATE ? new RegExp(process.env.FUZZ_TOLERATE) : undefined;
const METHODS = process.env.FUZZ_METHODS ? new Set(process.env.FUZZ_METHODS.split(',') as RawMethod[]) : undefined;
const MAX_COMMANDS = 12;
/** A new server process after this many runs, so memory and logs stay small in long runs. */
const RUNS_PER_SERVER = 2_000;
const SERVER_ENV = {
  MAX_CONTENT_BYTES: String(LIMITS.maxContentBytes),
  MAX_ID_BYTES: String(LIMITS.maxIdBytes),
  MAX_MESSAGES_PER_CHAT: String(LIMITS.maxMessagesPerChat),
  MAX_CHATS: '1000000',
  IDLE_CHAT_TTL_MS: '0',
  // The checks read each chat with a Rebuild of nothing after every command; the upload budget
  // (tested in test/server/rebuild-budget.test.ts) would refuse those reads once hostile
  // uploads of up to --max-request-bytes had spent it.
  REBUILD_BYTES_PER_SECOND: '0',
};

/** The statuses a refusal may have (README, Errors). Anything else (INTERNAL, UNKNOWN, a deadline...) is a bug. */
const REFUSALS = new Set([status.INVALID_ARGUMENT, status.RESOURCE_EXHAUSTED, status.NOT_FOUND, status.PERMISSION_DENIED]);
/**
 * FAILED_PRECONDITION is a refusal only of a send or SetTyping into an ended chat (README,
 * Errors). The other case, a missing or wrong x-chat-id header, needs --require-chat-id-header,
 * which the fuzzed servers do not run with (and the test interceptor sends the header anyway).
 */
const ENDED_REFUSAL = /^chat ".*" ended at .* and takes no more messages; it can still be read, watched and rebuilt$/s;
const REFUSED_WHEN_ENDED = new Set<RawMethod>(['AddVisitorMessage', 'AddAgentMessage', 'SetTyping']);
/** Whether a chat holds an EVENT_KIND_ENDED message: it has ended, and takes no more sends. */
const endedOf = (chat: Chat) => chat.messages.some((m) => m.event?.kind === EventKind.EVENT_KIND_ENDED);
/** A chat's read positions, for comparing before and after a refusal. */
const positionsJson = (chat: Chat) => JSON.stringify((Chat.toJSON(chat) as { readPositions?: unknown }).readPositions ?? []);
const ALL_CHATS = Array.from({ length: CHATS_PER_RUN }, (_, i) => i);
const CHAT_RPCS = new Set<RawMethod>(['AddVisitorMessage', 'AddAgentMessage', 'GetNewMessage', 'Rebuild', 'WatchChat', 'MarkRead', 'SetTyping', 'AckTranscript']);

/** What every response type decodes with, to check the server's answers are valid protobuf. */
const DECODERS: Partial<Record<RawMethod, (bytes: Uint8Array) => unknown>> = {
  AddVisitorMessage: (b) => AddVisitorMessageResponse.decode(b),
  AddAgentMessage: (b) => AddAgentMessageResponse.decode(b),
  GetNewMessage: (b) => GetNewMessageResponse.decode(b),
  Rebuild: (b) => RebuildResponse.decode(b),
  WatchChat: (b) => WatchChatResponse.decode(b),
  MarkRead: (b) => MarkReadResponse.decode(b),
  SetTyping: (b) => SetTypingResponse.decode(b),
  WatchTranscripts: (b) => WatchTranscriptsResponse.decode(b),
  AckTranscript: (b) => AckTranscriptResponse.decode(b),
  HealthCheck: (b) => HealthCheckResponse.decode(b),
  HealthWatch: (b) => HealthCheckResponse.decode(b),
};

/** When the seeded messages were sent, and their seals under the test key, so a secure server takes them. */
const SEED_TIME = { wire: { seconds: 1_700_000_000n, nanos: 0 }, date: new Date(1_700_000_000_000) };
const seedSeal = (chatId: string, id: string, type: number, senderId: string) => testSeal(chatId, { id, type, senderId, content: 'hi', sendTime: SEED_TIME.date });

class FuzzFailure extends Error {}
const fail = (message: string): never => {
  throw new FuzzFailure(message);
};

/** The server process under test, replaced when it dies (so shrinking runs on a live one) or after RUNS_PER_SERVER runs. */
class Target {
  constructor(private readonly env: Record<string, string>) {}

  server!: ServerProcess;
  raw!: RawChatClient;
  private stderr = '';
  private runs = 0;
  deaths: string[] = [];

  async ready(): Promise<void> {
    if (this.server && this.alive() && this.runs < RUNS_PER_SERVER) {
      this.runs += 1;
      return;
    }
    if (this.server && !this.alive()) this.deaths.push(this.death());
    await this.close();
    this.stderr = '';
    this.runs = 1;
    this.server = await spawnServer(this.env);
    this.server.child.stderr!.on('data', (chunk: Buffer) => (this.stderr = (this.stderr + chunk.toString()).slice(-4_000)));
    this.raw = new RawChatClient(this.server.address);
  }

  alive(): boolean {
    return this.server.child.exitCode === null && this.server.child.signalCode === null;
  }

  death(): string {
    const { exitCode, signalCode } = this.server.child;
    return `the server process exited (code ${exitCode}, signal ${signalCode}); stderr: ${this.stderr.trim() || '(empty)'}`;
  }

  /** The errors the server logged since log entry `mark`: the stacks behind an INTERNAL. */
  loggedErrors(mark: number): string {
    const errors = this.server.logs.slice(mark).filter((entry) => (entry.level as number) >= 50);
    return errors.map((entry) => `\n  server logged: ${entry.msg} ${JSON.stringify(entry.err ?? entry).slice(0, 600)}`).join('');
  }

  async close(): Promise<void> {
    this.raw?.close();
    await this.server?.kill();
  }
}

/** What a tracked chat looked like: the encoded Rebuild-of-nothing answer, and it decoded. */
interface Snapshot {
  readonly bytes: Buffer;
  readonly chat: Chat;
}

/** A send the server stored, and what it answered. */
interface Sent {
  readonly call: Call & { rpc: 'AddVisitorMessage' | 'AddAgentMessage' };
  readonly stored: ChatMessage;
}

/** One run's chats (ids and epochs, what the tokens stand for) and what the run learnt. */
interface Run {
  readonly ids: string[];
  readonly epochs: string[];
  /** Each tracked chat as last read. */
  snapshots: Snapshot[];
  readonly sent: Sent[];
}

const show = (value: unknown) => fc.stringify(value);
const messageJson = (m: ChatMessage | undefined) => JSON.stringify(m && ChatMessage.toJSON(m));
const textOf = (s: WireString | undefined) => (s === undefined ? '' : typeof s === 'string' ? s : Buffer.from(s).toString('utf8'));

/** Replaces the tokens of a generated value with what they stand for in `run`. */
function resolve<T>(value: T, run: Run): T {
  const tokens = new Map<unknown, unknown>(run.ids.flatMap((id, i) => [[chatToken(i), id], [epochToken(i), run.epochs[i]]]));
  const replace = (v: unknown): unknown => {
    if (tokens.has(v)) return tokens.get(v);
    if (v instanceof Uint8Array || typeof v !== 'object' || v === null) return v;
    if (Array.isArray(v)) return v.map(replace);
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, replace(x)]));
  };
  return replace(value) as T;
}

/** The call with its chat and offset tokens replaced (held offsets: those of the chat it names, 0 for another). */
function resolveCall(call: Call, run: Run): Call {
  const named = resolve(call, run);
  const i = chatIndex(named, run);
  const held = i >= 0 ? run.snapshots[i]!.chat : undefined;
  const offset = (v: unknown, side: 'visitor' | 'agent') =>
    v === (side === 'visitor' ? HELD_VISITOR_OFFSET : HELD_AGENT_OFFSET) ? BigInt(held?.[`${side}DataOffset`] ?? 0) : v;
  if (!('visitorOffset' in named.request)) return named;
  return { ...named, request: { ...named.request, visitorOffset: offset(named.request.visitorOffset, 'visitor'), agentOffset: offset(named.request.agentOffset, 'agent') } } as Call;
}

function encodeCall(call: Call): Uint8Array {
  switch (call.rpc) {
    case 'AddVisitorMessage':
      return encode.addVisitor(call.request);
    case 'AddAgentMessage':
      return encode.addAgent(call.request);
    case 'GetNewMessage':
    case 'WatchChat':
      return encode.read(call.request);
    case 'Rebuild':
      return encode.rebuild(call.request);
    case 'HealthCheck':
    case 'HealthWatch':
      return encode.healthCheck(call.request);
    case 'MarkRead':
      return encode.markRead(call.request);
    case 'SetTyping':
      return encode.setTyping(call.request);
    case 'WatchTranscripts':
      return encode.watchTranscripts(call.request);
    case 'AckTranscript':
      return encode.ackTranscript(call.request);
  }
}

/** The tracked chat a call names, if any. */
function chatIndex(call: Call, run: Run): number {
  const id = call.rpc === 'Rebuild' ? call.request.chat?.id : 'chatId' in call.request ? call.request.chatId : undefined;
  return typeof id === 'string' ? run.ids.indexOf(id) : -1;
}

/**
 * The servers fuzzed: a secure one (tokens and seals with the test keys, as every test server
 * runs unless it says otherwise), where the raw client's requests carry the token of whoever
 * they name; and an insecure one, where uploads unsealed by construction reach the merge.
 */
const MODES = [
  { mode: 'a secure server', env: SERVER_ENV },
  { mode: 'an insecure server', env: { ...SERVER_ENV, INSECURE: 'true' } },
];

for (const { mode, env } of MODES) describe(`fuzz: generated, mutated and random requests against ${mode} process`, function () {
  this.timeout(Math.max(180_000, RUNS * 200));
  const target = new Target(env);
  let runCount = 0;
  let requests = 0;
  let tolerated = 0;
  /** How the commands were answered, by kind, method and status (printed with FUZZ_STATS=1). */
  const answers = new Map<string, number>();

  after(() => target.close());

  /**
   * Reads the tracked chats `which`: a snapshot of each (a Rebuild of nothing, which lists
   * everything held), and with `andPoll` a GetNewMessage from 0/0 too. Every read must answer.
   */
  async function readChats(run: Run, which: readonly number[], andPoll: boolean, after: string, mark: number): Promise<Map<number, Snapshot>> {
    const read = async (i: number): Promise<[number, Snapshot]> => {
      const id = run.ids[i]!;
      const [snap, poll] = await Promise.all([
        target.raw.call('Rebuild', encode.rebuild({ chat: { id } })),
        andPoll ? target.raw.call('GetNewMessage', encode.read({ chatId: id, visitorOffset: 0n, agentOffset: 0n })) : undefined,
      ]);
      requests += andPoll ? 2 : 1;
      for (const [how, outcome] of [['a Rebuild of nothing', snap], ['GetNewMessage from 0/0', poll]] as const) {
        if (outcome && outcome.code !== status.OK) {
          fail(`after ${after}, reading chat ${i} by ${how} answered ${status[outcome.code]} "${outcome.details}"${target.loggedErrors(mark)}`);
        }
      }
      const decoded = decodeOrFail(() => RebuildResponse.decode(snap.response!), `the snapshot of chat ${i} after ${after}`);
      if (decoded.code !== ResultCode.RESULT_CODE_OK || !decoded.chat) fail(`after ${after}, the snapshot of chat ${i} is ${show(decoded)}`);
      if (poll) {
        const got = decodeOrFail(() => GetNewMessageResponse.decode(poll.response!), `the read of chat ${i} after ${after}`);
        if (got.code !== ResultCode.RESULT_CODE_OK && got.code !== ResultCode.RESULT_CODE_REBUILD_REQUIRED) fail(`after ${after}, chat ${i} read ${show(got)}`);
        if (got.code === ResultCode.RESULT_CODE_OK && got.ended !== endedOf(decoded.chat!)) {
          fail(`after ${after}, chat ${i} read ended=${got.ended}, but its snapshot ${endedOf(decoded.chat!) ? 'holds' : 'holds no'} EVENT_KIND_ENDED message: ${show(Chat.toJSON(decoded.chat!))}`);
        }
      }
      return [i, { bytes: Buffer.from(snap.response!), chat: decoded.chat! }];
    };
    return new Map(await Promise.all(which.map(read)));
  }

  function decodeOrFail<T>(decode: () => T, what: string): T {
    try {
      return decode();
    } catch (error) {
      return fail(`${what} is not a valid response: ${(error as Error).message}`);
    }
  }

  async function startRun(): Promise<Run> {
    await target.ready();
    runCount += 1;
    const ids = Array.from({ length: CHATS_PER_RUN }, (_, i) => `r${runCount}-${i}`);
    const epochs = await Promise.all(
      ids.map(async (id) => {
        const seeded = await target.raw.call(
          'Rebuild',
          encode.rebuild({
            chat: {
              id,
              messages: [
                { id: MESSAGE_IDS[0], dataOffset: 1n, content: 'hi', messageType: 2n, sendTime: SEED_TIME.wire, seal: seedSeal(id, MESSAGE_IDS[0], 2, '') },
                { id: MESSAGE_IDS[1], dataOffset: 1n, content: 'hi', messageType: 3n, senderId: 'agent-1', sendTime: SEED_TIME.wire, seal: seedSeal(id, MESSAGE_IDS[1], 3, 'agent-1') },
              ],
            },
          }),
        );
        if (seeded.code !== status.OK) fail(`seeding chat ${id} answered ${status[seeded.code]} "${seeded.details}"`);
        return RebuildResponse.decode(seeded.response!).chat!.epoch;
      }),
    );
    const run: Run = { ids, epochs, snapshots: [], sent: [] };
    const read = await readChats(run, ALL_CHATS, true, 'seeding', 0);
    run.snapshots = ALL_CHATS.map((i) => read.get(i)!);
    return run;
  }

  /** The request a command sends: its method, bytes and (for a well-formed one) the call. */
  function prepare(run: Run, command: Command): { method: RawMethod; bytes: Uint8Array; call?: Call; resend?: Sent } | undefined {
    switch (command.kind) {
      case 'call': {
        const call = resolveCall(command.call, run);
        return { method: call.rpc, bytes: encodeCall(call), call };
      }
      case 'mutated': {
        const call = resolveCall(command.call, run);
        return { method: call.rpc, bytes: command.mutations.reduce(mutate, encodeCall(call)) };
      }
      case 'raw':
        return { method: command.method, bytes: command.bytes };
      case 'resend': {
        if (run.sent.length === 0) return undefined;
        const sent = run.sent[command.pick % run.sent.length]!;
        const call = { ...sent.call, request: { ...sent.call.request, visitorOffset: 0n, agentOffset: 0n, epoch: '' } } as Call;
        return { method: call.rpc, bytes: encodeCall(call), call, resend: sent };
      }
    }
  }

  async function step(run: Run, command: Command, index: number): Promise<void> {
    const prepared = prepare(run, command);
    if (!prepared) return;
    const { method, bytes, call, resend } = prepared;
    const what = `command ${index} (${command.kind} ${method})`;
    const mark = target.server.logs.length;
    const outcome = await target.raw.call(method, bytes);
    requests += 1;
    const answer = `${command.kind} ${method} ${status[outcome.code]}` + (process.env.FUZZ_STATS === "details" ? ` ${outcome.details.replace(/"[^"]*"|[0-9]+/g, "_").slice(0, 60)}` : "");
    answers.set(answer, (answers.get(answer) ?? 0) + 1);
    if (!target.alive()) fail(`${what}: ${target.death()}`);
    const refused = outcome.code !== status.OK;
    const named = call ? chatIndex(call, run) : -1;
    if (outcome.code === status.FAILED_PRECONDITION) {
      // A send or SetTyping into an ended chat; a well-formed one naming a tracked chat must name one that ended.
      if (!REFUSED_WHEN_ENDED.has(method) || !ENDED_REFUSAL.test(outcome.details)) {
        fail(`${what} answered FAILED_PRECONDITION "${outcome.details}", which is only for a send or SetTyping into an ended chat`);
      }
      if (named >= 0 && !endedOf(run.snapshots[named]!.chat)) fail(`${what} was refused as into an ended chat ("${outcome.details}"), but chat ${named} has not ended: ${show(Chat.toJSON(run.snapshots[named]!.chat))}`);
    } else if (refused && !REFUSALS.has(outcome.code)) {
      fail(`${what} answered ${status[outcome.code]} "${outcome.details}"${target.loggedErrors(mark)}`);
    }
    // An ack of a tracked chat under the epoch the server gave it, with a count of 1 or more, is
    // well-formed whatever the chat holds (an ack of nothing pending is a no-op): never INVALID_ARGUMENT.
    if (call?.rpc === 'AckTranscript' && named >= 0 && call.request.epoch === run.epochs[named] && outcome.code === status.INVALID_ARGUMENT) {
      const count = call.request.messageCount;
      if (count !== undefined && count >= 1n && count <= 2n ** 53n - 1n) fail(`${what}: an ack of chat ${named} under its own epoch was refused INVALID_ARGUMENT "${outcome.details}"`);
    }
    if (call && CHAT_RPCS.has(method) && hasInvalidUtf8(call.request) && outcome.code !== status.INVALID_ARGUMENT) {
      fail(`${what} carries a string that is not UTF-8, and was answered ${status[outcome.code]}, not INVALID_ARGUMENT`);
    }
    const response = !refused && outcome.response && DECODERS[method] ? decodeOrFail(() => DECODERS[method]!(outcome.response!), `the answer to ${what}`) : undefined;
    if (resend) checkResend(resend, outcome, response as AddVisitorMessageResponse | undefined, what);

    // A well-formed call can only touch the chat it names (if it is one of the run's); anything
    // else could touch any of them.
    const which = named >= 0 ? [named] : call && !CHAT_RPCS.has(method) ? [] : ALL_CHATS;
    const after = await readChats(run, which, !refused, what, mark);
    for (const [i, snapshot] of after) {
      const before = run.snapshots[i]!;
      if (refused && endedOf(snapshot.chat) !== endedOf(before.chat)) {
        fail(`${what} was refused (${status[outcome.code]} "${outcome.details}") but changed whether chat ${i} has ended (now ${endedOf(snapshot.chat)})`);
      }
      if (refused && positionsJson(snapshot.chat) !== positionsJson(before.chat)) {
        fail(`${what} was refused (${status[outcome.code]} "${outcome.details}") but changed the read positions of chat ${i}: before ${positionsJson(before.chat)}, after ${positionsJson(snapshot.chat)}`);
      }
      if (endedOf(before.chat) && !endedOf(snapshot.chat)) fail(`after ${what}, chat ${i} has ended no more: ${show(Chat.toJSON(snapshot.chat))}`);
      if (!refused && call && (method === 'AddVisitorMessage' || method === 'AddAgentMessage') && i === named && endedOf(before.chat) && snapshot.chat.messages.length > before.chat.messages.length) {
        fail(`${what} was accepted into ended chat ${i}, which now holds more messages: ${show(Chat.toJSON(snapshot.chat))}`);
      }
      if (refused && !snapshot.bytes.equals(before.bytes)) {
        fail(`${what} was refused (${status[outcome.code]} "${outcome.details}") but changed chat ${i}:\n  before ${show(Chat.toJSON(before.chat))}\n  after  ${show(Chat.toJSON(snapshot.chat))}`);
      }
      // Held messages never move or change, whatever is accepted.
      const now = new Map(snapshot.chat.messages.map((m) => [m.id, messageJson(m)]));
      for (const m of before.chat.messages) {
        if (now.get(m.id) !== messageJson(m)) fail(`after ${what}, chat ${i} no longer holds ${messageJson(m)} as it did (now ${now.get(m.id)})`);
      }
      run.snapshots[i] = snapshot;
    }
    if (!refused && call && response) checkAccepted(run, call, response, after, what);
  }

  /** A resend of a stored send, exactly as sent, is answered OK with the stored message. */
  function checkResend(sent: Sent, outcome: RawOutcome, response: AddVisitorMessageResponse | undefined, what: string): void {
    if (outcome.code !== status.OK || response?.code !== ResultCode.RESULT_CODE_OK || messageJson(response.message) !== messageJson(sent.stored)) {
      fail(
        `${what}: an honest resend of ${show(sent.call.request)}, stored as ${messageJson(sent.stored)}, was answered ` +
          (outcome.code === status.OK ? show(response) : `${status[outcome.code]} "${outcome.details}"`),
      );
    }
  }

  function checkAccepted(run: Run, call: Call, response: unknown, after: ReadonlyMap<number, Snapshot>, what: string): void {
    const i = chatIndex(call, run);
    switch (call.rpc) {
      case 'AddVisitorMessage':
      case 'AddAgentMessage': {
        const answer = response as AddVisitorMessageResponse;
        if (answer.code !== ResultCode.RESULT_CODE_OK) return;
        if (!answer.message) return fail(`${what} was stored but answered without the message: ${show(answer)}`);
        if (i < 0) return;
        const held = after.get(i)!.chat.messages.find((m) => m.id === answer.message!.id);
        if (messageJson(held) !== messageJson(answer.message)) fail(`${what} answered ${messageJson(answer.message)} but chat ${i} holds ${messageJson(held)}`);
        if (!run.sent.some((s) => s.stored.id === answer.message!.id && chatIndex(s.call, run) === i)) run.sent.push({ call, stored: answer.message });
        return;
      }
      case 'Rebuild': {
        const answer = response as RebuildResponse;
        if (answer.code !== ResultCode.RESULT_CODE_OK || i < 0) return;
        const held = new Set(after.get(i)!.chat.messages.map((m) => m.id));
        for (const m of call.request.chat?.messages ?? []) {
          if (!held.has(textOf(m.id))) fail(`${what} was merged (OK) but chat ${i} lacks uploaded message "${textOf(m.id)}": ${show(Chat.toJSON(after.get(i)!.chat))}`);
        }
        return;
      }
      case 'MarkRead': {
        const answer = response as MarkReadResponse;
        if (answer.code !== ResultCode.RESULT_CODE_OK || i < 0) return;
        const messageId = textOf(call.request.messageId);
        if (!after.get(i)!.chat.messages.some((m) => m.id === messageId)) fail(`${what} marked read "${messageId}" (OK), which chat ${i} does not hold: ${show(Chat.toJSON(after.get(i)!.chat))}`);
        return;
      }
      case 'HealthCheck': {
        const service = textOf(call.request.service);
        const answer = response as HealthCheckResponse;
        if ((service === '' || service === 'chat.v1.ChatService') && answer.status !== HealthCheckResponse_ServingStatus.SERVING) {
          fail(`${what}: health of "${service}" is ${answer.status}, not SERVING`);
        }
        return;
      }
      default:
    }
  }

  /** After every run: the process is alive, and health answers SERVING for the server and the chat service. */
  async function checkServing(): Promise<void> {
    if (!target.alive()) fail(`after the run: ${target.death()}`);
    for (const service of ['', 'chat.v1.ChatService']) {
      const outcome = await target.raw.call('HealthCheck', encode.healthCheck({ service }));
      const answer = outcome.code === status.OK ? HealthCheckResponse.decode(outcome.response!) : undefined;
      if (answer?.status !== HealthCheckResponse_ServingStatus.SERVING) {
        fail(`after the run, health of "${service}" answered ${status[outcome.code]} ${show(answer)}`);
      }
    }
  }

  it(`refuses bad requests with an expected status, changing nothing, and keeps serving (${RUNS} runs)`, async () => {
    const started = performance.now();
    const property = fc.asyncProperty(commands(MAX_COMMANDS, METHODS), async (sequence) => {
      const run = await startRun();
      let index = 0;
      try {
        for (; index < sequence.length; index += 1) await step(run, sequence[index]!, index);
        await checkServing();
      } catch (error) {
        if (!(error instanceof FuzzFailure)) throw error;
        // The commands after the failing one did not run; say which ran, and on which chats.
        const ran = show(sequence.slice(0, index + 1));
        const message = `${error.message}\n  chats ${show(run.ids)}, epochs ${show(run.epochs)}; the commands that ran: ${ran}`;
        if (TOLERATE?.test(message)) {
          tolerated += 1;
          return;
        }
        throw new FuzzFailure(message);
      }
    });
    const seed = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
    const details = await fc.check(property, { numRuns: RUNS, seed, path: process.env.FUZZ_PATH });
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    console.log(`      fuzz: ${runCount} runs, ${requests} requests (reads included) in ${seconds} s; server deaths: ${target.deaths.length}` + (TOLERATE ? `; runs ended by a tolerated failure: ${tolerated}` : ''));
    if (process.env.FUZZ_STATS) console.log([...answers].sort().map(([k, n]) => `        ${k}: ${n}`).join('\n'));
    if (details.failed) {
      const report = fc.defaultReportMessage(details) ?? '';
      const error = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
      throw new Error(
        `${report}\n\nfailure: ${error}\n\nreplay: FUZZ_SEED=${details.seed} FUZZ_PATH=${details.counterexamplePath}` +
          (METHODS ? ` FUZZ_METHODS=${process.env.FUZZ_METHODS}` : '') +
          (TOLERATE ? ` FUZZ_TOLERATE='${process.env.FUZZ_TOLERATE}'` : '') +
          ' npx mocha test/server/fuzz.test.ts' +
          (target.deaths.length > 0 ? `\nserver deaths during the search:\n  ${target.deaths.join('\n  ')}` : ''),
      );
    }
  });
});
