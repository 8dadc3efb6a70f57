import { Metadata, type ServiceError } from '@grpc/grpc-js';
import { expect } from 'chai';
import { RebuildRequest, type RebuildResponse, ResultCode } from '../../generated/chat/v1/chat.js';
import {
  type ChatMessage,
  ChatSession,
  type ChatSessionOptions,
  MessageType,
  type RebuildEvent,
  type RetryEvent,
  type Role,
} from '../../src/client/index.js';
import { chatApi } from '../support/chat-api.js';
import type { RestartableServer } from './restartable.js';
import { testClient } from '../support/servers.js';
import { sessionToken } from '../support/security.js';

/**
 * `OFFSETS_ONLY=1` runs every scenario session with `detectDivergence: false`: the original,
 * offsets-only protocol. The divergence scenarios must then fail (docs/reference.md section 4).
 */
export const OFFSETS_ONLY = process.env.OFFSETS_ONLY === '1';

/** Fast retries: servers here die on purpose, and a test should not wait out a 2 s backoff. */
const FAST_BACKOFF = { initialMs: 5, maxMs: 100 } as const;
/** Rounds of everyone syncing before a chat that still changes counts as not converging. */
const MAX_SYNC_ROUNDS = 12;

const sideOf = (m: Pick<ChatMessage, 'messageType'>) => (m.messageType === MessageType.MESSAGE_TYPE_VISITOR ? 'visitor' : 'agent');

/** One line per message, with everything the invariants compare. */
export const line = (m: ChatMessage) =>
  `${m.id} ${sideOf(m)}@${m.dataOffset} ${MessageType[m.messageType]} from ${m.senderId} at ${m.sendTime?.toISOString() ?? '-'}: ${m.content}`;

/**
 * A client device in a scenario: an SDK session plus what the invariants need to know about it,
 * recorded from the outside: what it sent (in order), what the service acknowledged, what it
 * received, and the rebuilds and retries it reported.
 */
export class Participant {
  /** Ids of the messages this device sent, in send order. */
  readonly sent: string[] = [];
  /** Ids the service acknowledged to this device. */
  readonly acknowledged = new Set<string>();
  /** Ids that reached this device's copy (its own sends included). */
  readonly delivered = new Set<string>();
  readonly rebuilds: RebuildEvent[] = [];
  readonly retries: RetryEvent[] = [];
  private readonly inFlight: Promise<ChatMessage>[] = [];

  constructor(
    readonly name: string,
    readonly session: ChatSession,
  ) {
    session.on('message', (m) => this.delivered.add(m.id));
    session.on('rebuild', (e) => this.rebuilds.push(e));
    session.on('retry', (e) => this.retries.push(e));
  }

  /** Queues a message (the SDK resends it until stored) and resolves with it as stored. */
  send(id: string, content = `${this.name} says ${id}`): Promise<ChatMessage> {
    this.sent.push(id);
    const stored = this.session.send(content, { id }).then((message) => {
      this.acknowledged.add(message.id);
      return message;
    });
    this.inFlight.push(stored);
    stored.catch(() => undefined); // a send cut short by a failing test's cleanup is not an unhandled rejection
    return stored;
  }

  /** Reads until caught up with the server (rebuilding it if asked); returns what is new. */
  sync(): Promise<ChatMessage[]> {
    return this.session.sync();
  }

  /** Waits for every send issued so far to be acknowledged. */
  async settle(): Promise<void> {
    await Promise.all(this.inFlight);
  }

  ids(): string[] {
    return this.session.messages.map((m) => m.id);
  }
}

/** Opens scenario sessions (with OFFSETS_ONLY honoured) and closes them all in `afterEach`. */
export class Cast {
  readonly participants: Participant[] = [];

  async open(name: string, role: Role, servers: readonly string[], options: Partial<ChatSessionOptions> & { chatId: string }): Promise<Participant> {
    const session = await ChatSession.open({ role, servers, backoff: FAST_BACKOFF, detectDivergence: !OFFSETS_ONLY, token: sessionToken(options.chatId, role), ...options });
    const participant = new Participant(name, session);
    this.participants.push(participant);
    return participant;
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.participants.splice(0).map((p) => p.session.close()));
  }
}

