import { status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { ChatSdkError, EventKind } from '../../src/client/index.js';
import { chatApi } from '../support/chat-api.js';
import { chatIdPlaced } from '../support/placement.js';
import { testClient } from '../support/servers.js';
import { sessionHarness } from '../support/sessions.js';
import { WatchStream } from '../support/watch-stream.js';

async function refusal(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(() => expect.fail('accepted'), (e: unknown) => e);
}

/**
 * A support conversation on server A, whose process is SIGKILLed: the sessions move to B and
 * rebuild it, and B then holds what the conversation was (its events, its end, its read
 * positions), but no typing, which is never stored or rebuilt.
 */
describe('conversations across a failover (child-process servers)', function () {
  this.timeout(60_000);
  const harness = sessionHarness();

  it('the events, the end and the read positions survive A\'s death on B; typing does not', async () => {
    const [a, b] = await harness.processes(2);
    const servers = [a!.address, b!.address];
    const chatId = chatIdPlaced('conversation-failover', servers);
    const visitor = await harness.open({ chatId, role: { kind: 'visitor', visitorId: 'vis-1' }, servers });
    const agent = await harness.open({ chatId, role: { kind: 'agent', agentId: 'agent-1' }, servers });
    const bot = await harness.open({ chatId, role: { kind: 'service', serviceId: 'order-bot' }, servers });

    await visitor.send('my order is late', { id: 'v1' });
    await bot.join({ id: 'e1' });
    await bot.send('looking it up', { id: 'b1' });
    await bot.leave({ id: 'e2' });
    await agent.join({ id: 'e3' });
    await agent.sync();
    await agent.markRead('v1');
    await agent.send('it ships today', { id: 'a1' });
    await visitor.sync();
    await visitor.markRead('a1');
    await agent.transfer('agent-2', { reason: 'shift over', id: 'e4' });
    await visitor.typing();
    await agent.end({ reason: 'solved', id: 'e5' });
    await visitor.sync();
    expect(visitor.server).to.equal(a!.address);
    expect(visitor.ended).to.equal(true);

    await a!.kill();
    // The visitor moves to B and rebuilds it from its copy; its send there is refused: ended.
    const late = await refusal(visitor.send('thanks!', { id: 'v2' }));
    expect(late).to.be.instanceOf(ChatSdkError).and.include({ kind: 'rejected', code: status.FAILED_PRECONDITION });
    expect(visitor.server).to.equal(b!.address);

    // A session that knew nothing, on B only, reads it all back.
    const auditor = await harness.open({ chatId, role: { kind: 'agent', agentId: 'agent-2' }, servers: [b!.address] });
    await auditor.sync();
    expect(auditor.messages.map((m) => m.id)).to.deep.equal(['v1', 'e1', 'b1', 'e2', 'e3', 'a1', 'e4', 'e5']);
    expect(auditor.ended).to.equal(true);
    expect(auditor.participants).to.deep.equal(['agent-2']);
    expect(auditor.messages.find((m) => m.id === 'e4')!.event).to.deep.include({ kind: EventKind.EVENT_KIND_TRANSFERRED, toParticipantId: 'agent-2', reason: 'shift over' });
    const error = await refusal(auditor.send('hello?'));
    expect(error).to.be.instanceOf(ChatSdkError).and.include({ kind: 'rejected', code: status.FAILED_PRECONDITION });

    // B's own answers: read positions kept, typing none.
    const client = testClient(b!.address);
    try {
      const read = await chatApi(client).getNewMessage({ chatId, visitorOffset: 0, agentOffset: 0 });
      expect(read.ended).to.equal(true);
      expect(read.readPositions.map((p) => [p.readerId, p.messageId]).sort()).to.deep.equal([['agent-1', 'v1'], ['vis-1', 'a1']]);
      const watch = new WatchStream(client, { chatId, visitorOffset: 0, agentOffset: 0 });
      await watch.until(() => watch.responses.length > 0, 'the first watch response');
      expect(watch.responses[0]!.typing).to.deep.equal([]);
      watch.call.cancel();
    } finally {
      client.close();
    }
  });

  it('a visitor\'s late send on an empty B (it never saw the end on A) is kept when the agent rebuilds B, which then holds the end', async () => {
    const [a, b] = await harness.processes(2);
    const servers = [a!.address, b!.address];
    const chatId = chatIdPlaced('late-message', servers);
    const visitor = await harness.open({ chatId, role: { kind: 'visitor', visitorId: 'vis-1' }, servers });
    const agent = await harness.open({ chatId, role: { kind: 'agent', agentId: 'agent-1' }, servers });

    await visitor.send('hello', { id: 'v1' });
    await agent.sync();
    await agent.send('how can I help?', { id: 'a1' });
    await agent.end({ id: 'end' });
    expect(visitor.ended).to.equal(false);

    await a!.kill();
    // The visitor moves to B, rebuilds it with what it holds (no end), and its send is taken there.
    const late = await visitor.send('are you there?', { id: 'v2' });
    expect(late.dataOffset).to.equal(2);
    expect(visitor.server).to.equal(b!.address);

    // The agent's copy (with the end) goes up to B: both histories merge, nothing lost.
    await agent.sync();
    expect(agent.server).to.equal(b!.address);
    expect(agent.messages.map((m) => m.id)).to.have.members(['v1', 'a1', 'end', 'v2']);
    expect(agent.ended).to.equal(true);

    const observer = await harness.open({ chatId, role: { kind: 'agent', agentId: 'agent-2' }, servers: [b!.address] });
    await observer.sync();
    expect(observer.messages.map((m) => m.id)).to.have.members(['v1', 'a1', 'end', 'v2']);
    expect(observer.ended).to.equal(true);

    await visitor.sync();
    expect(visitor.ended).to.equal(true);
    const refused = await refusal(visitor.send('hello again'));
    expect(refused).to.be.instanceOf(ChatSdkError).and.include({ kind: 'rejected', code: status.FAILED_PRECONDITION });
  });
});
