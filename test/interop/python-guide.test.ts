import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Metadata } from '@grpc/grpc-js';
import { expect } from 'chai';
import { type JWTPayload, SignJWT } from 'jose';
import { type ChatMessage, ChatServiceClient, MessageType, ResultCode } from '../../generated/chat/v1/chat.js';
import type { ChatSession } from '../../src/client/index.js';
import { placement } from '../../src/client/placement.js';
import { bearer, chatApi } from '../support/chat-api.js';
import { chatIdPlaced } from '../support/placement.js';
import { testToken } from '../support/security.js';
import { type ServerProcess, spawnServer, testClient } from '../support/servers.js';
import { sessionHarness } from '../support/sessions.js';
import { findPython } from './find-python.js';
import { type PyEvent, PythonProcess } from './python-process.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const DOC = 'docs/python.md';
const CLI = 'examples/python/chat_cli.py';

/** A message as every copy and the server must agree on it, one line each. */
interface Line {
  readonly id: string;
  readonly text: string;
}

const tsLine = (m: ChatMessage): Line => ({
  id: m.id,
  text: `${m.id} ${m.messageType === MessageType.MESSAGE_TYPE_VISITOR ? 'visitor' : 'agent'}@${m.dataOffset} ${MessageType[m.messageType]} from ${m.senderId} at ${m.sendTime?.getTime()}: ${m.content}`,
});

interface PyMessage {
  id: string;
  side: string;
  offset: number;
  type: string;
  content: string;
  sender: string;
  time: [number, number];
}

const pyLine = (m: PyMessage): Line => ({
  id: m.id,
  text: `${m.id} ${m.side}@${m.offset} ${m.type} from ${m.sender} at ${m.time[0] * 1000 + Math.round(m.time[1] / 1e6)}: ${m.content}`,
});

const isMessage = (id: string) => (e: PyEvent) => e.event === 'message' && (e.message as PyMessage).id === id;

/** The fenced blocks of a markdown text in a language, with the line each starts on. */
function blocks(markdown: string, language: string): { code: string; line: number }[] {
  const found: { code: string; line: number }[] = [];
  const fence = new RegExp('^```' + language + '\\n([\\s\\S]*?)^```', 'gm');
  for (const match of markdown.matchAll(fence)) {
    found.push({ code: match[1]!, line: markdown.slice(0, match.index).split('\n').length });
  }
  return found;
}

/** A chat's whole view on a server (offsets only, from 0/0), page by page. */
async function serverView(address: string, chatId: string, metadata?: Metadata): Promise<{ lines: Line[]; epoch: string; messages: ChatMessage[] }> {
  const client = testClient(address);
  try {
    const api = chatApi(client, metadata);
    const messages: ChatMessage[] = [];
    let at = { visitor: 0, agent: 0 };
    let epoch = '';
    for (;;) {
      const page = await api.getNewMessage({ chatId, visitorOffset: at.visitor, agentOffset: at.agent });
      expect(page.code, `reading ${chatId} on ${address}`).to.equal(ResultCode.RESULT_CODE_OK);
      epoch = page.epoch;
      if (page.messages.length === 0) return { lines: messages.map(tsLine), epoch, messages };
      for (const m of page.messages) {
        messages.push(m);
        const side = m.messageType === MessageType.MESSAGE_TYPE_VISITOR ? 'visitor' : 'agent';
        at = { ...at, [side]: Math.max(at[side], m.dataOffset) };
      }
    }
  } finally {
    client.close();
  }
}

