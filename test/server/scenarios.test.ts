import { expect } from 'chai';
import { ChatMessage, ChatServiceClient, MessageType, ResultCode } from '../../generated/chat/v1/chat.js';
import { type ChatApi, chatApi } from '../support/chat-api.js';
import { Replica } from '../support/replica.js';
import { type ServerProcess, spawnServer, startTestServer, testClient, type TestServer } from '../support/servers.js';
import { sealed } from '../support/security.js';

const OK = ResultCode.RESULT_CODE_OK;
const REBUILD = ResultCode.RESULT_CODE_REBUILD_REQUIRED;

/** docs/reference.md section 6, scenarios 1, 2, 3, 4, 8 and 11, against real servers. */
describe('protocol scenarios over the wire', () => {
  let servers: TestServer[] = [];
  const start = async (overrides: Parameters<typeof startTestServer>[0] = {}) => {
    const server = await startTestServer(overrides);
    servers.push(server);
    return { server, api: chatApi(server.client) };
  };
  afterEach(async () => {
    await Promise.all(servers.map((s) => s.close()));
    servers = [];
  });

  it('1. steady state: after the chat is set up, nothing ever asks for a rebuild', async () => {
    const { api } = await start();
    const visitor = new Replica('steady');
    const agent = new Replica('steady');
    expect(await visitor.sync(api)).to.equal(1); // the server did not know the chat yet
    expect(await agent.sync(api)).to.equal(0);
    for (let i = 0; i < 20; i += 1) {
      await visitor.send(api, `v${i}`, `question ${i}`);
      expect(await agent.sync(api)).to.equal(0);
      await agent.send(api, `a${i}`, `answer ${i}`, 'agent-7');
      expect(await visitor.sync(api)).to.equal(0);
    }
    expect(agent.messages()).to.deep.equal(visitor.messages());
    expect(visitor.offsets).to.deep.equal({ visitorOffset: 20, agentOffset: 20 });
  });

  it('3. incremental rebuild: the agent uploads only what the server lacks; the visitor then reads it', async () => {
    const { api: a } = await start();
    const { api: b } = await start();
    const visitor = new Replica('incr');
    const agent = new Replica('incr');
    await visitor.sync(a);
    await agent.sync(a);
    await visitor.send(a, 'v1', 'hello');
    await agent.sync(a);
    // B is rebuilt from the visitor's copy; meanwhile the agent wrote more on A.
    await visitor.sync(b);
    await agent.send(a, 'a1', 'hi, how can I help?', 'agent-1');
    await agent.send(a, 'a2', 'still there?', 'agent-1');

    const read = await b.getNewMessage({ chatId: 'incr', ...agent.offsets });
    expect(read).to.deep.include({ code: REBUILD, visitorDataOffset: 1, agentDataOffset: 0 });
    const lacking = agent.messages().filter((m) => m.messageType !== MessageType.MESSAGE_TYPE_VISITOR && m.dataOffset > read.agentDataOffset);
    const rebuilt = await b.rebuild({ chat: { ...agent.toChat(), messages: lacking } });
    expect(rebuilt.chat).to.deep.include({ visitorDataOffset: 1, agentDataOffset: 2 });

    const caughtUp = await b.getNewMessage({ chatId: 'incr', ...visitor.offsets });
    expect(caughtUp.code).to.equal(OK);
    expect(caughtUp.messages.map((m) => m.id)).to.deep.equal(['a1', 'a2']);
    visitor.take(caughtUp.messages);
    expect(visitor.messages()).to.deep.equal(agent.messages());
  });

  it('4. lost acknowledgement: the retry on B and the receiver\'s rebuild of B leave the message once', async () => {
    const { server: serverA, api: a } = await start();
    const { api: b } = await start();
    const visitor = new Replica('lost-ack');
    const agent = new Replica('lost-ack');
    await visitor.sync(a);
    await agent.sync(a);
    const message = { id: 'v1', content: 'did you get this?', messageType: MessageType.MESSAGE_TYPE_VISITOR, dataOffset: 0, sendTime: undefined, senderId: '' };
    // A stores the message; its answer never reaches the visitor (A dies right after).
    expect((await a.addVisitorMessage({ chatId: 'lost-ack', ...visitor.offsets, message })).code).to.equal(OK);
    await agent.sync(a);
    await serverA.close();

    await agent.sync(b); // the receiver rebuilds B with the message it got from A
    const retry = await b.addVisitorMessage({ chatId: 'lost-ack', ...visitor.offsets, message });
    expect(retry).to.deep.include({ code: OK, visitorDataOffset: 1, agentDataOffset: 0 });
    expect(retry.message).to.deep.include({ id: 'v1', dataOffset: 1 });
    visitor.take([retry.message!]);
    const all = await b.getNewMessage({ chatId: 'lost-ack', visitorOffset: 0, agentOffset: 0 });
    expect(all.messages.map((m) => m.id)).to.deep.equal(['v1']);
    expect(visitor.messages()).to.deep.equal(agent.messages());
  });

  it('8. sends issued during a rebuild wait and land after the merge', async () => {
    const { api } = await start();
    const agent = new Replica('busy');
    agent.take(
      // As much as one Rebuild may carry (--max-request-bytes, 256 KiB): about 210 KB.
      Array.from({ length: 500 }, (_, i) => ({
        id: `a${i + 1}`, dataOffset: i + 1, content: `line ${i + 1} `.repeat(40), messageType: MessageType.MESSAGE_TYPE_AGENT, sendTime: new Date(1_000 + i), senderId: 'agent-1', attachments: [],
      })),
    );
    await api.getNewMessage({ chatId: 'busy', visitorOffset: 0, agentOffset: 0 }); // the server now holds it empty
    const bot = (n: number) =>
      api.addAgentMessage({
        chatId: 'busy', agentId: 'bot', visitorOffset: 0, agentOffset: 0,
        message: { id: `bot${n}`, content: 'auto-reply', messageType: MessageType.MESSAGE_TYPE_BOT, dataOffset: 0, sendTime: undefined, senderId: '' },
      });
    const rebuild = api.rebuild({ chat: agent.toChat() });
    const sends = [bot(1), bot(2), bot(3)];
    const [rebuilt, ...sent] = await Promise.all([rebuild, ...sends]);
    expect(rebuilt!.chat!.agentDataOffset).to.be.at.least(500);
    // Each bot message either landed before the rebuild began (and the upload kept its order
    // after it) or after the merge: never inside the uploaded range.
    const server = new Replica('busy');
    await server.sync(api);
    const layout = server.messages().map((m) => m.id);
    const uploaded = layout.filter((id) => id.startsWith('a'));
    expect(uploaded).to.deep.equal(agent.messages().map((m) => m.id));
    expect(sent.every((s) => s.code === OK)).to.equal(true);
    const first = layout.indexOf('a1');
    for (const id of ['bot1', 'bot2', 'bot3']) {
      const at = layout.indexOf(id);
      expect(at < first || at > layout.indexOf('a500'), `${id} landed inside the upload`).to.equal(true);
    }
  });

  it('11. a chat larger than one gRPC message is rebuilt in parts and read back in pages', async () => {
    // Its 7 MB go up as fast as the server answers: more than the upload budget admits in a
    // second, which test/server/rebuild-budget.test.ts tests on its own.
    const { api } = await start({ rebuildBytesPerSecond: 0 });
    const big = 60 * 1024;
    const writer = new Replica('huge');
    writer.take(
      sealed(
        'huge',
        Array.from({ length: 120 }, (_, i) => ({
          id: `m${i}`, dataOffset: Math.floor(i / 2) + 1, content: String.fromCharCode(65 + (i % 26)).repeat(big),
          messageType: i % 2 ? MessageType.MESSAGE_TYPE_AGENT : MessageType.MESSAGE_TYPE_VISITOR, sendTime: new Date(i * 1000), senderId: '',
        })),
      ),
    );
    const all = writer.messages();
    expect(all.reduce((n, m) => n + m.content.length, 0)).to.be.above(4 * 1024 * 1024);
    // Uploads of four messages (~246 KB), under the server's 256 KiB request limit; every answer
    // must stay under the client's default receive limit of 4 MiB.
    let lastRebuild;
    for (let i = 0; i < all.length; i += 4) lastRebuild = await api.rebuild({ chat: { ...writer.toChat(), messages: all.slice(i, i + 4) } });
    expect(lastRebuild!.chat).to.deep.include({ visitorDataOffset: 60, agentDataOffset: 60 });
    expect(lastRebuild!.truncated).to.equal(true);

    const reader = new Replica('huge');
    let pages = 0;
    for (let position = reader.offsets; ; position = reader.offsets) {
      const page = await api.getNewMessage({ chatId: 'huge', ...position });
      expect(page.code).to.equal(OK);
      if (page.messages.length === 0) break;
      pages += 1;
      reader.take(page.messages);
    }
    expect(pages).to.be.at.least(3);
    // As the decoder gives them: every field present, each with the seal it was uploaded with.
    expect(reader.messages()).to.deep.equal(all.map((m) => ChatMessage.fromPartial(m)));
  });
});

