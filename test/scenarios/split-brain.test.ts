import { setTimeout } from 'node:timers/promises';
import { expect } from 'chai';
import { expectInvariants, syncEveryone, stage } from './invariants.js';
import { RestartableServer } from './restartable.js';
import { chatIdPlaced } from '../support/placement.js';

/**
 * docs/protocol.md rests convergence on "all clients of a chat reach the same server": with a
 * shared list, the chat's home by placement, or the best-placed one that is up. A session that
 * failed over away from the home checks whether it is back (ChatTransport's probes), so once
 * a dead server is back, clients that failed over at different times do not stay on two live
 * servers for good, each holding half of the conversation.
 */
describe('clients of one chat given a list of servers', function () {
  this.timeout(20_000);
  const { cast, servers } = stage();

  it("converge on the chat's home once it is back from the dead", async () => {
    const [a, b] = await Promise.all([RestartableServer.start('A'), RestartableServer.start('B')]);
    servers.push(a, b);
    const both = [a.address, b.address];
    const chatId = chatIdPlaced('split', both); // at home on A
    const visitor = await cast.open('visitor', { kind: 'visitor', visitorId: 'vis-1' }, both, { chatId });
    const agent = await cast.open('agent', { kind: 'agent', agentId: 'agent-7' }, both, { chatId });
    await visitor.send('v1');
    await agent.sync();
    await agent.send('a1');
    await visitor.sync();

    // A dies while only the visitor talks: the visitor moves to B.
    await a.kill();
    await visitor.send('v2');
    expect(visitor.rebuilds.at(-1)?.address).to.equal(b.address);

    // A is back (empty) before the agent's next call, which therefore lands on A.
    await a.restart();
    await agent.send('a2');
    expect(agent.rebuilds.at(-1)?.address).to.equal(a.address);

    // From here on nothing fails. Both talk on and sync until they converge: the visitor's
    // probes find its home A back within a few hundred milliseconds.
    await visitor.send('v3');
    await agent.send('a3');
    const deadline = Date.now() + 10_000;
    for (;;) {
      await syncEveryone(cast.participants);
      if (visitor.ids().includes('a3') && agent.ids().includes('v3')) break;
      expect(Date.now(), 'the visitor never came back to A').to.be.below(deadline);
      await setTimeout(100); // time must pass for the return; the loop ends on the condition
    }
    await expectInvariants(a.address, chatId, cast.participants); // A: the chat's home
  });
});