/**
 * A cast and the servers of one describe block, all closed and disposed after each test.
 * Call it inside `describe`: it registers the `afterEach`.
 */
export function stage(): { readonly cast: Cast; readonly servers: RestartableServer[] } {
  const cast = new Cast();
  const servers: RestartableServer[] = [];
  afterEach(async () => {
    await cast.closeAll();
    await Promise.all(servers.splice(0).map((s) => s.dispose()));
  });
  return { cast, servers };
}

/**
 * Lets every send finish, then has everyone sync, round after round, until a whole round
 * brings nobody anything new and rebuilds nothing (so every copy has read the server's last
 * state). Fails when that does not happen within a bounded number of rounds (invariant 6).
 */
export async function syncEveryone(participants: readonly Participant[]): Promise<void> {
  await Promise.all(participants.map((p) => p.settle()));
  for (let round = 1; round <= MAX_SYNC_ROUNDS; round += 1) {
    let changed = false;
    for (const p of participants) {
      const rebuildsBefore = p.rebuilds.length;
      const fresh = await p.session.sync();
      if (fresh.length > 0 || p.rebuilds.length > rebuildsBefore) changed = true;
    }
    if (!changed) return;
  }
  expect.fail(`the copies were still changing after ${MAX_SYNC_ROUNDS} rounds of everyone syncing`);
}

/** A server's contiguous view of a chat and everything it holds (beyond gaps too). */
export interface ServerView {
  /** Read with GetNewMessage from 0/0, page by page: conversation order. */
  readonly messages: ChatMessage[];
  readonly offsets: { readonly visitor: number; readonly agent: number };
  /** Every message the server holds, gaps or not (an empty Rebuild's answer), in conversation order. */
  readonly held: ChatMessage[];
}

/**
 * Reads a chat as one server holds it, with the generated client: GetNewMessage from 0/0,
 * paging with the advanced offsets until they reach the server's. A missing chat fails the
 * test (the read created it empty, which the checks below would otherwise take for a chat).
 */
export async function readServer(address: string, chatId: string): Promise<ServerView> {
  const client = testClient(address);
  const api = chatApi(client);
  try {
    const messages: ChatMessage[] = [];
    let at = { visitorOffset: 0, agentOffset: 0 };
    for (;;) {
      const read = await api.getNewMessage({ chatId, ...at });
      expect(read.code, `${address} holds chat ${chatId}`).to.equal(ResultCode.RESULT_CODE_OK);
      messages.push(...read.messages);
      at = {
        visitorOffset: at.visitorOffset + read.messages.filter((m) => sideOf(m) === 'visitor').length,
        agentOffset: at.agentOffset + read.messages.filter((m) => sideOf(m) === 'agent').length,
      };
      const reached = at.visitorOffset >= read.visitorDataOffset && at.agentOffset >= read.agentDataOffset;
      if (reached || read.messages.length === 0) {
        // An upload of nothing merges nothing; its answer lists every message, beyond gaps too.
        const snapshot = await api.rebuild({ chat: { id: chatId } });
        expect(snapshot.truncated, 'the snapshot of a test chat fits one answer').to.equal(false);
        return { messages, offsets: { visitor: read.visitorDataOffset, agent: read.agentDataOffset }, held: snapshot.chat!.messages };
      }
    }
  } finally {
    client.close();
  }
}

function offsetsOf(messages: readonly ChatMessage[], side: 'visitor' | 'agent'): number[] {
  return messages.filter((m) => sideOf(m) === side).map((m) => m.dataOffset);
}

function expectDense(what: string, messages: readonly ChatMessage[]): void {
  for (const side of ['visitor', 'agent'] as const) {
    const offsets = offsetsOf(messages, side).sort((a, b) => a - b);
    expect(offsets, `density: ${what}, ${side} side offsets are 1..N`).to.deep.equal(offsets.map((_, i) => i + 1));
  }
}

