/**
 * `npm run demo`: a visitor and an agent talk through server A; A is killed mid-conversation and
 * both carry on with server B, which they rebuild from their own copies. Ends by comparing the
 * visitor's copy, the agent's copy and B's view; exits 0 only if all three are identical.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { credentials, Metadata, status } from '@grpc/grpc-js';
import { ChatServiceClient, type GetNewMessageResponse, ResultCode } from '../generated/chat/v1/chat.js';
import { type ChatMessage, ChatSession, MessageType, placement } from '../src/client/index.js';

const STARTUP_TIMEOUT_MS = 20_000;
const STEP_TIMEOUT_MS = 10_000;
const DEMO_TIMEOUT_MS = 60_000;
const CALL_TIMEOUT_MS = 2_000;
const CHAT_ID = 'support-order-4711';
const SERVER_MAIN = path.join(repoRoot(), 'dist/src/server/main.js');

/** A chat server running as a child process. */
interface Server {
  readonly name: string;
  readonly address: string;
  readonly child: ChildProcess;
  readonly exited: Promise<unknown>;
}

/** One side of the conversation. */
interface Party {
  readonly name: 'visitor' | 'agent';
  readonly session: ChatSession;
}

const children = new Set<ChildProcess>();
const say = (text = '') => console.log(text);

/** The folder holding package.json, whether this runs compiled (dist/scripts) or under tsx. */
function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
}

/** Spawns the server binary on 127.0.0.1, port 0, and resolves once it logs its port. */
async function startServer(name: string): Promise<Server> {
  if (!existsSync(SERVER_MAIN)) throw new Error(`${SERVER_MAIN} is missing: run \`npm run build\` first`);
  const child = spawn(process.execPath, [SERVER_MAIN, '--insecure'], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const exited = once(child, 'exit');
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  let timer: NodeJS.Timeout | undefined;
  const port = await new Promise<number>((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`server ${name} did not log "chat server listening" within ${STARTUP_TIMEOUT_MS} ms`)), STARTUP_TIMEOUT_MS);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const entry = parseJson(line);
      // The log line with the port is the readiness signal: no sleeping until it "should" be open.
      if (entry?.msg === 'chat server listening' && typeof entry.port === 'number') resolve(entry.port);
    });
    child.on('error', reject);
    void exited.then(([code, signal]) => reject(new Error(`server ${name} exited (${signal ?? code}) before listening: ${stderr.trim()}`)));
  }).finally(() => clearTimeout(timer));
  return { name, address: `127.0.0.1:${port}`, child, exited };
}

function parseJson(line: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined; // not a log line of ours
  }
}

