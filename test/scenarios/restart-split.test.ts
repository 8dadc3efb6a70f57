import { setTimeout as pause } from 'node:timers/promises';
import { expect } from 'chai';
import { checkThen, expectInvariants, holderOf, line, type Participant, serversHolding, stage, waitForArrivals } from './invariants.js';
import { RestartableServer } from './restartable.js';
import { placement } from '../../src/client/placement.js';

/** How long a message may take to be pushed to the other participant (slow, shared machines). */
const PUSH_MS = 10_000;
/**
 * People take a while to write: each participant spends this long on a message before sending
 * it, so the conversation after the restart lasts seconds, as a real one does. This paces the
 * workload and synchronises nothing: no step waits on it for a state, and the test passes on
 * a correct implementation at any pace.
 */
const TYPING_MS = 250;

/**
 * Reported: a visitor and an agent watch one chat with the same list of two servers. The
 * server they are on dies, both move to the other and talk on; the dead one comes back, empty,
 * on its address. Before placement and re-homing, the visitor's calls went back to it (the
 * list's first address) while the agent stayed on its watch of the other one, and nothing
 * either sent reached the other any more (20 of 20 messages missing, 5 runs of 5).
 *
 * The test finds the server holding the chat by reading the servers, kills and restarts that
 * one, and at the end requires one server holding everything: the chat's home by placement,
 * which both participants must be back on, hearing each other by push.
 */
describe('a restarted server splits a chat', function () {
  this.timeout(90_000);
  const { cast, servers } = stage();

  /** `from` sends `id` (awaiting the acknowledgement) and it reaches `to` by push alone. */
  async function talk(from: Participant, to: Participant, id: string): Promise<void> {
    await from.send(id);
    await waitForArrivals(`${from.name}'s ${id} pushed to ${to.name}`, [{ to, ids: [id] }], PUSH_MS);
  }

  it('keeps a watching visitor and agent of a shared server list hearing each other by push after the server holding their chat dies and comes back empty', async () => {
    const chatId = 'restart-split';
    servers.push(...(await Promise.all(['A', 'B'].map((name) => RestartableServer.start(name)))));
    const list = servers.map((s) => s.address); // the same list, in the same order, for both
    const visitor = await cast.open('visitor', { kind: 'visitor', visitorId: 'vis-1' }, list, { chatId });
    const agent = await cast.open('agent', { kind: 'agent', agentId: 'agent-7' }, list, { chatId });
    visitor.session.start();
    agent.session.start();

    await talk(visitor, agent, 'v-1');
    await talk(agent, visitor, 'a-1');
    const home = await holderOf(servers, chatId, ['v-1', 'a-1']);
    const other = servers.find((s) => s !== home)!;

    // The chat's server dies: both move to the other one and keep talking.
    await home.kill();
    await talk(visitor, agent, 'v-2');
    await talk(agent, visitor, 'a-2');
    expect((await holderOf(servers, chatId, ['v-1', 'a-1', 'v-2', 'a-2'])).name, 'the server that took the chat over').to.equal(other.name);

    // It comes back, empty, on its address. Nothing fails from here on.
    await home.restart();
    const visitorIds: string[] = [];
    const agentIds: string[] = [];
    for (let i = 1; i <= 10; i += 1) {
      await pause(TYPING_MS);
      visitorIds.push(`v-after-${i}`);
      await visitor.send(`v-after-${i}`);
      await pause(TYPING_MS);
      agentIds.push(`a-after-${i}`);
      await agent.send(`a-after-${i}`);
    }
    // Events only, no sync(): the watches must carry everything across. Then (after a failure
    // here too, so a report says whether syncing would have mended it) the copies must match.
    await checkThen(
      () => waitForArrivals('messages sent after the restart, pushed to the other participant', [{ to: agent, ids: visitorIds }, { to: visitor, ids: agentIds }], PUSH_MS),
      async () => {
        const copy = (p: Participant) => p.session.messages.map(line);
        const lacks = (p: Participant, q: Participant) => q.ids().filter((id) => !p.ids().includes(id));
        const differ = `the visitor lacks [${lacks(visitor, agent).join(', ')}], the agent lacks [${lacks(agent, visitor).join(', ')}]`;
        expect(copy(agent), `the agent's copy against the visitor's, in order (without syncing: ${differ})`).to.deep.equal(copy(visitor));
        const everything = [...visitor.sent, ...agent.sent];
        expect(copy(visitor).length, 'messages in the copies').to.equal(everything.length);
        const { holders, described } = await serversHolding(servers, chatId, everything);
        expect(holders.length, `servers holding all ${everything.length} messages (${described})`).to.be.greaterThan(0);
        expect(holders.map((s) => s.address), 'the chat is back on its home').to.include(placement(chatId, list)[0]);
        expect(home.address, 'the server that died and came back is the home').to.equal(placement(chatId, list)[0]);
        await expectInvariants(placement(chatId, list)[0]!, chatId, cast.participants);
      },
    );
  });
});