function expectUnique(what: string, messages: readonly ChatMessage[]): void {
  const seen = new Set<string>();
  const twice: string[] = [];
  for (const { id } of messages) {
    if (seen.has(id)) twice.push(id);
    seen.add(id);
  }
  expect(twice, `uniqueness: ids held twice by ${what}`).to.deep.equal([]);
}

/**
 * Checks invariants 1-5 of docs/reference.md section 5 for one chat, once failures have stopped and
 * everyone has synced (see {@link syncEveryone}), against the server everyone now talks to:
 *
 * 1. durability: every message acknowledged to a sender or delivered to any client is on the
 *    server and in every copy (and every message sent was acknowledged: nothing is pending);
 * 2. uniqueness: no id twice, on the server or in any copy;
 * 3. convergence: every copy equals the server's view, same messages with the same offsets in
 *    the same order, and the server holds nothing its view cannot reach;
 * 4. sender order: each device's messages sit in its send order;
 * 5. density: each side's offsets are 1..N, on the server and in every copy.
 *
 * Returns the server's view for scenario-specific checks.
 */
export async function expectInvariants(address: string, chatId: string, participants: readonly Participant[]): Promise<ServerView> {
  const view = await readServer(address, chatId);
  const server = view.messages;
  const serverIds = new Set(server.map((m) => m.id));

  expectUnique(`server ${address}`, server);
  expectUnique(`server ${address} (held beyond gaps too)`, view.held);
  expectDense(`server ${address}`, view.held);
  expect(server.map(line), `convergence: server ${address} holds nothing beyond its offsets ${JSON.stringify(view.offsets)}`).to.deep.equal(view.held.map(line));

  const mustHave = new Set<string>();
  for (const p of participants) {
    for (const id of [...p.acknowledged, ...p.delivered]) mustHave.add(id);
    expect(p.session.pending.map((m) => m.id), `progress: ${p.name} has sends still pending`).to.deep.equal([]);
    expect(p.sent.filter((id) => !p.acknowledged.has(id)), `progress: sends of ${p.name} never acknowledged`).to.deep.equal([]);
  }
  const lost = [...mustHave].filter((id) => !serverIds.has(id));
  expect(lost, `durability: acknowledged or delivered messages missing from server ${address}`).to.deep.equal([]);

  for (const p of participants) {
    const copy = p.session.messages;
    expectUnique(p.name, copy);
    expectDense(`${p.name}'s copy`, copy);
    const held = new Set(copy.map((m) => m.id));
    const missing = [...mustHave].filter((id) => !held.has(id));
    expect(missing, `durability: acknowledged or delivered messages missing from ${p.name}'s copy`).to.deep.equal([]);
    expect(copy.map(line), `convergence: ${p.name}'s copy against server ${address}`).to.deep.equal(server.map(line));
    expect(p.session.offsets, `convergence: ${p.name}'s offsets`).to.deep.equal({ visitorOffset: view.offsets.visitor, agentOffset: view.offsets.agent });
  }

  const offsetOf = new Map(server.map((m) => [m.id, m.dataOffset]));
  for (const p of participants) {
    const placed = p.sent.map((id) => offsetOf.get(id));
    const inOrder = placed.every((offset, i) => i === 0 || (offset ?? 0) > (placed[i - 1] ?? 0));
    expect(inOrder, `sender order: ${p.name} sent ${p.sent.join(', ')}; the server holds them at offsets ${placed.join(', ')}`).to.equal(true);
  }
  return view;
}

/** Waits for `condition` (polled every `everyMs`), failing with `what` after `timeoutMs`. */
export async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 10_000, everyMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) expect.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/**
 * The ids a server holds for a chat, gaps or not, from an upload of nothing (which merges
 * nothing and answers with the whole chat). It creates the chat empty where it is missing,
 * as any client's first call would; no read leaves a server untouched. Fails after
 * `timeoutMs` rather than hang on a server that does not answer.
 */