function killAll(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

/** Runs one SDK operation with a deadline, naming it in the error if it fails. */
async function within<T>(what: string, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const signal = AbortSignal.timeout(STEP_TIMEOUT_MS);
  try {
    return await run(signal);
  } catch (error) {
    const reason = signal.aborted ? `no result within ${STEP_TIMEOUT_MS} ms` : (error as Error).message;
    throw new Error(`${what}: ${reason}`, { cause: error });
  }
}

const sideOf = (m: ChatMessage) => (m.messageType === MessageType.MESSAGE_TYPE_VISITOR ? 'visitor' : 'agent');

/** `[visitor 1] visitor: Hi...`: a message's side and offset, who wrote it, and what. */
function format(m: ChatMessage): string {
  const side = sideOf(m);
  return `${`[${side} ${m.dataOffset}]`.padEnd(11)} ${`${side}:`.padEnd(8)} ${m.content}`;
}

/** Prints the session's rebuild, retry and connected events in plain words as they happen. */
function narrate(party: Party, servers: readonly Server[]): void {
  const nameOf = (address: string) => servers.find((s) => s.address === address)?.name ?? address;
  party.session.on('connected', (address) => say(`      (${party.name} is now connected to ${nameOf(address)})`));
  party.session.on('retry', ({ address, error, attempt, delayMs }) =>
    say(`      (${party.name}: call to ${nameOf(address)} failed with ${status[error.code]}; retry #${attempt + 1} on the next server in ${delayMs} ms)`),
  );
  party.session.on('rebuild', ({ address, serverBefore: { visitor, agent }, reason, uploaded }) => {
    const server = nameOf(address);
    const held = `it held visitor ${visitor} / agent ${agent}`;
    const why =
      reason === 'diverged' ? `${server}'s chat is not the history the ${party.name} holds (another epoch; ${held}), so the whole copy went up`
      : reason === 'behind' ? `${server} was behind (${held})`
      : reason === 'strays' ? `messages had lost their offsets on ${server}`
      : uploaded === 0 ? `${server} had no such chat yet, so the ${party.name} created it`
      : `${server} did not know the chat`;
    say(`      (${party.name}: rebuild: ${why}: the ${party.name} uploaded ${uploaded} message${uploaded === 1 ? '' : 's'})`);
  });
}

/** `from` sends a message; `to` reads it with sync(). */
async function turn(from: Party, to: Party, text: string): Promise<void> {
  const stored = await within(`${from.name} sending`, (signal) => from.session.send(text, { signal }));
  say(`   ${format(stored)}`);
  await receive(to);
}

async function receive(party: Party): Promise<void> {
  const fresh = await within(`${party.name} syncing`, (signal) => party.session.sync({ signal }));
  const what = fresh.map((m) => `${sideOf(m)} ${m.dataOffset}`).join(', ') || 'nothing new';
  say(`      -> ${party.name}'s sync() got: ${what}`);
}

/** B's own view of the chat: GetNewMessage from 0/0 with a plain client, paging until caught up. */
async function serverView(server: Server): Promise<{ messages: ChatMessage[]; pages: number; offsets: string }> {
  const client = new ChatServiceClient(server.address, credentials.createInsecure());
  try {
    const messages: ChatMessage[] = [];
    for (let pages = 1, visitorOffset = 0, agentOffset = 0; ; pages += 1) {
      const answer = await new Promise<GetNewMessageResponse>((resolve, reject) =>
        client.getNewMessage({ chatId: CHAT_ID, visitorOffset, agentOffset, epoch: '' }, new Metadata(), { deadline: Date.now() + STEP_TIMEOUT_MS }, (error, response) =>
          error ? reject(error) : resolve(response),
        ),
      );
      if (answer.code !== ResultCode.RESULT_CODE_OK) throw new Error(`${server.name} answered ${ResultCode[answer.code]} to GetNewMessage from 0/0`);
      messages.push(...answer.messages);
      visitorOffset += answer.messages.filter((m) => sideOf(m) === 'visitor').length;
      agentOffset += answer.messages.filter((m) => sideOf(m) === 'agent').length;
      const offsets = `${answer.visitorDataOffset}/${answer.agentDataOffset}`;
      if (answer.messages.length === 0 || (visitorOffset >= answer.visitorDataOffset && agentOffset >= answer.agentDataOffset)) return { messages, pages, offsets };
    }
  } finally {
    client.close();
  }
}

/** Everything compared: id, side, offset, sender, send time and content, in order. */
const identity = (m: ChatMessage) =>
  `${m.id} ${sideOf(m)} ${m.dataOffset} ${m.senderId} ${m.sendTime?.toISOString()} ${JSON.stringify(m.content)}`;

/** Where `view` differs from `reference`, position by position. */
function differences(name: string, view: ChatMessage[], reference: ChatMessage[]): string[] {
  const found: string[] = [];
  for (let i = 0; i < Math.max(view.length, reference.length); i += 1) {
    const [mine, theirs] = [view[i], reference[i]].map((m) => (m ? identity(m) : '(nothing)'));
    if (mine !== theirs) found.push(`position ${i + 1}: ${name} has ${mine}\n              server B has ${theirs}`);
  }
  return found;
}

function printTranscript(title: string, messages: ChatMessage[]): void {
  say(`   ${title}, ${messages.length} messages:`);
  for (const m of messages) say(`     ${format(m)}`);
}

/** The demo itself; resolves with whether all three views are identical. */
async function main(): Promise<boolean> {
  say('This demo starts two chat servers, A and B, and has a visitor and an agent talk through A.');
  say('A is killed in the middle of the conversation; both clients carry on with B, rebuilding it');
  say('from their own copies. At the end their copies and B\'s view must be identical.\n');

  say('1. Starting servers A and B');
  const started = await Promise.all(['1', '2'].map(startServer));
  // A is the chat's home: the server every client of this chat picks first (src/client/placement.ts).
  const order = placement(CHAT_ID, started.map((s) => s.address));
  const servers = order.map((address, i) => ({ ...started.find((s) => s.address === address)!, name: i === 0 ? 'A' : 'B' }));
  const [a, b] = servers as [Server, Server];
  for (const s of servers) say(`   ${s.name} is listening on ${s.address} (pid ${s.child.pid})${s === a ? ", the chat's home" : ""}`);

  say(`\n2. Opening a visitor session and an agent session for chat "${CHAT_ID}" with servers [A, B]`);
  const options = { chatId: CHAT_ID, servers: [a.address, b.address], callTimeoutMs: CALL_TIMEOUT_MS, backoff: { initialMs: 50, maxMs: 500 } };
  const visitor: Party = { name: 'visitor', session: await ChatSession.open({ ...options, role: { kind: 'visitor', visitorId: 'visitor-ana' } }) };
  const agent: Party = { name: 'agent', session: await ChatSession.open({ ...options, role: { kind: 'agent', agentId: 'agent-7' } }) };
  try {
    for (const party of [visitor, agent]) narrate(party, servers);

    say('\n3. Talking through A (each message is sent, then the other side reads it with sync())');
    await turn(visitor, agent, 'Hi, my order #4711 has not arrived');
    await turn(agent, visitor, 'Sorry to hear that! Let me look it up for you.');
    await turn(agent, visitor, 'The courier tried to deliver it on Tuesday, but nobody answered the door.');
    await turn(visitor, agent, 'Strange, I was at home all day. Can they try again?');

    say('\n4. The agent answers; before the visitor reads it, the visitor sends another question and A is killed');
    const booked = await within('agent sending', (signal) => agent.session.send('Of course: I have booked a new delivery for tomorrow between 9 and 12.', { signal }));
    say(`   ${format(booked)}   (stored on A, not yet read by the visitor)`);
    const question = 'And if I am out, could they leave it with my neighbour at number 14?';
    const inFlight = within('visitor sending during the crash', (signal) => visitor.session.send(question, { signal }));
    a.child.kill('SIGKILL');
    say(`   the visitor starts sending "${question}"`);
    say(`   ...and A is killed with SIGKILL (pid ${a.child.pid}) before it can answer`);
    const landed = await inFlight;
    await a.exited;
    say(`   ${format(landed)}   (acknowledged by B)`);

    say('\n5. The agent reads again: its call to A fails, it moves to B and uploads its copy; then the visitor reads');
    await receive(agent);
    await receive(visitor);

    say('\n6. Finishing the conversation through B');
    await turn(agent, visitor, 'Yes, I have added a note for the courier: neighbour at number 14.');
    await turn(visitor, agent, 'Perfect, thank you for your help!');

    say('\n7. Transcripts');
    const view = await serverView(b);
    printTranscript("visitor's copy", visitor.session.messages);
    printTranscript("agent's copy", agent.session.messages);
    printTranscript(`server B's view (GetNewMessage from 0/0, ${view.pages} page${view.pages === 1 ? '' : 's'}, B at ${view.offsets})`, view.messages);

    say('\n8. Comparing the three (ids, sides, offsets, senders, send times, order, content)');
    const problems = [
      ...differences("the visitor's copy", visitor.session.messages, view.messages),
      ...differences("the agent's copy", agent.session.messages, view.messages),
    ];
    if (view.messages.length === 0) problems.push('server B holds no messages at all');
    for (const party of [visitor, agent]) if (party.session.pending.length > 0) problems.push(`the ${party.name} still has ${party.session.pending.length} unsent message(s)`);
    for (const problem of problems) say(`   ${problem}`);
    say(
      problems.length === 0
        ? `   VERDICT: IDENTICAL: the visitor, the agent and server B hold the same ${view.messages.length} messages.`
        : `   VERDICT: DIFFERENT: ${problems.length} difference(s) between the copies and server B's view.`,
    );
    return problems.length === 0;
  } finally {
    say('\n9. Cleaning up: closing both sessions and killing B');
    await Promise.all([visitor.session.close(), agent.session.close()]);
  }
}

let exitCode = 1;
const watchdog = setTimeout(() => {
  console.error(`\ndemo failed: no result within ${DEMO_TIMEOUT_MS} ms`);
  killAll();
  process.exit(1);
}, DEMO_TIMEOUT_MS);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\ndemo stopped by ${signal}`);
    killAll();
    process.exit(1);
  });
}
process.once('exit', killAll);
try {
  exitCode = (await main()) ? 0 : 1;
} catch (error) {
  console.error(`\ndemo failed: ${(error as Error).message}`);
} finally {
  killAll();
  await Promise.all([...children].map((child) => (child.exitCode === null && child.signalCode === null ? once(child, 'exit') : undefined)));
  clearTimeout(watchdog);
}
// Exit explicitly: a gRPC channel or timer left behind must not keep the demo alive.
process.exit(exitCode);
