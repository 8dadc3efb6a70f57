import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { ChatServiceClient, MessageType } from '../../generated/chat/v1/chat.js';
import type { Config } from '../../src/server/config.js';
import { type ChatApi, chatApi, rebuildInParts } from '../support/chat-api.js';
import { testToken } from '../support/security.js';
import { killChildren, startTestServer, testClient, type TestServer } from '../support/servers.js';
import { expectEnd, type Held, WatchStream, waitFor } from '../support/watch-stream.js';

const CHILD = fileURLToPath(new URL('./fixtures/watch-in-child.ts', import.meta.url));
const REPO = fileURLToPath(new URL('../..', import.meta.url));
const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
/** Large enough that a few hundred messages overflow a client's HTTP/2 window (64 KiB). */
const KILOBYTE = 'x'.repeat(1000);

/** What the child prints when its stream ends. */
interface ChildEnd {
  readonly code: status;
  readonly details: string;
  readonly position: Held;
  readonly received: number;
  readonly problem: string | null;
}

describe('WatchChat under backpressure, dead peers and shutdown', () => {
  /** The token of the watching child process, which has no test keys of its own. */
  let watcherToken: string;
  before(async () => {
    watcherToken = await testToken({ sub: 'watcher', role: 'agent' });
  });
  let server: TestServer;
  let api: ChatApi;
  const clients: ChatServiceClient[] = [];
  const streams: WatchStream[] = [];
  const children = new Set<ChildProcess>();

  async function start(overrides: Partial<Config>) {
    server = await startTestServer({ maxResponseBytes: 8_192, ...overrides });
    api = chatApi(server.client);
  }
  const watch = (request: ConstructorParameters<typeof WatchStream>[1]) => {
    const client = testClient(server.address);
    clients.push(client);
    const stream = new WatchStream(client, request);
    streams.push(stream);
    return stream;
  };
  /** A chat holding `count` visitor messages of about 1 KB. */
  const backlog = (chatId: string, count: number) =>
    rebuildInParts(api, chatId, range(count).map((i) => ({ id: `v${i}`, dataOffset: i, content: KILOBYTE, messageType: MessageType.MESSAGE_TYPE_VISITOR })));
  const send = async (chatId: string, from: number, count: number) => {
    for (const i of range(count)) {
      await api.addVisitorMessage({ chatId, message: { id: `v${from + i - 1}`, content: KILOBYTE } });
    }
  };
  /** Watches from where `held` stands, and checks it receives exactly the rest, up to `total`. */
  async function resumeFrom(chatId: string, held: Held, total: number): Promise<void> {
    const resumed = watch({ chatId, visitorOffset: held.visitor, agentOffset: held.agent, epoch: held.epoch });
    await resumed.reach(total, 0);
    expect(resumed.ids).to.deep.equal(range(total - held.visitor).map((i) => `v${held.visitor + i}`));
  }

  function spawnWatcher(chatId: string): { child: ChildProcess; lines: AsyncIterator<string> } {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, server.address, chatId, watcherToken], { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] });
    children.add(child);
    return { child, lines: createInterface({ input: child.stdout! })[Symbol.asyncIterator]() };
  }
  async function nextLine(lines: AsyncIterator<string>): Promise<Record<string, unknown>> {
    const { value, done } = await lines.next();
    if (done) throw new Error('the child ended without printing');
    return JSON.parse(value) as Record<string, unknown>;
  }

  afterEach(async () => {
    await killChildren(children);
    children.clear();
    for (const stream of streams.splice(0)) stream.call.cancel();
    for (const client of clients.splice(0)) client.close();
    await server?.close();
  });

  it('cuts off a stopped process (SIGSTOP) that takes nothing: it sees RESOURCE_EXHAUSTED and resumes from its offsets', async function () {
    this.timeout(30_000);
    await start({ watchStallMs: 200, watchCutoffGraceMs: 200 });
    await api.getNewMessage({ chatId: 'stopped' });
    const { child, lines } = spawnWatcher('stopped');
    expect(await nextLine(lines)).to.deep.equal({ event: 'established' });

    child.kill('SIGSTOP');
    await send('stopped', 1, 300); // 300 KB: far more than the stopped peer's window
    await waitFor(() => server.server.watches.size === 0, 'the server to cut the watcher off and free its stream');
    expect(server.server.store.watcherCount).to.equal(0);

    child.kill('SIGCONT');
    const end = (await nextLine(lines)) as unknown as ChildEnd;
    expect(end.problem, 'every response continued the last one').to.equal(null);
    // The status could not pass the unread responses, so the stream was reset (ENHANCE_YOUR_CALM).
    expect(end.code, end.details).to.equal(status.RESOURCE_EXHAUSTED);
    expect(end.position.visitor, 'it fell behind').to.be.below(300);
    expect(end.received).to.equal(end.position.visitor);
    await resumeFrom('stopped', end.position, 300);
  });

  it('tells a consumer that reads too slowly that it fell behind, after what it had not read, and lets it resume', async () => {
    await start({ watchStallMs: 100, watchCutoffGraceMs: 10_000 });
    await backlog('slow', 600);
    const slow = watch({ chatId: 'slow' });
    slow.call.once('data', () => slow.call.pause()); // reads one response, then nothing for now
    await slow.established();
    await waitFor(() => server.server.store.watcherCount === 0, 'the server to cut the watcher off');
    expect(server.server.watches.size, 'the stream waits for its status to get through').to.equal(1);
    slow.call.resume();
    const details = await expectEnd(slow, status.RESOURCE_EXHAUSTED);
    expect(details).to.match(/the watch of chat "slow" fell behind: the client took no response for 100 ms; watch again from the offsets/);
    expect(slow.problem).to.equal(undefined);
    expect(slow.position.visitor).to.be.within(1, 599);
    await waitFor(() => server.server.watches.size === 0, 'the cut-off stream to end');
    await resumeFrom('slow', slow.position, 600);
  });

  it('notices a dead peer by keepalive, and drops its watch', async function () {
    this.timeout(30_000);
    await start({ keepaliveTimeMs: 200, keepaliveTimeoutMs: 200, watchStallMs: 0 });
    await api.getNewMessage({ chatId: 'gone' });
    const { child, lines } = spawnWatcher('gone');
    expect(await nextLine(lines)).to.deep.equal({ event: 'established' });
    expect(server.server.watches.size).to.equal(1);

    child.kill('SIGSTOP'); // no ping is answered any more; nothing is being sent either
    await waitFor(() => server.server.watches.size === 0 && server.server.store.watcherCount === 0, 'keepalive to drop the connection');
  });

  describe('shutdown', () => {
    it('ends open watches with UNAVAILABLE, without waiting for them', async function () {
      this.timeout(10_000); // a shutdown that waited for the streams would take 30 s
      await start({});
      await api.getNewMessage({ chatId: 'c' });
      const open = range(3).map(() => watch({ chatId: 'c' }));
      await Promise.all(open.map((w) => w.established()));

      await server.server.stop(30_000);
      for (const watcher of open) {
        expect(await expectEnd(watcher, status.UNAVAILABLE)).to.match(/shutting down; watch again from your offsets/);
      }
      expect(server.server.store.watcherCount).to.equal(0);
    });

    it('drops a watch whose client reads nothing at the shutdown deadline, as UNAVAILABLE', async function () {
      this.timeout(10_000);
      await start({});
      await backlog('big', 600);
      const stuck = watch({ chatId: 'big' });
      stuck.call.once('data', () => stuck.call.pause());
      await stuck.established();

      await server.server.stop(300);
      expect((await stuck.ended).code).to.equal(status.UNAVAILABLE);
    });
  });
});
