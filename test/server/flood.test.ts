import { type ServiceError, status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { MessageType, ResultCode } from '../../generated/chat/v1/chat.js';
import { type ChatApi, chatApi } from '../support/chat-api.js';
import { invoke } from '../support/reflection-client.js';
import { type ServerProcess, spawnServer, testClient } from '../support/servers.js';

/**
 * One client floods a small-heap server for FLOOD_MS (a minute with FLOOD_LONG=1), and longer
 * if the outcome a test waits for has not come yet (a slow, shared machine), up to MAX_FLOOD_MS.
 */
const FLOOD_MS = process.env.FLOOD_LONG === '1' ? 60_000 : 12_000;
const MAX_FLOOD_MS = FLOOD_MS + 40_000;
const HEAP_MB = 96;
const NODE_ARGS = [`--max-old-space-size=${HEAP_MB}`];
const CHATS = 8;
const IN_FLIGHT = 16;
const CONTENT = 'x'.repeat(64 * 1024);
const BUDGET_MESSAGES = [/\(--max-held-bytes\); try another server$/, /\(--max-chat-bytes\); continue in a new chat$/, /the server is short of memory .*; try another server$/];

interface FloodResult {
  readonly sent: number;
  readonly sentBytes: number;
  /** RESOURCE_EXHAUSTED details, by count. */
  readonly refusals: Map<string, number>;
  /** Every other failure, as "CODE: details". */
  readonly failures: string[];
  readonly recreated: number;
  readonly ms: number;
}

/**
 * Sends 64 KiB visitor messages into `CHATS` chats, `IN_FLIGHT` at a time, for `ms`, then on
 * until `seen` says the awaited outcome came (or MAX_FLOOD_MS pass); stops if the server dies.
 */
async function flood(server: ServerProcess, ms: number, seen: (result: FloodResult) => boolean): Promise<FloodResult> {
  const client = testClient(server.address);
  const api = chatApi(client);
  const started = performance.now();
  const minimum = started + ms;
  const deadline = started + Math.max(ms, MAX_FLOOD_MS);
  const refusals = new Map<string, number>();
  const failures: string[] = [];
  let sent = 0;
  let recreated = 0;
  let next = 0;
  const alive = () => server.child.exitCode === null && server.child.signalCode === null;
  const open = (chatId: string) => api.getNewMessage({ chatId, visitorOffset: 0, agentOffset: 0 });
  for (let c = 0; c < CHATS; c += 1) await open(`flood-${c}`);

  const result = (): FloodResult => ({ sent, sentBytes: sent * CONTENT.length, refusals, failures, recreated, ms: Math.round(performance.now() - started) });
  const going = () => {
    const now = performance.now();
    return alive() && now < deadline && (now < minimum || !seen(result()));
  };
  const worker = async () => {
    while (going()) {
      const n = (next += 1);
      const chatId = `flood-${n % CHATS}`;
      try {
        const answer = await api.addVisitorMessage({ chatId, visitorOffset: 0, agentOffset: 0, message: { id: `m-${n}`, content: CONTENT } });
        if (answer.code === ResultCode.RESULT_CODE_OK) sent += 1;
        else {
          recreated += 1; // evicted: open it again, as a client would before rebuilding
          await open(chatId);
        }
      } catch (error) {
        const { code, details } = error as ServiceError;
        if (code === status.RESOURCE_EXHAUSTED) refusals.set(details, (refusals.get(details) ?? 0) + 1);
        else if (alive()) failures.push(`${status[code]}: ${details}`);
      }
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  client.close();
  return result();
}

/** A normal client's small conversation: create, send, read back. */
async function smallChat(api: ChatApi): Promise<string[]> {
  await api.getNewMessage({ chatId: 'small', visitorOffset: 0, agentOffset: 0 });
  await api.addVisitorMessage({ chatId: 'small', visitorOffset: 0, agentOffset: 0, message: { id: 'hello', content: 'Hello, is anyone there?' } });
  await api.addAgentMessage({ chatId: 'small', agentId: 'agent-7', visitorOffset: 1, agentOffset: 0, message: { id: 'yes', content: 'Yes, how can I help?', messageType: MessageType.MESSAGE_TYPE_AGENT } });
  const read = await api.getNewMessage({ chatId: 'small', visitorOffset: 0, agentOffset: 0 });
  return read.messages.map((m) => m.id);
}

function summary(result: FloodResult): string {
  const mib = (result.sentBytes / 2 ** 20).toFixed(1);
  return `${result.sent} messages (${mib} MiB) accepted in ${result.ms} ms; refusals ${JSON.stringify([...result.refusals])}; rebuilds ${result.recreated}`;
}

describe(`one client flooding a server with a ${HEAP_MB} MiB heap`, function () {
  this.timeout(MAX_FLOOD_MS + 30_000);
  let server: ServerProcess | undefined;
  afterEach(async () => server?.kill());

  it('keeps the server alive: the budgets refuse with RESOURCE_EXHAUSTED, and a normal client still chats', async () => {
    server = await spawnServer({ LOG_LEVEL: 'info' }, { nodeArgs: NODE_ARGS });
    const { maxHeldBytes } = server.logs.find((l) => l.msg === 'chat server listening')!.config as { maxHeldBytes: number };
    expect(maxHeldBytes, 'the start-up log shows the derived budget: 40% of a heap limit of 96 MiB plus the young generation')
      .to.be.within(0.4 * HEAP_MB * 2 ** 20, 0.4 * (HEAP_MB + 64) * 2 ** 20);
    // Past the budget for a while: every refused 64 KiB upload is still received and decoded.
    const refused = (r: FloodResult) => [...r.refusals.values()].reduce((sum, n) => sum + n, 0);
    const result = await flood(server, FLOOD_MS, (r) => refused(r) >= 200);
    console.log(`      flood: ${summary(result)}`);

    expect(server.child.exitCode, `the server exited: ${server.stderr()}`).to.equal(null);
    expect(server.child.signalCode).to.equal(null);
    expect(result.failures, 'every refusal is RESOURCE_EXHAUSTED').to.deep.equal([]);
    expect(result.refusals.size, 'the flood met a budget').to.be.greaterThan(0);
    for (const details of result.refusals.keys()) {
      expect(BUDGET_MESSAGES.some((pattern) => pattern.test(details)), details).to.equal(true);
    }
    expect(await invoke(server.address, 'grpc.health.v1.Health/Check', { service: '' })).to.deep.equal({ status: 'SERVING' });

    const client = testClient(server.address);
    try {
      expect(await smallChat(chatApi(client))).to.deep.equal(['hello', 'yes']);
    } finally {
      client.close();
    }
  });

  it('with the byte budgets off, the heap high-water mark alone keeps it alive by evicting idle chats', async () => {
    const huge = String(2 ** 50);
    const env = { MAX_HELD_BYTES: huge, MAX_CHAT_BYTES: huge, HEAP_HIGH_WATER_PERCENT: '40', HEAP_LOW_WATER_PERCENT: '30' };
    server = await spawnServer(env, { nodeArgs: NODE_ARGS });
    const evictions = () => server!.logs.filter((l) => l.msg === 'heap above its high-water mark: evicted idle chats');
    const result = await flood(server, FLOOD_MS / 2, (r) => evictions().length > 0 && r.recreated > 0);
    console.log(`      flood against the heap guard: ${summary(result)}`);

    expect(server.child.exitCode, `the server exited: ${server.stderr()}`).to.equal(null);
    expect(result.failures).to.deep.equal([]);
    for (const details of result.refusals.keys()) {
      expect(BUDGET_MESSAGES.some((pattern) => pattern.test(details)), details).to.equal(true);
    }
    expect(evictions().length, 'the guard evicted').to.be.greaterThan(0);
    expect(result.recreated, 'clients found evicted chats missing').to.be.greaterThan(0);
    const last = evictions().at(-1)!.totals as { chats: number; freedBytes: number };
    console.log(`      evictions: ${evictions().length} rounds logged, ${last.chats} chats, ${(last.freedBytes / 2 ** 20).toFixed(1)} MiB`);
    expect(await invoke(server.address, 'grpc.health.v1.Health/Check', { service: '' })).to.deep.equal({ status: 'SERVING' });
  });

  it('(negative control) dies of the same flood with the budgets and the heap guard off', async () => {
    const huge = String(2 ** 50);
    server = await spawnServer({ MAX_HELD_BYTES: huge, MAX_CHAT_BYTES: huge, HEAP_HIGH_WATER_PERCENT: '100' }, { nodeArgs: NODE_ARGS });
    const result = await flood(server, FLOOD_MS, () => false); // until it dies, or MAX_FLOOD_MS
    console.log(`      flood without budgets: ${summary(result)}`);
    const exited = server.child.exitCode !== null || server.child.signalCode !== null;
    expect(exited, 'the server survived without its budgets; the flood proves nothing').to.equal(true);
    expect(server.stderr()).to.match(/heap limit|out of memory/i);
  });
});
