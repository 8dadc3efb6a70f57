import { once } from 'node:events';
import { expect } from 'chai';
import type { ChatMessage, ChatSession } from '../../src/client/index.js';
import { chatIdPlaced } from '../support/placement.js';
import { sessionHarness } from '../support/sessions.js';

/** So long that a message arriving within a test can only have been pushed, not polled. */
const NEVER_POLL = 10 * 60_000;

/** Resolves with the first message event whose id is `id`. */
function arrival(session: ChatSession, id: string): Promise<ChatMessage> {
  return new Promise((resolve) => {
    const listener = (message: ChatMessage) => {
      if (message.id !== id) return;
      session.off('message', listener);
      resolve(message);
    };
    session.on('message', listener);
  });
}

describe('ChatSession receiving by watch', () => {
  const harness = sessionHarness({ pollIntervalMs: NEVER_POLL });
  const open = harness.open;

  it('watches by default: what the visitor sends is pushed to the agent, in order', async () => {
    const server = await harness.server();
    const visitor = await open({ chatId: 'push', role: { kind: 'visitor' }, servers: [server.address] });
    const agent = await open({ chatId: 'push', role: { kind: 'agent', agentId: 'a' }, servers: [server.address] });
    await visitor.send('before the watch', { id: 'v0' });
    const seen: string[] = [];
    agent.on('message', (m) => seen.push(m.id));
    const last = arrival(agent, 'v5');
    agent.start();
    for (let i = 1; i <= 5; i += 1) await visitor.send(`question ${i}`, { id: `v${i}` });
    await last;
    expect(seen).to.deep.equal(['v0', 'v1', 'v2', 'v3', 'v4', 'v5']);
    expect(agent.offsets).to.deep.equal({ visitorOffset: 6, agentOffset: 0 });
  });

  it('polls when asked to', async () => {
    const server = await harness.server();
    const visitor = await open({ chatId: 'poll', role: { kind: 'visitor' }, servers: [server.address] });
    const agent = await open({ chatId: 'poll', role: { kind: 'agent', agentId: 'a' }, servers: [server.address], receive: 'poll', pollIntervalMs: 20 });
    const got = arrival(agent, 'v1');
    agent.start();
    await visitor.send('hello', { id: 'v1' });
    expect((await got).dataOffset).to.equal(1);
  });

  it('resumes on another server after its server is killed, rebuilding it, and misses nothing', async () => {
    const processes = await harness.processes(2);
    const addresses = processes.map((p) => p.address);
    const chatId = chatIdPlaced('resume', addresses); // the first process is its home
    const visitor = await open({ chatId, role: { kind: 'visitor' }, servers: addresses });
    const agent = await open({ chatId, role: { kind: 'agent', agentId: 'a' }, servers: addresses });
    const first = arrival(agent, 'v1');
    agent.start();
    await visitor.send('on A', { id: 'v1' });
    await first;

    const rebuilt = once(agent, 'rebuild');
    const second = arrival(agent, 'v2');
    await processes[0]!.kill();
    await visitor.send('on B, after A died', { id: 'v2' });
    const [event] = await rebuilt;
    expect(event).to.deep.include({ address: addresses[1] });
    expect(await second).to.include({ id: 'v2', dataOffset: 2 });
    await agent.send('still here', { id: 'a1' });
    await visitor.sync();
    expect(agent.messages.map((m) => `${m.id}@${m.dataOffset}`)).to.deep.equal(visitor.messages.map((m) => `${m.id}@${m.dataOffset}`));
  });
});