export async function heldIds(address: string, chatId: string, timeoutMs = 5_000): Promise<Set<string>> {
  const client = testClient(address);
  try {
    const answer = await new Promise<RebuildResponse>((resolve, reject) =>
      client.rebuild(RebuildRequest.fromPartial({ chat: { id: chatId } }), new Metadata(), { deadline: Date.now() + timeoutMs }, (error: ServiceError | null, response) =>
        error ? reject(error) : resolve(response),
      ),
    );
    expect(answer.truncated, `the snapshot of ${chatId} on ${address} fits one answer`).to.equal(false);
    return new Set(answer.chat!.messages.map((m) => m.id));
  } finally {
    client.close();
  }
}

/**
 * The serving servers (running, not frozen) that hold every one of `ids` in `chatId`, found by
 * reading each of them ({@link heldIds}): which server holds a chat is for the clients to
 * decide, and a test must not assume it. Also returns a description of what each held.
 */
export async function serversHolding(
  servers: readonly RestartableServer[],
  chatId: string,
  ids: readonly string[],
): Promise<{ holders: RestartableServer[]; described: string }> {
  const holders: RestartableServer[] = [];
  const seen: string[] = [];
  for (const server of servers) {
    if (!server.serving) {
      seen.push(`${server.name}: ${server.alive ? 'frozen' : 'down'}`);
      continue;
    }
    const held = await heldIds(server.address, chatId);
    const lacking = ids.filter((id) => !held.has(id));
    seen.push(`${server.name} holds ${held.size} of chat ${chatId}, lacking [${lacking.join(', ')}]`);
    if (lacking.length === 0) holders.push(server);
  }
  return { holders, described: seen.join('; ') };
}

/**
 * The first serving server (in the order given) holding every one of `ids` in `chatId`; fails
 * when none does: the chat is split over servers, or lost.
 */
export async function holderOf(servers: readonly RestartableServer[], chatId: string, ids: readonly string[]): Promise<RestartableServer> {
  const { holders, described } = await serversHolding(servers, chatId, ids);
  expect(holders.length, `servers holding all ${ids.length} messages of chat ${chatId} (${described})`).to.be.greaterThan(0);
  return holders[0]!;
}

/** Messages that must reach a participant: `ids`, to arrive at `to`. */
export interface Arrivals {
  readonly to: Participant;
  readonly ids: readonly string[];
}

/**
 * Waits until each receiver's copy has announced (as `message` events, recorded from the
 * session's opening) every one of its ids; fails after `timeoutMs` naming what each still lacks.
 */
export async function waitForArrivals(what: string, expected: readonly Arrivals[], timeoutMs = 10_000): Promise<void> {
  const missing = () => expected.map(({ to, ids }) => ({ to, ids, lacks: ids.filter((id) => !to.delivered.has(id)) })).filter((r) => r.lacks.length > 0);
  if (missing().length === 0) return;
  // Checked on every arrival (after the participant's own listener recorded it), failing at the deadline.
  const sessions = [...new Set(expected.map(({ to }) => to.session))];
  await new Promise<void>((resolve, reject) => {
    const stop = () => {
      clearTimeout(timer);
      for (const session of sessions) session.off('message', check);
    };
    const check = () => {
      if (missing().length > 0) return;
      stop();
      resolve();
    };
    const timer = setTimeout(() => {
      stop();
      const report = missing().map((r) => `${r.to.name} lacks ${r.lacks.length} of ${r.ids.length}: [${r.lacks.join(', ')}]`);
      try {
        expect.fail(`${what}: after ${timeoutMs} ms, ${report.join('; ')}`);
      } catch (error) {
        reject(error);
      }
    }, timeoutMs);
    for (const session of sessions) session.on('message', check);
  });
}

/**
 * Runs `check`, then `after` even when `check` failed, and fails with what failed, both
 * messages when both did: a failure report then says not only that (say) messages were not
 * pushed, but whether the copies converged once everyone synced.
 */
export async function checkThen(check: () => Promise<void>, after: () => Promise<void>): Promise<void> {
  const first = await check().then(
    () => undefined,
    (error: unknown) => error as Error,
  );
  try {
    await after();
  } catch (error) {
    if (first) expect.fail(`${first.message}\nand, checked next: ${(error as Error).message}`);
    throw error;
  }
  if (first) throw first;
}
