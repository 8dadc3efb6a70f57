import { expect } from 'chai';
import { expectInvariants, OFFSETS_ONLY, readServer, syncEveryone, stage } from './invariants.js';
import { RestartableServer } from './restartable.js';
import { chatIdPlaced } from '../support/placement.js';

/**
 * Scenario 5 (docs/reference.md sections 4 and 6): two histories that claim the same offset. Offsets
 * alone cannot tell them apart; the epoch a session carries can. Run with OFFSETS_ONLY=1 to
 * see the original protocol lose the messages these tests look for.
 */
describe(`scenario 5: diverged histories after a failover${OFFSETS_ONLY ? ' (OFFSETS_ONLY=1: offsets only, expected to fail)' : ''}`, function () {
  this.timeout(30_000);
  const { cast, servers } = stage();

  /** Servers A and B, and a chat named after `prefix` whose home is A (B its fallback). */
  const startPair = async (prefix: string) => {
    const [a, b] = await Promise.all([RestartableServer.start('A'), RestartableServer.start('B')]);
    servers.push(a, b);
    const both = [a.address, b.address];
    return { a, b, both, chatId: chatIdPlaced(prefix, both) };
  };

  it('(a) visitor side, two devices: B gives Y the offset 5 that X holds on A; the agent still gets Y and B still gets X', async () => {
    const { a, b, both, chatId } = await startPair('diverge-visitor');
    const phone = await cast.open('visitor phone', { kind: 'visitor', visitorId: 'vis-1' }, both, { chatId });
    const laptop = await cast.open('visitor laptop', { kind: 'visitor', visitorId: 'vis-1' }, both, { chatId });
    const agent = await cast.open('agent', { kind: 'agent', agentId: 'agent-7' }, both, { chatId });

    // On A: four visitor messages from the two devices, an answer; everyone holds it all.
    await phone.send('v1');
    await phone.send('v2');
    await laptop.sync();
    await laptop.send('v3');
    await laptop.send('v4');
    await agent.sync();
    await agent.send('a1');
    await phone.sync();
    await laptop.sync();

    // A gives X visitor offset 5; the agent receives it; the laptop never sees it.
    expect((await phone.send('X')).dataOffset).to.equal(5);
    await agent.sync();
    expect(agent.ids()).to.include('X');
    await a.kill();

    // The laptop reaches B first, rebuilds it with visitor offset 4 and sends Y: offset 5 again.
    await laptop.sync();
    expect(laptop.rebuilds.at(-1)).to.deep.include({ address: b.address, reason: 'missing' });
    expect((await laptop.send('Y')).dataOffset, 'B gives Y the offset X holds on A').to.equal(5);

    // The agent arrives at B holding X at 5: its offsets (5/1) equal B's, so offsets alone say "fine".
    // Offsets alone: the agent never receives Y, and B never learns X.
    await agent.sync();
    const onB = (await readServer(b.address, chatId)).messages.map((m) => m.id);
    expect({ agentReceivedY: agent.ids().includes('Y'), bLearnedX: onB.includes('X') }).to.deep.equal({ agentReceivedY: true, bLearnedX: true });
    expect(agent.rebuilds.at(-1)).to.deep.include({ address: b.address, reason: 'diverged' });

    await syncEveryone(cast.participants);
    const view = await expectInvariants(b.address, chatId, cast.participants);
    // The deterministic merge: B's Y keeps offset 5 (clients read it there), X moves to 6.
    expect(view.messages.filter((m) => m.id === 'X' || m.id === 'Y').map((m) => `${m.id}@${m.dataOffset}`)).to.have.members(['Y@5', 'X@6']);
  });

  it('(b) agent side, a bot: B gives the bot agent offset 5, which the agent\'s X holds on A; the agent still gets the bot\'s message and B still gets X', async () => {
    const { a, b, both, chatId } = await startPair('diverge-agent');
    const phone = await cast.open('visitor phone', { kind: 'visitor', visitorId: 'vis-1' }, both, { chatId });
    const laptop = await cast.open('visitor laptop', { kind: 'visitor', visitorId: 'vis-1' }, both, { chatId });
    const agent = await cast.open('agent', { kind: 'agent', agentId: 'agent-7' }, both, { chatId });

    // On A: a question and four agent-side messages; everyone holds it all.
    await phone.send('v1');
    await agent.sync();
    for (const id of ['a1', 'a2', 'a3', 'a4']) await agent.send(id);
    await phone.sync();
    await laptop.sync();

    // A gives the agent's X agent offset 5; the phone receives it; the laptop never sees it.
    expect((await agent.send('X')).dataOffset).to.equal(5);
    await phone.sync();
    expect(phone.ids()).to.include('X');
    await a.kill();

    // The laptop reaches B first and rebuilds it with agent offset 4.
    await laptop.sync();
    expect(laptop.rebuilds.at(-1)).to.deep.include({ address: b.address, reason: 'missing' });

    // A bot service that holds nothing of the chat posts on B: agent offset 5, claimed a second time.
    const bot = await cast.open('bot', { kind: 'service', serviceId: 'order-bot' }, [b.address], { chatId });
    expect((await bot.send('Z', 'Order 4711 ships today.')).dataOffset, 'B gives the bot the offset X holds on A').to.equal(5);

    // The agent and the phone arrive at B holding X at 5: offsets 1/5, equal to B's.
    // Offsets alone: neither receives the bot's message, and B never learns X.
    await agent.sync();
    await phone.sync();
    const onB = (await readServer(b.address, chatId)).messages.map((m) => m.id);
    expect({ agentReceivedZ: agent.ids().includes('Z'), phoneReceivedZ: phone.ids().includes('Z'), bLearnedX: onB.includes('X') }).to.deep.equal({
      agentReceivedZ: true,
      phoneReceivedZ: true,
      bLearnedX: true,
    });
    expect(agent.rebuilds.at(-1)).to.deep.include({ address: b.address, reason: 'diverged' });

    await syncEveryone(cast.participants);
    const view = await expectInvariants(b.address, chatId, cast.participants);
    expect(view.messages.filter((m) => m.id === 'X' || m.id === 'Z').map((m) => `${m.id}@${m.dataOffset}`)).to.have.members(['Z@5', 'X@6']);
  });
});