/** `promise`, or a failure naming `what` once `ms` have passed. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms)));
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

describe('docs/python.md: a Python walkthrough whose examples run against real servers', function () {
  this.timeout(60_000);
  const harness = sessionHarness();
  const servers: ServerProcess[] = [];
  const pythons: PythonProcess[] = [];
  let python = '';
  const doc = readFileSync(new URL(`../../${DOC}`, import.meta.url), 'utf8');

  before(function () {
    const found = findPython();
    if ('problem' in found) expect.fail(found.problem);
    python = found.python;
    // The stubs, made with the very command the doc shows (its `python3` being the one found).
    const generate = blocks(doc, 'sh').find((b) => b.code.includes('grpc_tools.protoc'));
    expect(generate, `${DOC} shows no grpc_tools.protoc command`).to.not.equal(undefined);
    const script = generate!.code.replace(/^python3 /gm, `${python} `);
    execFileSync('bash', ['-euo', 'pipefail', '-c', script], { cwd: REPO, stdio: 'pipe' });
  });

  afterEach(async function () {
    await Promise.all(pythons.splice(0).map(async (p) => {
      await p.stop();
      if (this.currentTest?.state === 'failed' || process.env.PY_GUIDE_VERBOSE) console.log(p.output());
    }));
    await Promise.all(servers.splice(0).map((s) => s.kill()));
  });

  const start = (name: string, args: readonly string[], env: Record<string, string> = {}) => {
    const p = PythonProcess.start(name, python, [CLI, ...args], REPO, env);
    pythons.push(p);
    return p;
  };

  it('quotes examples/python/ verbatim: each python block of the doc appears in the file its first line names', () => {
    const quoted = blocks(doc, 'python');
    expect(quoted.length, 'python blocks in the doc').to.be.greaterThan(5);
    for (const { code, line } of quoted) {
      const [first, ...rest] = code.split('\n');
      const named = /^# (examples\/python\/[a-z_]+\.py)$/.exec(first!);
      expect(named, `${DOC}:${line}: the block's first line must be "# examples/python/<file>.py"; got ${first}`).to.not.equal(null);
      const file = readFileSync(new URL(`../../${named![1]}`, import.meta.url), 'utf8');
      expect(file.includes(rest.join('\n')), `${DOC}:${line}: the block is not in ${named![1]} as quoted`).to.equal(true);
    }
  });

  it('places a chat on the same home as the TypeScript SDK (examples/python/placement.py against placement())', () => {
    const lists = [
      ['chat-1:50051', 'chat-2:50051', 'chat-3:50051'],
      ['10.0.0.7:50051', '10.0.0.8:50051', '[::1]:50051', 'dns:///chat.internal:443'],
    ];
    for (const chatId of ['order-4711', 'a', 'chat mit Umlaut ä', '订单-4711', 'x'.repeat(200)]) {
      for (const list of lists) {
        const out = execFileSync(python, ['examples/python/placement.py', chatId, ...list], { cwd: REPO, encoding: 'utf8' });
        expect(JSON.parse(out), `placement of ${chatId}`).to.deep.equal(placement(chatId, list));
      }
    }
  });

  it('a Python visitor and agent, a TypeScript agent and the copy-less Python bot talk on A, carry on on B after A is SIGKILLed, and converge: nothing lost, duplicated or reordered', async function () {
    this.timeout(240_000);
    // Small limits, so the copies go up in several Rebuilds (halved after B refuses the first),
    // answers are truncated (the copies then read the whole chat) and reads come in pages; and
    // a short watch lifetime, so the visitor re-watches from its offsets.
    const env = { MAX_CONTENT_BYTES: '2048', MAX_REQUEST_BYTES: '8192', MAX_RESPONSE_BYTES: '4096', WATCH_MAX_AGE_MS: '2000' };
    const [a, b] = await Promise.all([spawnServer(env), spawnServer(env)]);
    servers.push(a, b);
    const list = [a.address, b.address];
    const chatId = chatIdPlaced('py-guide', list); // A is its home, B its fallback
    const common = ['--chat', chatId, '--servers', list.join(','), '--call-timeout-s', '2'];
    // The servers check tokens (the test keys): each Python participant carries its own.
    const tokens = {
      VISITOR_TOKEN: await testToken({ sub: 'visitor-py', role: 'visitor', chatId }),
      AGENT_TOKEN: await testToken({ sub: 'agent-py', role: 'agent' }),
      BOT_TOKEN: await testToken({ sub: 'bot-py', role: 'service' }),
    };
    const visitor = start('python visitor', ['visitor', ...common, '--receive', 'watch', '--token-env', 'VISITOR_TOKEN'], tokens);
    const agent = start('python agent', ['agent', ...common, '--receive', 'poll', '--poll-interval-s', '0.2', '--token-env', 'AGENT_TOKEN'], tokens);
    const bot = start('python bot', ['bot', ...common, '--bot-wait-s', '60', '--token-env', 'BOT_TOKEN'], tokens);
    for (const p of [visitor, agent, bot]) {
      const ready = await p.waitFor('ready', (e) => e.event === 'ready', 20_000);
      expect(ready.order, `${p.name}'s placement`).to.deep.equal(list);
    }
    const tsAgent: ChatSession = await harness.open({ chatId, role: { kind: 'agent', agentId: 'agent-ts' }, servers: list, callTimeoutMs: 2_000 });
    tsAgent.start();

    const sent: Record<string, string[]> = {};
    const acknowledged = new Set<string>();
    const record = (sender: string, id: string) => {
      (sent[sender] ??= []).push(id);
      acknowledged.add(id);
    };
    const text = (id: string) => `${id}: ${'lorem ipsum dolor sit amet '.repeat(22).trimEnd()}`; // about 600 bytes
    const say = async (p: PythonProcess, sender: string, id: string) => {
      const answer = await p.ask(`send ${id} ${text(id)}`, `the acknowledgement of ${id}`, (e) => e.event === 'sent' && (e.message as PyMessage).id === id, 90_000);
      expect((answer.message as PyMessage).content).to.equal(text(id));
      record(sender, id);
    };
    const tsSay = async (id: string) => {
      const stored = await tsAgent.send(text(id), { id });
      expect(stored.content).to.equal(text(id));
      record('agent-ts', id);
    };

    // On A: a conversation, every message pushed or polled to the others.
    for (let i = 1; i <= 12; i += 1) await say(visitor, 'visitor-py', `v-${i}`);
    await agent.waitFor('v-12 polled', isMessage('v-12'), 20_000);
    for (let i = 1; i <= 5; i += 1) await say(agent, 'agent-py', `a-${i}`);
    await say(bot, 'bot-py', 'n-1');
    await tsSay('ts-1');
    for (const id of ['a-5', 'n-1', 'ts-1']) await visitor.waitFor(`${id} pushed to the visitor`, isMessage(id), 20_000);
    // A watch ends with OK at the server's max age; the visitor watches again from its offsets.
    const ended = await visitor.waitFor('a watch ended at its max age', (e) => e.event === 'watch-ended' && e.status === 'OK', 20_000);
    const afterEnd = visitor.events.indexOf(ended);
    await say(agent, 'agent-py', 'a-6');
    await visitor.waitFor('a-6 pushed on the next watch', isMessage('a-6'), 20_000, afterEnd);
    await say(visitor, 'visitor-py', 'v-13'); // the agent may or may not have polled it when A dies
    expect(tsAgent.server).to.equal(a.address);

    // A dies with the chat. Everyone carries on; the bot's post waits until B holds its n-1.
    await a.kill();
    await Promise.all([
      say(bot, 'bot-py', 'n-2'),
      say(visitor, 'visitor-py', 'v-14'),
      say(agent, 'agent-py', 'a-7'),
      tsSay('ts-2'),
    ]);
    for (const p of [visitor, agent]) await p.waitFor(`${p.name} moved to B`, (e) => e.event === 'moved' && e.address === b.address, 5_000);
    expect(tsAgent.server).to.equal(b.address);

    const converged = await expectConverged(b.address);
    const rebuilds = [...visitor.events, ...agent.events].filter((e) => e.event === 'rebuild');
    // The paths the doc describes ran: an upload halved after B refused its size, split in
    // parts, and a truncated answer followed by a whole re-read.
    expect([...visitor.events, ...agent.events].some((e) => e.event === 'upload-halved'), 'an upload halved').to.equal(true);
    expect(rebuilds.some((e) => (e.parts as number) > 1), 'an upload in several parts').to.equal(true);
    expect(rebuilds.some((e) => e.complete === false), 'a truncated Rebuild answer, then a whole re-read').to.equal(true);

    // A comes back, empty, on its address: everyone returns to the chat's home (health probes),
    // rebuilds it, and carries on there; the bot's next notice waits until A holds its n-2.
    const marks = [visitor, agent, bot].map((p) => p.events.length);
    const tsHome = new Promise<void>((resolve) => tsAgent.on('connected', (address) => address === a.address && resolve()));
    const restarted = await spawnServer({ ...env, PORT: String(a.port) });
    servers.push(restarted);
    await Promise.all([
      say(bot, 'bot-py', 'n-3'),
      say(agent, 'agent-py', 'a-8'),
      say(visitor, 'visitor-py', 'v-15'),
      tsSay('ts-3'),
    ]);
    for (const [i, p] of [visitor, agent, bot].entries()) {
      await p.waitFor(`${p.name} back home on A`, (e) => e.event === 'moved' && e.address === a.address, 20_000, marks[i]);
    }
    await within(tsHome, 20_000, 'the typescript agent back on A');
    const home = await expectConverged(a.address);
    expect(home.epoch, 'a new incarnation on the restarted A').to.not.equal(converged.epoch);

    /**
     * Has every participant read until level with the server at `address`, and checks that every
     * copy is its view, and that its view holds each acknowledged message once, each side dense,
     * each sender's messages in the order it sent them.
     */
    async function expectConverged(address: string) {
      const dump = async (p: PythonProcess) => {
        await p.ask('sync', 'synced', (e) => e.event === 'synced', 60_000);
        const copy = await p.ask('dump', 'its copy', (e) => e.event === 'copy', 10_000);
        return { lines: (copy.messages as PyMessage[]).map(pyLine), epoch: copy.epoch as string, strays: copy.strays as number };
      };
      const texts = (lines: Line[]) => lines.map((l) => l.text).join('\n');
      for (let round = 1; ; round += 1) {
        await tsAgent.sync();
        const copies = { 'python visitor': await dump(visitor), 'python agent': await dump(agent) };
        const tsLines = tsAgent.messages.map(tsLine);
        const view = await serverView(address, chatId);
        const settled = texts(tsLines) === texts(view.lines) && Object.values(copies).every((c) => texts(c.lines) === texts(view.lines));
        if (!settled && round < 4) continue; // a rebuild by one participant can move what another just read
        expect(texts(tsLines), `the typescript agent's copy against ${address}'s view`).to.equal(texts(view.lines));
        for (const [name, copy] of Object.entries(copies)) {
          expect(texts(copy.lines), `${name}'s copy against ${address}'s view`).to.equal(texts(view.lines));
          expect(copy.epoch, `${name}'s epoch`).to.equal(view.epoch);
          expect(copy.strays, `${name}'s strays`).to.equal(0);
        }
        // Nothing lost or duplicated: the server holds each acknowledged message once, and nothing else.
        const ids = view.messages.map((m) => m.id);
        expect(new Set(ids).size, 'distinct ids').to.equal(ids.length);
        expect([...ids].sort()).to.deep.equal([...acknowledged].sort());
        // Each side is dense, 1..N.
        for (const visitorSide of [true, false]) {
          const offsets = view.messages
            .filter((m) => (m.messageType === MessageType.MESSAGE_TYPE_VISITOR) === visitorSide)
            .map((m) => m.dataOffset)
            .sort((x, y) => x - y);
          expect(offsets).to.deep.equal(offsets.map((_, i) => i + 1));
        }
        // Nothing reordered: each sender's messages sit on their side in the order it sent them.
        for (const [sender, order] of Object.entries(sent)) {
          const placed = view.messages.filter((m) => m.senderId === sender).sort((x, y) => x.dataOffset - y.dataOffset).map((m) => m.id);
          expect(placed, `${sender}'s messages on ${address}`).to.deep.equal(order);
        }
        return view;
      }
    }
  });

  it('talks to a server that checks tokens: a bearer token per role, sender ids from its sub, another chat refused', async () => {
    const secret = 'a shared secret of the python walkthrough test, 32+ bytes';
    const dir = mkdtempSync(join(tmpdir(), 'py-guide-auth-'));
    try {
      const secretFile = join(dir, 'secret');
      writeFileSync(secretFile, secret);
      const server = await spawnServer({ AUTH_HS256_SECRET_FILE: secretFile });
      servers.push(server);
      const sign = (claims: JWTPayload) => new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode(secret));
      const chatId = 'py-guide-tokens';
      const env = {
        VISITOR_TOKEN: await sign({ sub: 'visitor-py', role: 'visitor', chat_id: chatId }),
        AGENT_TOKEN: await sign({ sub: 'agent-py', role: 'agent' }),
        STRANGER_TOKEN: await sign({ sub: 'visitor-py', role: 'visitor', chat_id: 'another-chat' }),
      };
      const common = ['--chat', chatId, '--servers', server.address, '--call-timeout-s', '2'];
      const visitor = start('python visitor with a token', ['visitor', ...common, '--receive', 'watch', '--token-env', 'VISITOR_TOKEN'], env);
      const agent = start('python agent with a token', ['agent', ...common, '--receive', 'poll', '--poll-interval-s', '0.2', '--token-env', 'AGENT_TOKEN'], env);
      const stranger = start('python visitor with a token for another chat', ['visitor', ...common, '--receive', 'none', '--token-env', 'STRANGER_TOKEN'], env);
      for (const p of [visitor, agent, stranger]) await p.waitFor('ready', (e) => e.event === 'ready', 20_000);

      await visitor.ask('send v-1 hello with a token', 'the acknowledgement of v-1', (e) => e.event === 'sent', 30_000);
      await agent.waitFor('v-1 polled', isMessage('v-1'), 20_000);
      await agent.ask('send a-1 answered with a token', 'the acknowledgement of a-1', (e) => e.event === 'sent', 30_000);
      await visitor.waitFor('a-1 pushed', isMessage('a-1'), 20_000);
      const refused = await stranger.ask('send s-1 not my chat', 'a refusal', () => false, 30_000).then(
        () => expect.fail('a visitor token for another chat was taken'),
        (e: unknown) => String(e),
      );
      expect(refused).to.match(/PERMISSION_DENIED/);

      const view = await serverView(server.address, chatId, bearer(env.AGENT_TOKEN));
      expect(view.messages.map((m) => `${m.id} ${m.senderId}`)).to.deep.equal(['v-1 visitor-py', 'a-1 agent-py']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('shows why notice_bot.py waits: a bot that posts blind (0/0, no epoch, a read to learn the chat) after a failover lands before its own earlier notice', async () => {
    const [a, b] = [await harness.server(), await harness.server()];
    const list = [a.address, b.address];
    const chatId = chatIdPlaced('py-guide-blind-bot', list);
    const visitor = await harness.open({ chatId, role: { kind: 'visitor', visitorId: 'visitor-ts' }, servers: list, callTimeoutMs: 1_000 });
    await visitor.send('my order is late', { id: 'v-1' });
    const blindPost = async (client: ChatServiceClient, id: string) => {
      const api = chatApi(client);
      const post = () => api.addAgentMessage({ chatId, agentId: 'blind-bot', message: { id, content: `notice ${id}`, messageType: MessageType.MESSAGE_TYPE_BOT } });
      let answer = await post();
      if (answer.code === ResultCode.RESULT_CODE_REBUILD_REQUIRED) {
        await api.getNewMessage({ chatId }); // "learn" the chat: a read creates it, empty
        answer = await post();
      }
      expect(answer.code, `${id} posted`).to.equal(ResultCode.RESULT_CODE_OK);
      return answer.message!;
    };
    expect((await blindPost(a.client, 'n-1')).dataOffset).to.equal(1);
    await visitor.sync(); // the visitor holds n-1
    await a.close(); // A dies with the chat
    expect((await blindPost(b.client, 'n-2')).dataOffset, 'n-2 in the chat its read created').to.equal(1);
    await visitor.sync(); // fails over to B and uploads its whole copy: n-1 finds agent offset 1 taken
    expect(visitor.server).to.equal(b.address);
    const { messages } = await serverView(b.address, chatId);
    const agentSide = messages.filter((m) => m.messageType !== MessageType.MESSAGE_TYPE_VISITOR).sort((x, y) => x.dataOffset - y.dataOffset);
    expect(agentSide.map((m) => `${m.id}@${m.dataOffset}`), "the bot's notices on B").to.deep.equal(['n-2@1', 'n-1@2']);
  });
});