describe('scenario 2: failover after a server process is killed', () => {
  const processes: ServerProcess[] = [];
  const clients: ChatServiceClient[] = [];
  const connect = (p: ServerProcess): ChatApi => {
    const client = testClient(p.address);
    clients.push(client);
    return chatApi(client);
  };
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(processes.map((p) => p.kill()));
  });

  it('both clients move to the empty server B, rebuild it, and converge with it', async () => {
    processes.push(await spawnServer(), await spawnServer());
    const [a, b] = processes.map(connect) as [ChatApi, ChatApi];
    const visitor = new Replica('failover');
    const agent = new Replica('failover');
    await visitor.sync(a);
    await agent.sync(a);
    for (let i = 1; i <= 5; i += 1) {
      await visitor.send(a, `v${i}`, `visitor says ${i}`);
      await agent.sync(a);
      await agent.send(a, `a${i}`, `agent says ${i}`, 'agent-1');
      await visitor.sync(a);
    }
    await processes[0]!.kill();

    const lost = await b.getNewMessage({ chatId: 'failover', ...visitor.offsets });
    expect(lost).to.deep.include({ code: REBUILD, visitorDataOffset: -1, agentDataOffset: -1 });
    expect(await visitor.sync(b)).to.equal(1);
    expect(await agent.sync(b)).to.equal(0); // the visitor's copy already had everything
    await visitor.send(b, 'v6', 'are you still there?');
    await agent.sync(b);
    await agent.send(b, 'a6', 'yes, on another server now', 'agent-1');
    await visitor.sync(b);

    const serverView = new Replica('failover');
    await serverView.sync(b);
    expect(visitor.messages()).to.deep.equal(agent.messages());
    expect(serverView.messages()).to.deep.equal(visitor.messages());
    expect(visitor.offsets).to.deep.equal({ visitorOffset: 6, agentOffset: 6 });
    expect(processes[1]!.logs.filter((l) => l.msg === 'rebuild')).to.have.length(1);
  });
});
