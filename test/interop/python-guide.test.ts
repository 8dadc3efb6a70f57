import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Metadata } from '@grpc/grpc-js';
import { expect } from 'chai';
import { type JWTPayload, SignJWT } from 'jose';
import { type ChatMessage, ChatServiceClient, EventKind, MessageType, ResultCode } from '../../generated/chat/v1/chat.js';
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
    const env = { MAX_CONTENT_BYTES: '2048', MAX_REQUEST_BYTES: '32768', MAX_RESPONSE_BYTES: '4096', WATCH_MAX_AGE_MS: '2000' };
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
    const text = (id: string) => `${id}: ${'lorem ipsum dolor sit amet '.repeat(70).trimEnd()}`; // about 1900 bytes
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

  const archiverOf = (name: string, args: readonly string[], env: Record<string, string> = {}) => {
    const p = PythonProcess.start(name, python, ['examples/python/transcript_archiver.py', ...args], REPO, env);
    pythons.push(p);
    return p;
  };
  const sentWith = (id: string) => (e: PyEvent) => e.event === 'sent' && (e.message as PyMessage).id === id;
  const eventOf = (e: PyEvent) => (e.message as { chat_event?: { kind: string; participant: string; to: string; reason: string } }).chat_event;

  it('a support conversation in Python: an agent joins, an attachment, typing and read positions seen by the others, a transfer, the end (a send after it refused), and the transcript archived once', async function () {
    this.timeout(120_000);
    const server = await spawnServer({ TYPING_TTL_MS: '1500' });
    servers.push(server);
    const chatId = 'py-guide-support';
    const dir = mkdtempSync(join(tmpdir(), 'py-guide-transcripts-'));
    try {
      const env = {
        VISITOR_TOKEN: await testToken({ sub: 'visitor-py', role: 'visitor', chatId }),
        AGENT1_TOKEN: await testToken({ sub: 'agent-1-py', role: 'agent' }),
        AGENT2_TOKEN: await testToken({ sub: 'agent-2-py', role: 'agent' }),
        ARCHIVER_TOKEN: await testToken({ sub: 'archiver-py', role: 'service' }),
      };
      const common = ['--chat', chatId, '--servers', server.address, '--call-timeout-s', '2'];
      const archiver = archiverOf('python archiver', ['--servers', server.address, '--dir', dir, '--token-env', 'ARCHIVER_TOKEN'], env);
      const visitor = start('python visitor', ['visitor', ...common, '--receive', 'watch', '--token-env', 'VISITOR_TOKEN'], env);
      const agent1 = start('python agent 1', ['agent', ...common, '--id', 'agent-1-py', '--receive', 'watch', '--token-env', 'AGENT1_TOKEN'], env);
      const agent2 = start('python agent 2', ['agent', ...common, '--id', 'agent-2-py', '--receive', 'none', '--token-env', 'AGENT2_TOKEN'], env);
      for (const p of [archiver, visitor, agent1, agent2]) await p.waitFor('ready', (e) => e.event === 'ready', 20_000);

      await visitor.ask('send v-1 hello, my order is late', 'v-1 sent', sentWith('v-1'), 30_000);
      // The agent joins: a SYSTEM message with an empty content and a JOINED event about itself.
      const joined = await agent1.ask('join j-1', 'j-1 sent', sentWith('j-1'), 30_000);
      expect((joined.message as PyMessage).type).to.equal('MESSAGE_TYPE_SYSTEM');
      const seenJoin = await visitor.waitFor('the join pushed', isMessage('j-1'), 20_000);
      expect(eventOf(seenJoin)).to.deep.equal({ kind: 'EVENT_KIND_JOINED', participant: 'agent-1-py', to: '', reason: '' });

      // An attachment: a reference (https uri, type, size, sha256, name), never the bytes.
      const sha = 'ab'.repeat(32);
      await visitor.ask(`attach v-2 https://files.example.com/o/4711/receipt.pdf application/pdf 48213 ${sha} receipt.pdf here is my receipt`, 'v-2 sent', sentWith('v-2'), 30_000);
      const attached = await agent1.waitFor('v-2 pushed with its attachment', isMessage('v-2'), 20_000);
      expect((attached.message as { attachments?: unknown }).attachments).to.deep.equal([
        { uri: 'https://files.example.com/o/4711/receipt.pdf', media_type: 'application/pdf', size_bytes: 48213, sha256: sha, name: 'receipt.pdf' },
      ]);
      const badAttachment = await visitor.ask(`attach v-bad http://files.example.com/x application/pdf 10 ${sha} x.pdf plain http`, 'a refusal', () => false, 30_000).then(
        () => expect.fail('an http attachment was taken'),
        (e: unknown) => String(e),
      );
      expect(badAttachment).to.match(/INVALID_ARGUMENT/);

      // Typing: the visitor types, the agent's watch is pushed a message-less response saying so; it lapses.
      const typingFrom = agent1.events.length;
      const typed = await visitor.ask('typing on', 'typing set', (e) => e.event === 'typing', 20_000);
      expect(typed.expires, 'an expire_time').to.be.a('string');
      await agent1.waitFor('the visitor typing', (e) => e.event === 'state' && JSON.stringify(e.typing) === '["visitor-py"]', 10_000, typingFrom);
      await agent1.waitFor('the typing lapsed', (e) => e.event === 'state' && JSON.stringify(e.typing) === '[]', 10_000, typingFrom);

      // Read positions: MarkRead by the agent, pushed to the visitor's watch, and in a read's answer.
      const readFrom = visitor.events.length;
      const read = await agent1.ask('read v-2', 'marked read', (e) => e.event === 'read', 20_000);
      expect(read.read_positions).to.deep.equal({ 'agent-1-py': 'v-2' });
      await visitor.waitFor('the read position pushed', (e) => e.event === 'state' && (e.read_positions as Record<string, string>)?.['agent-1-py'] === 'v-2', 10_000, readFrom);
      const unknown = await agent1.ask('read no-such-message', 'a refusal', () => false, 20_000).then(
        () => expect.fail('a read position on an unknown message was taken'),
        (e: unknown) => String(e),
      );
      expect(unknown).to.match(/NOT_FOUND/);

      // The transfer to a second agent, which catches up by reading (GetNewMessage) and joins.
      await agent1.ask('transfer t-1 agent-2-py end of my shift', 't-1 sent', sentWith('t-1'), 30_000);
      const seenTransfer = await visitor.waitFor('the transfer pushed', isMessage('t-1'), 20_000);
      expect(eventOf(seenTransfer)).to.deep.equal({ kind: 'EVENT_KIND_TRANSFERRED', participant: 'agent-1-py', to: 'agent-2-py', reason: 'end of my shift' });
      await agent2.ask('sync', 'synced', (e) => e.event === 'synced', 30_000);
      const copy2 = await agent2.ask('dump', 'its copy', (e) => e.event === 'copy', 10_000);
      expect(copy2.read_positions, 'read positions from GetNewMessage').to.deep.equal({ 'agent-1-py': 'v-2' });
      expect(copy2.ended).to.equal(false);
      await agent2.ask('join j-2', 'j-2 sent', sentWith('j-2'), 30_000);
      await agent2.ask('send a-1 your parcel ships today', 'a-1 sent', sentWith('a-1'), 30_000);
      await visitor.waitFor('a-1 pushed', isMessage('a-1'), 20_000);

      // The end: pushed with ended set; a send after it is refused with FAILED_PRECONDITION.
      const endFrom = visitor.events.length;
      await agent2.ask('end e-1 resolved', 'e-1 sent', sentWith('e-1'), 30_000);
      const seenEnd = await visitor.waitFor('the end pushed', isMessage('e-1'), 20_000, endFrom);
      expect(eventOf(seenEnd)).to.deep.equal({ kind: 'EVENT_KIND_ENDED', participant: 'agent-2-py', to: '', reason: 'resolved' });
      await visitor.waitFor('ended', (e) => e.event === 'state' && e.ended === true, 10_000, endFrom);
      const refused = await visitor.ask('send v-3 one more thing', 'a refusal', () => false, 30_000).then(
        () => expect.fail('a send after the end was taken'),
        (e: unknown) => String(e),
      );
      expect(refused).to.match(/FAILED_PRECONDITION/);

      // The archiver stored the transcript, every message of it, and acknowledged it.
      const view = await serverView(server.address, chatId, bearer(env.AGENT1_TOKEN));
      const ids = ['v-1', 'j-1', 'v-2', 't-1', 'j-2', 'a-1', 'e-1'];
      expect([...view.messages.map((m) => m.id)].sort()).to.deep.equal([...ids].sort());
      const acked = await archiver.waitFor('the transcript acknowledged', (e) => e.event === 'acked' && e.chat === chatId, 20_000);
      expect(acked.message_count).to.equal(ids.length);
      expect(acked.epoch).to.equal(view.epoch);
      const listed = await archiver.ask('list', 'the stored transcripts', (e) => e.event === 'stored', 10_000);
      expect(listed.transcripts).to.deep.equal([{ chat_id: chatId, epoch: view.epoch, message_count: ids.length }]);
      // Acknowledged: a new watcher is not offered it again. The first one stops, so what the
      // new one is offered, it archives itself.
      await archiver.stop();
      const second = archiverOf('python archiver, again', ['--servers', server.address, '--dir', dir, '--token-env', 'ARCHIVER_TOKEN'], env);
      await second.waitFor('ready', (e) => e.event === 'ready', 20_000);
      // Another chat ends: once the new watcher has archived that one (pending until acknowledged,
      // so offered however late its stream opens), it would have had the first too.
      const marker = `${chatId}-marker`;
      const client = testClient(server.address);
      try {
        const api = chatApi(client);
        const { epoch } = await api.getNewMessage({ chatId: marker });
        await api.addAgentMessage({ chatId: marker, agentId: 'closer', epoch, message: { id: 'end', content: '', messageType: MessageType.MESSAGE_TYPE_SYSTEM, event: { kind: EventKind.EVENT_KIND_ENDED } } });
      } finally {
        client.close();
      }
      await second.waitFor('the other chat archived', (e) => e.event === 'archived' && e.chat === marker, 20_000);
      expect(second.events.filter((e) => (e.event === 'archived' || e.event === 'kept') && e.chat === chatId), 'offers after the ack').to.deep.equal([]);
      // A visitor token may not watch transcripts.
      const stranger = archiverOf('python archiver with a visitor token', ['--servers', server.address, '--dir', dir, '--token-env', 'VISITOR_TOKEN'], env);
      await stranger.waitFor('refused', (e) => e.event === 'watch-ended' && e.status === 'PERMISSION_DENIED', 20_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a transcript the server lost is completed by an agent\'s copy: rebuilt into another server, which offers it again since the chat there has an end', async function () {
    this.timeout(120_000);
    const [a, b] = await Promise.all([spawnServer(), spawnServer()]);
    servers.push(a, b);
    const list = [a.address, b.address];
    const chatId = chatIdPlaced('py-guide-lost-transcript', list); // A is its home
    const dir = mkdtempSync(join(tmpdir(), 'py-guide-lost-'));
    try {
      const env = {
        VISITOR_TOKEN: await testToken({ sub: 'visitor-py', role: 'visitor', chatId }),
        AGENT_TOKEN: await testToken({ sub: 'agent-py', role: 'agent' }),
        ARCHIVER_TOKEN: await testToken({ sub: 'archiver-py', role: 'service' }),
      };
      const common = ['--chat', chatId, '--servers', list.join(','), '--call-timeout-s', '2'];
      const visitor = start('python visitor', ['visitor', ...common, '--receive', 'none', '--token-env', 'VISITOR_TOKEN'], env);
      const agent = start('python agent', ['agent', ...common, '--receive', 'none', '--token-env', 'AGENT_TOKEN'], env);
      for (const p of [visitor, agent]) await p.waitFor('ready', (e) => e.event === 'ready', 20_000);
      await visitor.ask('send v-1 where is my parcel', 'v-1 sent', sentWith('v-1'), 30_000);
      await agent.ask('sync', 'synced', (e) => e.event === 'synced', 30_000); // the agent's copy holds v-1
      await agent.ask('join j-1', 'j-1 sent', sentWith('j-1'), 30_000);
      await agent.ask('send a-1 it ships today', 'a-1 sent', sentWith('a-1'), 30_000);
      await visitor.ask('sync', 'synced', (e) => e.event === 'synced', 30_000);
      await visitor.ask('read a-1', 'marked read', (e) => e.event === 'read', 30_000);
      await agent.ask('end e-1 resolved', 'e-1 sent', sentWith('e-1'), 30_000);
      await agent.ask('sync', 'synced', (e) => e.event === 'synced', 30_000); // the agent's copy holds the visitor's read position
      const before = await serverView(a.address, chatId, bearer(env.AGENT_TOKEN));
      // A dies before any archiver took the transcript: the server's memory was its only copy.
      await a.kill();
      const archiver = archiverOf('python archiver on B', ['--servers', b.address, '--dir', dir, '--token-env', 'ARCHIVER_TOKEN'], env);
      await archiver.waitFor('ready', (e) => e.event === 'ready', 20_000);
      // The agent's next read fails over to B and rebuilds it from its copy, the end included.
      await agent.ask('sync', 'synced', (e) => e.event === 'synced', 60_000);
      const acked = await archiver.waitFor('the transcript from B acknowledged', (e) => e.event === 'acked' && e.chat === chatId, 20_000);
      expect(acked.message_count).to.equal(before.messages.length);
      const after = await serverView(b.address, chatId, bearer(env.AGENT_TOKEN));
      expect(acked.epoch).to.equal(after.epoch);
      expect(after.messages.map((m) => m.id).sort()).to.deep.equal(before.messages.map((m) => m.id).sort());
      // The agent's upload carried the read positions it was told of, as received (sealed).
      const client = testClient(b.address);
      try {
        const page = await chatApi(client, bearer(env.AGENT_TOKEN)).getNewMessage({ chatId, visitorOffset: 0, agentOffset: 0 });
        expect(page.ended, 'B: ended').to.equal(true);
        expect(page.readPositions.map((p) => `${p.readerId} ${p.messageId}`), "B: the visitor's read position").to.deep.equal(['visitor-py a-1']);
      } finally {
        client.close();
      }
      const refused = await agent.ask('send a-2 on B', 'a refusal', () => false, 30_000).then(
        () => expect.fail('a send into the rebuilt, ended chat was taken'),
        (e: unknown) => String(e),
      );
      expect(refused).to.match(/FAILED_PRECONDITION/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stores transcripts idempotently by (chat id, epoch), keeping the larger message_count (transcript_archiver.TranscriptStore, archive_copy)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'py-guide-store-'));
    try {
      const script = [
        'import json, sys',
        "sys.path.insert(0, 'examples/python')",
        'from stubs import pb',
        'from transcript_archiver import Archiver, TranscriptStore',
        'store = TranscriptStore(sys.argv[1])',
        "chat = lambda epoch, n: pb.Chat(id='c-1', epoch=epoch, messages=[pb.ChatMessage(id='m-%d' % i, content='x') for i in range(n)])",
        "out = [store.put(chat('e1', 3), 3), store.put(chat('e1', 3), 3), store.put(chat('e1', 2), 2), store.put(chat('e1', 5), 5), store.put(chat('e2', 1), 1)]",
        "out.append(Archiver(store).archive_copy(chat('e1', 4)))",
        "out.append(Archiver(store).archive_copy(chat('e3', 4)))",
        "print(json.dumps({'answers': out, 'stored': [[r['epoch'], r['message_count'], len(r['chat']['messages'])] for r in store.all()]}))",
      ].join('\n');
      const out = JSON.parse(execFileSync(python, ['-c', script, dir], { cwd: REPO, encoding: 'utf8' })) as { answers: unknown[]; stored: unknown[] };
      expect(out.answers).to.deep.equal([[true, 3], [false, 3], [false, 3], [true, 5], [true, 1], false, true]);
      expect(out.stored.map(String).sort()).to.deep.equal(['e1,5,5', 'e2,1,1', 'e3,4,4']);
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
