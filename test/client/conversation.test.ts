import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { type Attachment, ChatSdkError, type ChatSession, EventKind, FileStore, MemoryStore, MessageType, type ReadPosition, type Typing } from '../../src/client/index.js';
import { sessionHarness } from '../support/sessions.js';

const attachment: Attachment = {
  uri: 'https://files.example.com/receipt.pdf',
  mediaType: 'application/pdf',
  sizeBytes: 48_213,
  sha256: 'a'.repeat(64),
  name: 'receipt.pdf',
};

/** Waits for the first `event` whose arguments pass `test`. */
function until<A extends unknown[]>(session: ChatSession, event: 'typing' | 'read', test: (...args: A) => boolean): Promise<A> {
  return new Promise((resolve) => {
    const listener = (...args: unknown[]) => {
      if (!test(...(args as A))) return;
      session.off(event, listener as never);
      resolve(args as A);
    };
    session.on(event, listener as never);
  });
}

async function refusal(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(() => expect.fail('accepted'), (e: unknown) => e);
}

describe('ChatSession conversations (events, attachments, read positions, typing)', () => {
  const harness = sessionHarness();
  const open = harness.open;
  const directories: string[] = [];
  after(async () => {
    await Promise.all(directories.map((d) => rm(d, { recursive: true, force: true })));
  });

  it('sends attachments (with empty content) that reach the other side as sent', async () => {
    const server = await harness.server();
    const visitor = await open({ chatId: 'files', role: { kind: 'visitor', visitorId: 'vis-1' }, servers: [server.address] });
    const agent = await open({ chatId: 'files', role: { kind: 'agent', agentId: 'agent-1' }, servers: [server.address] });
    const sent = await visitor.send('', { id: 'f1', attachments: [attachment] });
    expect(sent.attachments).to.deep.equal([attachment]);
    const [received] = await agent.sync();
    expect(received).to.include({ id: 'f1', content: '' });
    expect(received!.attachments).to.deep.equal([attachment]);
  });

  it('joins, transfers and ends: events are emitted once, participants derived, later sends refused', async () => {
    const server = await harness.server();
    const visitor = await open({ chatId: 'life', role: { kind: 'visitor', visitorId: 'vis-1' }, servers: [server.address] });
    const first = await open({ chatId: 'life', role: { kind: 'agent', agentId: 'agent-1' }, servers: [server.address] });
    const second = await open({ chatId: 'life', role: { kind: 'agent', agentId: 'agent-2' }, servers: [server.address] });
    const heard: string[] = [];
    visitor.on('joined', (who) => heard.push(`joined ${who}`));
    visitor.on('left', (who) => heard.push(`left ${who}`));
    visitor.on('transferred', ({ from, to }) => heard.push(`transferred ${from}->${to}`));
    visitor.on('ended', (m) => heard.push(`ended ${m.id}`));

    await visitor.send('hello', { id: 'v1' });
    const joined = await first.join({ id: 'e1' });
    expect(joined).to.include({ messageType: MessageType.MESSAGE_TYPE_SYSTEM, senderId: 'agent-1' });
    expect(joined.event).to.deep.include({ kind: EventKind.EVENT_KIND_JOINED, participantId: 'agent-1' });
    await first.transfer('agent-2', { reason: 'billing question', id: 'e2' });
    expect(first.participants).to.deep.equal(['agent-2']);
    await second.sync();
    await second.join({ id: 'e3' });
    await second.leave({ id: 'e4' });
    await second.join({ id: 'e5' });
    const end = await second.end({ reason: 'solved', id: 'e6' });
    expect(end.event).to.deep.include({ kind: EventKind.EVENT_KIND_ENDED, participantId: 'agent-2', reason: 'solved' });
    expect(second.ended).to.equal(true);

    await visitor.sync();
    await visitor.sync(); // nothing new: no event twice
    expect(heard).to.deep.equal(['joined agent-1', 'transferred agent-1->agent-2', 'joined agent-2', 'left agent-2', 'joined agent-2', 'ended e6']);
    expect(visitor.participants).to.deep.equal(['agent-2']);
    expect(visitor.ended).to.equal(true);

    const late = await refusal(visitor.send('one more thing', { id: 'v2' }));
    expect(late).to.be.instanceOf(ChatSdkError).and.include({ kind: 'rejected', code: status.FAILED_PRECONDITION });
    expect(visitor.pending).to.have.length(0);
    // Ending again resolves with the end the history holds, on a session that had not read it too.
    expect((await second.end({ id: 'e7' })).id).to.equal('e6');
    const stale = await open({ chatId: 'life', role: { kind: 'agent', agentId: 'agent-1' }, servers: [server.address] });
    expect((await stale.end()).id).to.equal('e6');
    expect(stale.ended).to.equal(true);
  });

  it('refuses events from a visitor', async () => {
    const server = await harness.server();
    const visitor = await open({ chatId: 'no-events', role: { kind: 'visitor', visitorId: 'vis-1' }, servers: [server.address] });
    const error = await refusal(visitor.end());
    expect(error).to.be.instanceOf(ChatSdkError).and.include({ kind: 'rejected', code: status.PERMISSION_DENIED });
  });

  it('marks read: the position is kept locally and seen by the other session, moving only forward', async () => {
    const server = await harness.server();
    const visitor = await open({ chatId: 'reads', role: { kind: 'visitor', visitorId: 'vis-1' }, servers: [server.address] });
    const agent = await open({ chatId: 'reads', role: { kind: 'agent', agentId: 'agent-1' }, servers: [server.address] });
    await visitor.send('question', { id: 'v1' });
    await agent.sync();
    await agent.send('answer 1', { id: 'a1' });
    await agent.send('answer 2', { id: 'a2' });
    await visitor.sync();
    const moved: ReadPosition[] = [];
    agent.on('read', (p) => moved.push(p));

    await visitor.markRead('a2');
    expect(visitor.readPositions.map((p) => [p.readerId, p.messageId])).to.deep.equal([['vis-1', 'a2']]);
    await visitor.markRead('a1'); // behind: the furthest stays
    expect(visitor.readPositions.map((p) => p.messageId)).to.deep.equal(['a2']);

    await agent.sync();
    expect(agent.readPositions.map((p) => [p.readerId, p.messageId])).to.deep.equal([['vis-1', 'a2']]);
    expect(moved.map((p) => p.messageId)).to.deep.equal(['a2']);

    const unknown = await refusal(visitor.markRead('no-such-message'));
    expect(unknown).to.be.instanceOf(ChatSdkError).and.include({ kind: 'rejected', code: status.NOT_FOUND });
  });

  it('marks read on a server without the chat by rebuilding it first', async () => {
    const first = await harness.server();
    const visitor = await open({ chatId: 'reads-rebuild', role: { kind: 'visitor', visitorId: 'vis-1' }, servers: [first.address] });
    await visitor.send('question', { id: 'v1' });
    await first.close();
    const second = await harness.server();
    const moved = await open({
      chatId: 'reads-rebuild',
      role: { kind: 'visitor', visitorId: 'vis-1' },
      servers: [second.address],
      store: await copyOf(visitor),
    });
    await moved.markRead('v1');
    const agent = await open({ chatId: 'reads-rebuild', role: { kind: 'agent', agentId: 'agent-1' }, servers: [second.address] });
    await agent.sync();
    expect(agent.readPositions.map((p) => [p.readerId, p.messageId])).to.deep.equal([['vis-1', 'v1']]);
  });

  it('shows typing to a watching session and lapses it at its expire time', async () => {
    const server = await harness.server({ typingTtlMs: 300 });
    const visitor = await open({ chatId: 'typing', role: { kind: 'visitor', visitorId: 'vis-1' }, servers: [server.address] });
    const agent = await open({ chatId: 'typing', role: { kind: 'agent', agentId: 'agent-1' }, servers: [server.address] });
    await visitor.send('hi', { id: 'v1' });
    const typing = until<[Typing[]]>(agent, 'typing', (list) => list.some((t) => t.participantId === 'vis-1'));
    agent.start();
    await agent.sync();
    await visitor.typing();
    await visitor.typing(); // throttled: no second call within 1.5 s
    const [list] = await typing;
    expect(list.map((t) => t.participantId)).to.deep.equal(['vis-1']);
    expect(agent.typingNow.map((t) => t.participantId)).to.deep.equal(['vis-1']);
    await until<[Typing[]]>(agent, 'typing', (l) => l.length === 0);
    expect(agent.typingNow).to.deep.equal([]);
  });

  it('swallows typing a server cannot take (no such chat there, or ended)', async () => {
    const server = await harness.server();
    const agent = await open({ chatId: 'typing-nowhere', role: { kind: 'agent', agentId: 'agent-1' }, servers: [server.address] });
    await agent.typing(); // NOT_FOUND: the server holds no such chat
    await agent.send('hello', { id: 'a1' });
    await agent.end();
    await agent.typing(false);
    await agent.typing(true); // FAILED_PRECONDITION: ended
  });

  it('keeps attachments, events, the end and read positions in a FileStore across a restart', async () => {
    const server = await harness.server();
    const directory = await mkdtemp(path.join(tmpdir(), 'conversation-'));
    directories.push(directory);
    const visitor = await open({ chatId: 'durable', role: { kind: 'visitor', visitorId: 'vis-1' }, servers: [server.address] });
    const agentOptions = { chatId: 'durable', role: { kind: 'agent', agentId: 'agent-1' }, servers: [server.address] } as const;
    const agent = await open({ ...agentOptions, store: new FileStore(directory) });
    await visitor.send('see attached', { id: 'v1', attachments: [attachment] });
    await agent.sync();
    await agent.join({ id: 'e1' });
    await agent.markRead('v1');
    await agent.end({ reason: 'done', id: 'e2' });
    const before = agent.messages;
    await agent.close();

    const reopened = await open({ ...agentOptions, store: new FileStore(directory) });
    expect(reopened.messages).to.deep.equal(before);
    expect(reopened.messages.find((m) => m.id === 'v1')!.attachments).to.deep.equal([attachment]);
    expect(reopened.ended).to.equal(true);
    expect(reopened.participants).to.deep.equal(['agent-1']);
    expect(reopened.readPositions.map((p) => [p.readerId, p.messageId])).to.deep.equal([['agent-1', 'v1']]);
  });

  it('keeps a queued event (and its attachments) in a FileStore until it is sent', async () => {
    const directory = await mkdtemp(path.join(tmpdir(), 'conversation-'));
    directories.push(directory);
    const store = new FileStore(directory);
    await store.save({
      chatId: 'queued',
      messages: [],
      outbox: [
        { id: 'p1', content: '', messageType: MessageType.MESSAGE_TYPE_AGENT, attachments: [attachment] },
        { id: 'p2', content: '', messageType: MessageType.MESSAGE_TYPE_SYSTEM, event: { kind: EventKind.EVENT_KIND_ENDED, participantId: 'agent-1', toParticipantId: '', reason: 'bye' } },
      ],
    });
    const loaded = await new FileStore(directory).load('queued');
    expect(loaded!.outbox[0]!.attachments).to.deep.equal([attachment]);
    expect(loaded!.outbox[1]!.event).to.deep.include({ kind: EventKind.EVENT_KIND_ENDED, reason: 'bye' });

    const server = await harness.server();
    const agent = await open({ chatId: 'queued', role: { kind: 'agent', agentId: 'agent-1' }, servers: [server.address], store: new FileStore(directory) });
    const ended = once(agent, 'ended');
    await agent.sync();
    const [end] = await ended;
    expect(end.id).to.equal('p2');
    expect(agent.messages.map((m) => m.id)).to.deep.equal(['p1', 'p2']);
    expect(agent.ended).to.equal(true);
  });

  it('marks again, once reopened, what it marked read but no server acknowledged', async () => {
    const server = await harness.server();
    const visitor = await open({ chatId: 'unsent-read', role: { kind: 'visitor', visitorId: 'vis-1' }, servers: [server.address] });
    const sent = await visitor.send('hello', { id: 'v1' });
    const agent = await open({ chatId: 'unsent-read', role: { kind: 'agent', agentId: 'agent-1' }, servers: [server.address] });
    await agent.sync();
    const store = new MemoryStore();
    // As a crash right after the mark was saved, before MarkRead went out, would leave it.
    await store.save({ chatId: 'unsent-read', messages: [sent], outbox: [], epoch: undefined, readPositions: [{ readerId: 'agent-1', messageId: 'v1' }], unsentReads: ['agent-1'] });
    const seen = until<[ReadPosition]>(visitor, 'read', (p) => p.readerId === 'agent-1');
    visitor.start();
    const reopened = await open({ chatId: 'unsent-read', role: { kind: 'agent', agentId: 'agent-1' }, servers: [server.address], store });
    const [position] = await seen;
    expect(position.messageId).to.equal('v1');
    expect(reopened.readPositions.map((p) => p.messageId)).to.deep.equal(['v1']);
  });
});

/** A store holding what `session`'s copy holds now (as a device would after its server died). */
async function copyOf(session: ChatSession) {
  const store = new MemoryStore();
  await store.save({ chatId: session.chatId, messages: session.messages, outbox: [] });
  return store;
}
