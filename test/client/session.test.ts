import { once } from 'node:events';
import { status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { ChatSdkError, type ChatSession, MemoryStore, MessageType, placement, type RetryEvent } from '../../src/client/index.js';
import { chatApi } from '../support/chat-api.js';
import { startTestServer } from '../support/servers.js';
import { sessionHarness } from '../support/sessions.js';
import { sealed } from '../support/security.js';

const transcript = (session: ChatSession) => session.messages.map((m) => `${m.id}@${m.dataOffset}: ${m.content}`);

describe('ChatSession against real servers', () => {
  const harness = sessionHarness();
  const open = harness.open;

  it('lets a visitor and an agent talk, each send landing in order and reaching the other', async () => {
    const server = await harness.server();
    const visitor = await open({ chatId: 'talk', role: { kind: 'visitor', visitorId: 'vis-1' }, servers: [server.address] });
    const agent = await open({ chatId: 'talk', role: { kind: 'agent', agentId: 'agent-7' }, servers: [server.address] });

    const sent = await Promise.all(Array.from({ length: 10 }, (_, i) => visitor.send(`question ${i}`, { id: `v${i}` })));
    expect(sent.map((m) => m.dataOffset)).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(sent[0]).to.include({ senderId: 'vis-1', messageType: MessageType.MESSAGE_TYPE_VISITOR });

    const received = await agent.sync();
    expect(received.map((m) => m.id)).to.deep.equal(sent.map((m) => m.id));
    const reply = await agent.send('answer', { id: 'a1' });
    expect(reply).to.include({ dataOffset: 1, senderId: 'agent-7', messageType: MessageType.MESSAGE_TYPE_AGENT });
    await visitor.sync();
    expect(transcript(visitor)).to.deep.equal(transcript(agent));
    expect(visitor.offsets).to.deep.equal({ visitorOffset: 10, agentOffset: 1 });
  });

  it('offers new messages as events and as an async iterator while polling', async () => {
    const server = await harness.server();
    const agent = await open({ chatId: 'push', role: { kind: 'agent', agentId: 'agent-7' }, servers: [server.address], pollIntervalMs: 10 });
    const visitor = await open({ chatId: 'push', role: { kind: 'visitor' }, servers: [server.address] });
    await agent.sync();
    const stop = new AbortController();
    const seen: string[] = [];
    const iterating = (async () => {
      for await (const message of agent.updates({ signal: stop.signal })) {
        seen.push(message.id);
        if (seen.length === 3) stop.abort();
      }
    })();
    agent.start();
    for (const id of ['m1', 'm2', 'm3']) await visitor.send(`hello ${id}`, { id });
    await iterating;
    expect(seen).to.deep.equal(['m1', 'm2', 'm3']);
  });

  it('rejects what the server refuses with a typed error and goes on with the next send', async () => {
    const server = await harness.server({ maxContentBytes: 10 });
    const visitor = await open({ chatId: 'bad', role: { kind: 'visitor' }, servers: [server.address] });
    const tooLong = visitor.send('far too long for this server');
    const fine = visitor.send('short');
    const error = await tooLong.then(() => expect.fail('accepted'), (e: unknown) => e);
    expect(error).to.be.instanceOf(ChatSdkError).and.include({ kind: 'rejected', code: status.INVALID_ARGUMENT });
    expect((await fine).dataOffset).to.equal(1);
    expect(visitor.pending).to.have.length(0);
  });

  it('rejects with RESOURCE_EXHAUSTED once every server has said a limit is reached', async () => {
    const server = await harness.server({ maxMessagesPerChat: 1 });
    const visitor = await open({ chatId: 'full', role: { kind: 'visitor' }, servers: [server.address] });
    await visitor.send('the only message');
    const error = await visitor.send('one too many').then(() => expect.fail('accepted'), (e: unknown) => e);
    expect(error).to.be.instanceOf(ChatSdkError).and.include({ kind: 'rejected', code: status.RESOURCE_EXHAUSTED });
    expect(visitor.pending).to.have.length(0);
  });

  it('a client that lost its local copy rejoins and receives the whole chat (scenario 9)', async () => {
    const server = await harness.server();
    const visitor = await open({ chatId: 'rejoin', role: { kind: 'visitor' }, servers: [server.address] });
    const agent = await open({ chatId: 'rejoin', role: { kind: 'agent', agentId: 'a' }, servers: [server.address] });
    for (let i = 0; i < 5; i += 1) {
      await visitor.send(`v${i}`);
      await agent.send(`a${i}`);
    }
    await visitor.sync();
    const fresh = await open({ chatId: 'rejoin', role: { kind: 'agent', agentId: 'a' }, servers: [server.address], store: new MemoryStore() });
    await fresh.sync();
    expect(transcript(fresh)).to.deep.equal(transcript(visitor));
  });

  it('rebuilds a chat larger than one gRPC message through uploads under the limit', async () => {
    const server = await harness.server();
    const writerServer = await harness.server();
    const writer = await open({ chatId: 'big', role: { kind: 'visitor' }, servers: [writerServer.address] });
    for (let i = 0; i < 80; i += 1) await writer.send(String.fromCharCode(97 + (i % 26)).repeat(60_000), { id: `m${i}` });

    const moved = await open({ chatId: 'big', role: { kind: 'visitor' }, servers: [server.address], store: await storeOf(writer) });
    const rebuilds: number[] = [];
    moved.on('rebuild', (event) => rebuilds.push(event.uploaded));
    await moved.sync();
    expect(rebuilds).to.deep.equal([80]);
    const view = await chatApi(server.client).getNewMessage({ chatId: 'big', visitorOffset: 0, agentOffset: 0 });
    expect(view.visitorDataOffset).to.equal(80);
  });

  it('uploads again in halves to a server whose request limit is below its upload size', async () => {
    const server = await harness.server({ maxRequestBytes: 40_000 });
    const writer = await open({ chatId: 'small-limit', role: { kind: 'visitor' }, servers: [(await harness.server()).address] });
    for (let i = 0; i < 300; i += 1) await writer.send('x'.repeat(1_000), { id: `m${i}` });
    const tooLarge = await chatApi(server.client)
      .rebuild({ chat: { id: 'small-limit', visitorDataOffset: 0, agentDataOffset: 0, visitor: undefined, beginTime: undefined, messages: writer.messages.slice(0, 100) } })
      .then(() => expect.fail('a 100 KB request was taken'), (e: { code: number; details: string }) => e);
    expect(tooLarge).to.include({ code: status.RESOURCE_EXHAUSTED });
    expect(tooLarge.details).to.match(/larger than max/);
    expect(server.server.store.size, 'the refused request created nothing').to.equal(0);

    const moved = await open({ chatId: 'small-limit', role: { kind: 'visitor' }, servers: [server.address], store: await storeOf(writer) });
    const retries: RetryEvent[] = [];
    moved.on('retry', (event) => retries.push(event));
    await moved.sync();
    expect(retries, 'a size refusal is not retried as it is').to.deep.equal([]);
    const view = await chatApi(server.client).getNewMessage({ chatId: 'small-limit', visitorOffset: 0, agentOffset: 0 });
    expect(view.visitorDataOffset).to.equal(300);
    expect(moved.offsets).to.deep.equal({ visitorOffset: 300, agentOffset: 0 });
  });

  it('adopts a server chat of 160,000 messages in one rebuild (no argument list that large)', async function () {
    this.timeout(60_000);
    // The setup uploads 11 MB at once, faster than the upload budget admits (its own tests: test/server/rebuild-budget.test.ts).
    const server = await harness.server({ maxChatBytes: 512 * 1024 ** 2, maxHeldBytes: 1024 ** 3, maxRequestBytes: 8 * 1024 ** 2, rebuildBytesPerSecond: 0 });
    const api = chatApi(server.client);
    const base = { visitorDataOffset: 0, agentDataOffset: 0, visitor: undefined, beginTime: undefined };
    const part = (from: number) =>
      Array.from({ length: 80_000 }, (_, i) => ({ id: `s${from + i}`, dataOffset: from + i, content: 'hi', messageType: MessageType.MESSAGE_TYPE_VISITOR }));
    await api.rebuild({ chat: { ...base, id: 'huge', messages: part(1) } });
    await api.rebuild({ chat: { ...base, id: 'huge', messages: part(80_001) } });

    const store = new MemoryStore();
    const mine = { id: 'mine', dataOffset: 1, content: 'mine', messageType: MessageType.MESSAGE_TYPE_VISITOR, sendTime: new Date(), senderId: 'visitor', attachments: [] };
    await store.save({ chatId: 'huge', messages: sealed('huge', [mine]), outbox: [], epoch: 'another' });
    const visitor = await open({ chatId: 'huge', role: { kind: 'visitor' }, servers: [server.address], store, callTimeoutMs: 30_000 });
    const fresh = await visitor.sync();
    expect(fresh).to.have.length(160_000);
    expect(visitor.offsets).to.deep.equal({ visitorOffset: 160_001, agentOffset: 0 });
  });

  it('keeps its own order across the uploads of one copy where the first moved past a gap the server holds', async () => {
    const server = await harness.server();
    const api = chatApi(server.client);
    const visitorAt = (id: string, dataOffset: number) => ({ id, dataOffset, content: `text ${id}`, messageType: MessageType.MESSAGE_TYPE_VISITOR });
    // The server's incarnation holds x and y at 1 and 2, and z beyond a gap, at 5.
    const base = { visitorDataOffset: 0, agentDataOffset: 0, visitor: undefined, beginTime: undefined };
    const { epoch } = (await api.rebuild({ chat: { ...base, id: 'gap', messages: [visitorAt('x', 1), visitorAt('y', 2)] } })).chat!;
    await api.rebuild({ chat: { ...base, id: 'gap', epoch, messages: [visitorAt('z', 5)] } });

    // A copy of another incarnation, a to e at 1 to 5, goes up whole, about two messages an upload.
    const mine = ['a', 'b', 'c', 'd', 'e'];
    const store = new MemoryStore();
    const copy = mine.map((id, i) => ({ ...visitorAt(id, i + 1), sendTime: new Date(Date.UTC(2026, 0, 1, 0, i)), senderId: 'visitor' }));
    await store.save({ chatId: 'gap', messages: sealed('gap', copy), outbox: [], epoch: 'another' });
    const moved = await open({ chatId: 'gap', role: { kind: 'visitor' }, servers: [server.address], store, maxUploadBytes: 1024 + 80 });
    const uploads: number[] = [];
    moved.on('rebuild', (event) => uploads.push(event.uploaded));
    await moved.sync();
    expect(uploads).to.deep.equal([5]);

    // Every message the server holds, beyond gaps too, in its order (a Rebuild answers its snapshot).
    const order = (await api.rebuild({ chat: { ...base, id: 'gap', messages: [] } })).chat!.messages.map((m) => m.id);
    expect(order.filter((id) => mine.includes(id)), `the server's order: ${order.join(' ')}`).to.deep.equal(mine);
    expect(moved.messages.map((m) => m.id).filter((id) => mine.includes(id))).to.deep.equal(mine);
  });

  it('keeps an unacknowledged send in the outbox across close and reopen, and delivers it then', async () => {
    const gone = await startTestServer();
    const deadAddress = gone.address;
    await gone.close();
    const store = new MemoryStore();
    const offline = await open({ chatId: 'outbox', role: { kind: 'visitor' }, servers: [deadAddress], store });
    const retried = once(offline, 'retry');
    const waiting = offline.send('sent while offline', { id: 'queued-1' });
    await retried;
    await offline.close();
    const closed = await waiting.then(() => expect.fail('acknowledged by a dead server'), (e: unknown) => e);
    expect(closed).to.be.instanceOf(ChatSdkError).and.include({ kind: 'closed' });
    expect((await store.load('outbox'))!.outbox.map((m) => m.id)).to.deep.equal(['queued-1']);

    const server = await harness.server();
    const online = await open({ chatId: 'outbox', role: { kind: 'visitor' }, servers: [server.address], store });
    const delivered = once(online, 'message');
    expect(online.pending.map((m) => m.id)).to.deep.equal(['queued-1']);
    const [message] = (await delivered) as [{ id: string; dataOffset: number }];
    expect(message).to.include({ id: 'queued-1', dataOffset: 1 });
    expect((await store.load('outbox'))!.outbox).to.have.length(0);
  });

  it('stops waiting when a signal aborts, without unsending; a sync with an aborted signal rejects', async () => {
    const server = await harness.server();
    const visitor = await open({ chatId: 'abort', role: { kind: 'visitor' }, servers: [server.address] });
    const stop = new AbortController();
    stop.abort();
    const aborted = await visitor.send('still goes out', { id: 'm1', signal: stop.signal }).catch((e: unknown) => e);
    expect(aborted).to.be.instanceOf(ChatSdkError).and.include({ kind: 'aborted' });
    const syncError = await visitor.sync({ signal: stop.signal }).catch((e: unknown) => e);
    expect(syncError).to.be.instanceOf(ChatSdkError).and.include({ kind: 'aborted' });
    await visitor.send('after it', { id: 'm2' });
    expect(visitor.messages.map((m) => m.id)).to.deep.equal(['m1', 'm2']);
  });

  it('fails over to the next server when its server process is killed mid-conversation', async () => {
    const started = await harness.processes(2);
    // The chat's home first: the placement every client computes for it.
    const order = placement('fo', started.map((p) => p.address));
    const processes = order.map((address) => started.find((p) => p.address === address)!);
    const addresses = processes.map((p) => p.address);
    const visitor = await open({ chatId: 'fo', role: { kind: 'visitor' }, servers: addresses, callTimeoutMs: 500 });
    const agent = await open({ chatId: 'fo', role: { kind: 'agent', agentId: 'a' }, servers: addresses });
    const rebuilt: string[] = [];
    visitor.on('rebuild', (e) => rebuilt.push(`visitor@${e.address}`));
    agent.on('rebuild', (e) => rebuilt.push(`agent@${e.address}`));
    for (let i = 0; i < 3; i += 1) {
      await visitor.send(`before ${i}`);
      await agent.send(`reply ${i}`);
    }
    await visitor.sync();
    // Freeze A so the next send is in flight there and unanswered, then kill A for good.
    processes[0]!.child.kill('SIGSTOP');
    const retried = once(visitor, 'retry');
    const inFlight = visitor.send('during the crash');
    const [retry] = (await retried) as [RetryEvent];
    expect(retry).to.deep.include({ address: addresses[0], attempt: 0 });
    expect(retry.error.code).to.equal(status.DEADLINE_EXCEEDED);
    await processes[0]!.kill();
    expect((await inFlight).dataOffset).to.equal(4);
    await agent.send('after the crash');
    await visitor.sync();
    await agent.sync();
    expect(transcript(visitor)).to.deep.equal(transcript(agent));
    expect(visitor.offsets).to.deep.equal({ visitorOffset: 4, agentOffset: 4 });
    expect(rebuilt.some((r) => r.endsWith(processes[1]!.address))).to.equal(true);
  });
});

/** A store holding a session's current copy, as another device with that copy would. */
async function storeOf(session: ChatSession): Promise<MemoryStore> {
  const store = new MemoryStore();
  await store.save({ chatId: session.chatId, messages: session.messages, outbox: [] });
  return store;
}
