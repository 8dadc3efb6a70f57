import { status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { ChatServiceClient, MessageType, ResultCode } from '../../generated/chat/v1/chat.js';
import type { Config } from '../../src/server/config.js';
import { watchLifetimeMs } from '../../src/server/stream.js';
import { type ChatApi, chatApi, rebuildInParts } from '../support/chat-api.js';
import { startTestServer, testClient, type TestServer } from '../support/servers.js';
import { expectEnd, type Held, WatchStream, waitFor } from '../support/watch-stream.js';

const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
/** Timers may fire a little off; the lower bound is checked with this much slack. */
const SLACK_MS = 50;

describe('a watch lifetime', () => {
  it('is drawn uniformly between half the maximum age and the maximum age; 0 means none', () => {
    expect(watchLifetimeMs(300_000, () => 0)).to.equal(150_000);
    expect(watchLifetimeMs(300_000, () => 0.5)).to.equal(225_000);
    expect(watchLifetimeMs(300_000, () => 1 - Number.EPSILON)).to.equal(300_000);
    expect(watchLifetimeMs(0, () => 0.5)).to.equal(undefined);
  });
});

describe('WatchChat ends with OK after its maximum age', () => {
  let server: TestServer;
  let api: ChatApi;
  const clients: ChatServiceClient[] = [];
  const streams: WatchStream[] = [];

  async function start(overrides: Partial<Config>) {
    server = await startTestServer(overrides);
    api = chatApi(server.client);
  }
  const watch = (chatId: string, from: Held = { visitor: 0, agent: 0, epoch: '' }) => {
    const client = testClient(server.address);
    clients.push(client);
    const stream = new WatchStream(client, { chatId, visitorOffset: from.visitor, agentOffset: from.agent, epoch: from.epoch });
    streams.push(stream);
    return stream;
  };
  const say = (chatId: string, side: 'v' | 'a', i: number) =>
    side === 'v'
      ? api.addVisitorMessage({ chatId, message: { id: `v${i}`, content: `text of v${i}` } })
      : api.addAgentMessage({ chatId, agentId: 'agent-7', message: { id: `a${i}`, content: `text of a${i}` } });

  /**
   * Watches from `from` again after each stream ends with OK (it may reach its lifetime too),
   * until it holds `total` visitor messages; returns the ids received.
   */
  async function watchUntil(chatId: string, from: Held, total: number): Promise<string[]> {
    const ids: string[] = [];
    for (let at = from; at.visitor < total; ) {
      const stream = watch(chatId, at);
      await stream.reach(total, 0).catch(async (error: unknown) => {
        const end = await Promise.race([stream.ended, Promise.reject(error as Error)]);
        expect(end.code, end.details).to.equal(status.OK);
      });
      expect(stream.problem).to.equal(undefined);
      ids.push(...stream.ids);
      at = stream.position;
    }
    return ids;
  }

  afterEach(async () => {
    for (const stream of streams.splice(0)) stream.call.cancel();
    for (const client of clients.splice(0)) client.close();
    await server?.close();
  });

  it('delivers everything sent before, ends with OK no sooner than half the age, and a re-watch continues without a gap or duplicate', async function () {
    this.timeout(10_000); // a watch that never ended would otherwise wait for mocha's 60 s
    const maxAgeMs = 1_000; // at least 500 ms: time enough for the sends below, even on a busy machine
    await start({ watchMaxAgeMs: maxAgeMs });
    await api.getNewMessage({ chatId: 'c' });
    for (const i of range(3)) await say('c', 'v', i); // catch-up
    const opened = Date.now();
    const first = watch('c');
    await first.established();
    for (const i of range(3)) await say('c', 'a', i); // live
    await first.reach(3, 3);

    await expectEnd(first, status.OK);
    expect(Date.now() - opened, 'ended before its lifetime').to.be.at.least(maxAgeMs / 2 - SLACK_MS);
    expect(first.problem).to.equal(undefined);
    expect(first.responses.every((r) => r.code === ResultCode.RESULT_CODE_OK), 'no rebuild was asked').to.equal(true);
    expect(first.ids).to.deep.equal(['v1', 'v2', 'v3', 'a1', 'a2', 'a3']);
    await waitFor(() => server.server.watches.size === 0 && server.server.store.watcherCount === 0, 'the ended watch to be freed');

    await say('c', 'v', 4); // while no one watches
    const again = watch('c', first.position);
    await again.established();
    await say('c', 'a', 4);
    await again.reach(4, 4);
    expect(again.problem).to.equal(undefined);
    expect(again.ids).to.deep.equal(['v4', 'a4']);
  });

  it('lets the response in flight be taken before it ends, so every page is whole, and the rest comes on a re-watch', async function () {
    this.timeout(10_000);
    await start({ watchMaxAgeMs: 300, watchStallMs: 30_000, maxResponseBytes: 8_192 });
    const total = 600;
    const kilobyte = 'x'.repeat(1000);
    await rebuildInParts(api, 'big', range(total).map((i) => ({ id: `v${i}`, dataOffset: i, content: kilobyte, messageType: MessageType.MESSAGE_TYPE_VISITOR })));
    const slow = watch('big');
    slow.call.once('data', () => slow.call.pause()); // reads one response, then nothing for now
    await slow.established();
    await waitFor(() => server.server.store.watcherCount === 0, 'the lifetime to end the subscription');
    expect(server.server.watches.size, 'the stream waits for its response in flight to be taken').to.equal(1);

    slow.call.resume();
    await expectEnd(slow, status.OK);
    expect(slow.problem).to.equal(undefined);
    expect(slow.position.visitor, 'it ended before the backlog was through').to.be.within(1, total - 1);

    expect(await watchUntil('big', slow.position, total)).to.deep.equal(range(total - slow.position.visitor).map((i) => `v${slow.position.visitor + i}`));
  });
});
