import { status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { type ChatMessage, ChatSession, type ChatSessionOptions, MessageType, type RebuildEvent } from '../../src/client/index.js';
import { chatApi } from '../support/chat-api.js';
import { type Haproxy, startHaproxy } from '../support/haproxy.js';
import { type ServerProcess, spawnServer, testClient } from '../support/servers.js';
import { sessionToken } from '../support/security.js';

const CHAT = 'behind-the-balancer';
const ROUNDS_BEFORE = 3;
const ROUNDS_AFTER = 3;
/** How a proxy may answer for a backend that died: never a deadline, since it fails fast. */
const DEAD_BACKEND = new Set<status>([status.UNAVAILABLE, status.INTERNAL, status.UNKNOWN]);

const line = (m: ChatMessage) => `${m.id}@${m.dataOffset} (${MessageType[m.messageType]}): ${m.content}`;
const offsetsOf = (messages: readonly ChatMessage[], type: MessageType) => messages.filter((m) => m.messageType === type).map((m) => m.dataOffset);

/** What a server holds of the chat, read from it directly (not through the balancer), in conversation order. */
async function serverView(address: string): Promise<ChatMessage[]> {
  const client = testClient(address);
  try {
    const read = await chatApi(client).getNewMessage({ chatId: CHAT, visitorOffset: 0, agentOffset: 0 });
    expect(read.messages, 'the whole chat in one answer').to.have.length(read.visitorDataOffset + read.agentDataOffset);
    return read.messages;
  } finally {
    client.close();
  }
}

describe('ChatSession behind one load-balanced address (haproxy)', function () {
  this.timeout(30_000);
  const sessions: ChatSession[] = [];
  const processes: ServerProcess[] = [];
  let balancer: Haproxy | undefined;
  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && balancer) console.log(`haproxy's log:\n${balancer.logs.join('\n')}`);
    await Promise.all(sessions.splice(0).map((s) => s.close()));
    await balancer?.stop();
    balancer = undefined;
    await Promise.all(processes.splice(0).map((p) => p.kill()));
  });

  /** Servers A and B behind haproxy, and a visitor and an agent that know only haproxy's address. */
  const setUp = async (options: Partial<ChatSessionOptions> = {}) => {
    const a = await spawnServer();
    processes.push(a);
    const b = await spawnServer();
    processes.push(b);
    const lb = (balancer = await startHaproxy([a.address, b.address]));
    const open = async (role: ChatSessionOptions['role']) => {
      const session = await ChatSession.open({ chatId: CHAT, role, servers: [lb.address], backoff: { initialMs: 5, maxMs: 100 }, token: sessionToken(CHAT, role), ...options });
      sessions.push(session);
      return session;
    };
    return { a, b, lb, visitor: await open({ kind: 'visitor', visitorId: 'vis-1' }), agent: await open({ kind: 'agent', agentId: 'agent-7' }) };
  };

  it('goes on through the same address when the server behind it dies: haproxy moves to B and the sessions rebuild B', async () => {
    const { a, b, lb, visitor, agent } = await setUp();
    const retries: { who: string; address: string; code: status; details: string }[] = [];
    const rebuilds: RebuildEvent[] = [];
    for (const [who, session] of [['visitor', visitor], ['agent', agent]] as const) {
      session.on('retry', (e) => retries.push({ who, address: e.address, code: e.error.code, details: e.error.details }));
      session.on('rebuild', (e) => rebuilds.push(e));
    }
    const converse = async (from: number, to: number) => {
      for (let i = from; i < to; i += 1) {
        await visitor.send(`question ${i}`, { id: `v${i}` });
        await agent.sync();
        await agent.send(`answer ${i}`, { id: `a${i}` });
        await visitor.sync();
      }
    };

    await converse(0, ROUNDS_BEFORE);
    expect((await serverView(a.address)).map(line), 'A, the first server up, is the chat home').to.deep.equal(visitor.messages.map(line));
    expect(retries).to.deep.equal([]);
    rebuilds.length = 0; // the first send set the chat up on A

    await a.kill();
    await converse(ROUNDS_BEFORE, ROUNDS_BEFORE + ROUNDS_AFTER);
    await visitor.sync();
    await agent.sync();

    // The visitor is first to reach B, which lacks the chat, and uploads all it holds.
    expect(rebuilds[0], 'a rebuild of B through the balancer').to.deep.equal({
      address: lb.address,
      serverBefore: { visitor: -1, agent: -1 },
      reason: 'missing',
      uploaded: 2 * ROUNDS_BEFORE,
    });
    // A call haproxy had bound to A before its health check noticed is answered HTTP 503, which
    // grpc-js reports as UNAVAILABLE; with one address, the SDK's retry goes through haproxy again.
    for (const retry of retries) {
      const seen = `${retry.who} saw ${status[retry.code]} (${retry.details})`;
      expect(retry.address, seen).to.equal(lb.address);
      expect(DEAD_BACKEND.has(retry.code), seen).to.equal(true);
    }

    const transcript = visitor.messages.map(line);
    expect(agent.messages.map(line)).to.deep.equal(transcript);
    expect((await serverView(b.address)).map(line), "B's view").to.deep.equal(transcript);
    const all = Array.from({ length: ROUNDS_BEFORE + ROUNDS_AFTER }, (_, i) => i + 1);
    expect(offsetsOf(visitor.messages, MessageType.MESSAGE_TYPE_VISITOR), 'visitor side').to.deep.equal(all);
    expect(offsetsOf(visitor.messages, MessageType.MESSAGE_TYPE_AGENT), 'agent side').to.deep.equal(all);
    expect(visitor.pending).to.deep.equal([]);
    expect(agent.pending).to.deep.equal([]);
  });

  it('behind a balancer hashing on x-chat-id: each chat meets on one backend, chats spread, and a dead backend moves only its own chats', async () => {
    const backends = [await spawnServer(), await spawnServer()];
    processes.push(...backends);
    const lb = (balancer = await startHaproxy(backends.map((p) => p.address), 'chat-id'));
    const chatIds = Array.from({ length: 16 }, (_, i) => `hashed-${i}`);
    const pairs = await Promise.all(
      chatIds.map(async (chatId) => {
        const open = async (role: ChatSessionOptions['role']) => {
          const session = await ChatSession.open({ chatId, role, servers: [lb.address], backoff: { initialMs: 5, maxMs: 100 }, token: sessionToken(chatId, role) });
          sessions.push(session);
          return session;
        };
        const pair = { chatId, visitor: await open({ kind: 'visitor', visitorId: `vis-${chatId}` }), agent: await open({ kind: 'agent', agentId: 'agent-7' }), rebuilds: [] as RebuildEvent[] };
        for (const session of [pair.visitor, pair.agent]) session.on('rebuild', (e) => pair.rebuilds.push(e));
        return pair;
      }),
    );
    const converse = (round: string) =>
      Promise.all(
        pairs.map(async ({ visitor, agent }) => {
          await visitor.send(`question ${round}`, { id: `v-${round}` });
          await agent.sync();
          await agent.send(`answer ${round}`, { id: `a-${round}` });
          await visitor.sync();
        }),
      );
    /** The backends that logged a rebuild of `chatId` (every chat is set up by one, on its first call there). */
    const backendsOf = (chatId: string) => backends.filter((p) => p.logs.some((entry) => entry.msg === 'rebuild' && entry.chatId === chatId));

    await converse('1');
    const homes = new Map(pairs.map(({ chatId }) => [chatId, backendsOf(chatId)]));
    for (const [chatId, on] of homes) expect(on.map((p) => p.address), `${chatId} lives on one backend`).to.have.length(1);
    const [dying, surviving] = backends as [ServerProcess, ServerProcess];
    const moving = pairs.filter((p) => homes.get(p.chatId)![0] === dying);
    const staying = pairs.filter((p) => homes.get(p.chatId)![0] === surviving);
    expect(moving.length, 'chats on the first backend').to.be.greaterThan(0);
    expect(staying.length, 'chats on the second backend').to.be.greaterThan(0);
    for (const pair of pairs) pair.rebuilds.length = 0;

    await dying.kill();
    await converse('2');
    for (const { chatId, rebuilds } of staying) expect(rebuilds, `${chatId}, on the surviving backend, is left alone`).to.deep.equal([]);
    for (const { chatId, rebuilds } of moving) expect(rebuilds.map((e) => e.reason), `${chatId} moved and rebuilt the survivor`).to.include('missing');
    for (const { chatId, visitor, agent } of pairs) {
      expect(agent.messages.map(line), chatId).to.deep.equal(visitor.messages.map(line));
      expect(visitor.messages.map((m) => m.id), chatId).to.have.members(['v-1', 'a-1', 'v-2', 'a-2']);
    }
  });

  it('keeps a watch going through the same address: the stream haproxy broke is resumed on B, rebuilt', async () => {
    // A poll interval far beyond the test: whatever the agent gets is pushed.
    const { a, b, visitor, agent } = await setUp({ pollIntervalMs: 600_000 });
    // Every arrival is recorded from the start: a push may come before the test asks for it.
    const received = new Set<string>();
    const waiting = new Map<string, () => void>();
    agent.on('message', (m) => {
      received.add(m.id);
      waiting.get(m.id)?.();
    });
    const arrived = (id: string) => new Promise<void>((resolve) => (received.has(id) ? resolve() : waiting.set(id, resolve)));
    agent.start();
    await visitor.send('before', { id: 'v-before' });
    await arrived('v-before');

    await a.kill();
    await visitor.send('after A died', { id: 'v-after' });
    await arrived('v-after');
    expect(agent.messages.map(line)).to.deep.equal(visitor.messages.map(line));
    expect((await serverView(b.address)).map(line), "B's view").to.deep.equal(visitor.messages.map(line));
  });
});
