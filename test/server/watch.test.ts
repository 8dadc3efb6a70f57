import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { Client, credentials, status, type StatusObject } from '@grpc/grpc-js';
import { expect } from 'chai';
import { ChatServiceClient, MessageType, ResultCode } from '../../generated/chat/v1/chat.js';
import type { Config } from '../../src/server/config.js';
import { type ChatApi, chatApi } from '../support/chat-api.js';
import { startTestServer, testClient, testInterceptors, type TestServer } from '../support/servers.js';
import { expectEnd, WatchStream, waitFor } from '../support/watch-stream.js';

const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

describe('WatchChat over the wire', () => {
  let server: TestServer;
  let api: ChatApi;
  const clients: ChatServiceClient[] = [];
  const streams: WatchStream[] = [];

  /** A client on its own channel, as another device would have. */
  const newClient = () => {
    const client = testClient(server.address);
    clients.push(client);
    return client;
  };
  const watch = (request: ConstructorParameters<typeof WatchStream>[1], client = server.client) => {
    const stream = new WatchStream(client, request);
    streams.push(stream);
    return stream;
  };
  const visitorSays = (chatId: string, id: string, to = api) =>
    to.addVisitorMessage({ chatId, visitorOffset: 0, agentOffset: 0, message: { id, content: `text of ${id}` } });
  const agentSays = (chatId: string, id: string, to = api) =>
    to.addAgentMessage({ chatId, agentId: 'agent-7', visitorOffset: 0, agentOffset: 0, message: { id, content: `text of ${id}` } });

  async function start(overrides: Partial<Config> = {}) {
    server = await startTestServer(overrides);
    api = chatApi(server.client);
  }

  afterEach(async () => {
    for (const stream of streams.splice(0)) stream.call.cancel();
    for (const client of clients.splice(0)) client.close();
    await server?.close();
  });

  describe('catch-up, then live', () => {
    beforeEach(() => start());

    it('gives every watcher each side 1..N exactly once, in order, while sends race with the watch start', async function () {
      this.timeout(30_000);
      const perSide = 150;
      await api.getNewMessage({ chatId: 'race' });
      const visitor = chatApi(newClient());
      const agent = chatApi(newClient());
      let acked = 0;
      const milestones = new Map<number, () => void>();
      const reached = (count: number) => new Promise<void>((resolve) => milestones.set(count, resolve));
      const at = [1, 40, 150, 260].map((count) => reached(count));
      /** Sends one side in waves of ten concurrent sends, counting acknowledgements. */
      const sendSide = async (say: (id: string) => Promise<unknown>, prefix: string) => {
        for (let wave = 0; wave < perSide; wave += 10) {
          await Promise.all(
            range(10).map(async (i) => {
              await say(`${prefix}${wave + i}`);
              milestones.get(++acked)?.();
            }),
          );
        }
      };
      const watchers = [watch({ chatId: 'race' }, newClient())]; // before any send
      const sending = Promise.all([
        sendSide((id) => visitorSays('race', id, visitor), 'v'),
        sendSide((id) => agentSays('race', id, agent), 'a'),
      ]);
      for (const milestone of at) {
        await milestone;
        watchers.push(watch({ chatId: 'race' }, newClient()));
      }
      const midway = await api.getNewMessage({ chatId: 'race', visitorOffset: 0, agentOffset: 0 });
      const fromMidway = midway.messages.filter((m) => m.messageType === MessageType.MESSAGE_TYPE_VISITOR).length;
      watchers.push(watch({ chatId: 'race', visitorOffset: fromMidway, agentOffset: 0, epoch: midway.epoch }, newClient()));
      await sending;
      watchers.push(watch({ chatId: 'race' }, newClient())); // only catch-up

      const everyone = [...range(perSide).map((i) => `v${i}`), ...range(perSide).map((i) => `a${i}`)].sort();
      for (const watcher of watchers) {
        await watcher.reach(perSide, perSide);
        const skipped = watcher === watchers.at(-2) ? fromMidway : 0;
        expect(watcher.ids, 'no duplicate').to.have.lengthOf(new Set(watcher.ids).size);
        expect(watcher.ids.length).to.equal(2 * perSide - skipped);
        if (skipped === 0) expect([...watcher.ids].sort()).to.deep.equal(everyone);
      }
      // The watches stay open: one more message reaches all of them.
      await visitorSays('race', 'v-last');
      for (const watcher of watchers) await watcher.reach(perSide + 1, perSide);
      expect(new Set(watchers.map((w) => w.position.epoch)).size).to.equal(1);
    });

    it('sends a first response at once, even when there is nothing new, and then only what is new', async () => {
      await api.getNewMessage({ chatId: 'quiet' });
      await visitorSays('quiet', 'v1');
      const watcher = watch({ chatId: 'quiet', visitorOffset: 1, agentOffset: 0 });
      const first = await watcher.established();
      expect(first).to.deep.include({ code: ResultCode.RESULT_CODE_OK, visitorDataOffset: 1, agentDataOffset: 0, messages: [] });
      expect(first.epoch).to.not.equal('');

      await agentSays('quiet', 'a1');
      await watcher.reach(1, 1);
      expect(watcher.responses.map((r) => r.messages.map((m) => m.id))).to.deep.equal([[], ['a1']]);
    });

    it('lets many watchers of one chat see everything, and tells watchers of other chats nothing', async () => {
      await api.getNewMessage({ chatId: 'crowd' });
      await api.getNewMessage({ chatId: 'elsewhere' });
      const crowd = range(25).map(() => watch({ chatId: 'crowd' }, newClient()));
      const bystander = watch({ chatId: 'elsewhere' });
      await Promise.all([...crowd, bystander].map((w) => w.established()));
      expect(server.server.store.watcherCount).to.equal(26);

      for (const i of range(20)) {
        await visitorSays('crowd', `v${i}`);
        await agentSays('crowd', `a${i}`);
      }
      for (const watcher of crowd) {
        await watcher.reach(20, 20);
        expect(watcher.ids).to.deep.equal(range(20).flatMap((i) => [`v${i}`, `a${i}`]));
      }
      expect(bystander.responses).to.have.lengthOf(1);
    });

    it('pages a backlog larger than one response, each page continuing the last', async () => {
      await server.close();
      await start({ maxResponseBytes: 2_000 });
      await api.getNewMessage({ chatId: 'big' });
      for (const i of range(30)) {
        await api.addVisitorMessage({ chatId: 'big', visitorOffset: 0, agentOffset: 0, message: { id: `v${i}`, content: 'x'.repeat(200) } });
      }
      const watcher = watch({ chatId: 'big' });
      await watcher.reach(30, 0);
      expect(watcher.responses.length).to.be.greaterThan(2);
      expect(watcher.ids).to.deep.equal(range(30).map((i) => `v${i}`));
    });
  });

  describe('the last response: rebuild required', () => {
    beforeEach(() => start());

    it('answers a missing chat with REBUILD_REQUIRED -1/-1, creates it, and ends the stream with OK', async () => {
      const watcher = watch({ chatId: 'nowhere' });
      await expectEnd(watcher, status.OK);
      expect(watcher.responses).to.have.lengthOf(1);
      expect(watcher.responses[0]).to.deep.include({ code: ResultCode.RESULT_CODE_REBUILD_REQUIRED, visitorDataOffset: -1, agentDataOffset: -1 });
      expect(await api.getNewMessage({ chatId: 'nowhere' })).to.deep.include({ code: ResultCode.RESULT_CODE_OK, visitorDataOffset: 0 });
      await waitFor(() => server.server.store.watcherCount === 0 && server.server.watches.size === 0, 'no watcher left');
    });

    it('answers another epoch, or a caller ahead, with the server offsets and epoch, and ends', async () => {
      await api.getNewMessage({ chatId: 'c' });
      const sent = await visitorSays('c', 'v1');
      for (const request of [
        { chatId: 'c', visitorOffset: 1, agentOffset: 0, epoch: 'an-older-incarnation' },
        { chatId: 'c', visitorOffset: 2, agentOffset: 0, epoch: sent.epoch },
        { chatId: 'c', visitorOffset: 0, agentOffset: 1 },
      ]) {
        const watcher = watch(request);
        await expectEnd(watcher, status.OK);
        expect(watcher.responses).to.have.lengthOf(1);
        expect(watcher.responses[0]).to.deep.include({
          code: ResultCode.RESULT_CODE_REBUILD_REQUIRED,
          visitorDataOffset: 1,
          agentDataOffset: 0,
          messages: [],
          epoch: sent.epoch,
        });
      }
    });

    it('ends a watch of a chat evicted while watched with REBUILD_REQUIRED -1/-1', async () => {
      await api.getNewMessage({ chatId: 'c' });
      const watcher = watch({ chatId: 'c' });
      await watcher.established();
      expect(server.server.store.evict('c')).to.equal(true);
      await expectEnd(watcher, status.OK);
      expect(watcher.responses.at(-1)).to.deep.include({
        code: ResultCode.RESULT_CODE_REBUILD_REQUIRED,
        visitorDataOffset: -1,
        agentDataOffset: -1,
        epoch: '',
      });
      expect(server.server.store.size, 'the watcher did not create the chat again').to.equal(0);
    });
  });

  describe('refusals and limits', () => {
    it('refuses bad input as GetNewMessage does, and leaves no watcher behind', async () => {
      await start();
      const cases: [object, RegExp][] = [
        [{ chatId: '' }, /chat_id is required/],
        [{ chatId: 'c', visitorOffset: -1 }, /visitor_offset must be a whole number >= 0/],
        [{ chatId: 'c', agentOffset: -3 }, /agent_offset must be/],
      ];
      for (const [request, details] of cases) {
        expect(await expectEnd(watch(request), status.INVALID_ARGUMENT)).to.match(details);
      }
      const raw = new Client(server.address, credentials.createInsecure(), { interceptors: testInterceptors() });
      const bytes = Buffer.from(new BinaryWriter().uint32(10).string('c').uint32(16).int64(2n ** 60n).finish());
      const call = raw.makeServerStreamRequest('/chat.v1.ChatService/WatchChat', (b: Buffer) => b, (b: Buffer) => b, bytes);
      call.on('error', () => {});
      const [end] = (await new Promise((resolve) => call.on('status', (s: StatusObject) => resolve([s])))) as [StatusObject];
      raw.close();
      expect(end.code).to.equal(status.INVALID_ARGUMENT);
      expect(end.details).to.match(/could not be decoded/);
      await waitFor(() => server.server.store.watcherCount === 0 && server.server.watches.size === 0, 'no watcher left');
    });

    it('refuses watchers beyond --max-watchers with RESOURCE_EXHAUSTED, and frees a slot when one cancels', async () => {
      await start({ maxWatchers: 2 });
      await api.getNewMessage({ chatId: 'c' });
      const first = watch({ chatId: 'c' });
      await watch({ chatId: 'c' }).established();
      await first.established();
      expect(await expectEnd(watch({ chatId: 'c' }), status.RESOURCE_EXHAUSTED)).to.match(/serves 2 watchers, its limit/);

      expect((await first.cancel()).code).to.equal(status.CANCELLED);
      await waitFor(() => server.server.store.watcherCount === 1 && server.server.watches.size === 1, 'the cancelled watch to be cleaned up');
      const again = watch({ chatId: 'c' });
      await again.established();
      await visitorSays('c', 'v1');
      await again.reach(1, 0);
    });
  });
});
