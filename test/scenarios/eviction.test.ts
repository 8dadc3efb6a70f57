import { expect } from 'chai';
import { expectInvariants, waitFor, stage } from './invariants.js';
import { RestartableServer } from './restartable.js';

/** Short enough for a test to wait out, long enough that a conversation step never spans it. */
const IDLE_CHAT_TTL_MS = 400;
const EVICTED = 'evicted idle chats';

describe('scenario 6: a server evicts an idle chat', function () {
  this.timeout(20_000);
  const { cast, servers } = stage();

  it('drops the idle chat to free memory; the next client call rebuilds it; nothing is lost', async () => {
    const chatId = 'idle';
    const server = await RestartableServer.start('A', { IDLE_CHAT_TTL_MS: String(IDLE_CHAT_TTL_MS) });
    servers.push(server);
    const evictions = () => server.allLogs().filter((entry) => entry.msg === EVICTED).length;
    const visitor = await cast.open('visitor', { kind: 'visitor', visitorId: 'vis-1' }, [server.address], { chatId });
    const agent = await cast.open('agent', { kind: 'agent', agentId: 'agent-7' }, [server.address], { chatId });
    for (let i = 1; i <= 3; i += 1) {
      await visitor.send(`v${i}`);
      await agent.sync();
      await agent.send(`a${i}`);
      await visitor.sync();
    }
    await visitor.send('v-last'); // acknowledged, but the agent has not read it when the chat goes

    // Nobody polls: the chat goes idle, and the server's sweeper drops it.
    const before = evictions();
    await waitFor(`the server to log "${EVICTED}"`, () => evictions() > before, 10_000);

    // The agent's next call finds the chat missing and rebuilds it (without v-last, which it
    // never read); the visitor's next call brings v-last back.
    const answer = await agent.send('a-after');
    expect(agent.rebuilds.at(-1)).to.deep.include({ reason: 'missing', serverBefore: { visitor: -1, agent: -1 } });
    expect(answer.dataOffset, 'the agent side goes on after the rebuilt a1..a3').to.equal(4);
    await visitor.sync();
    expect(visitor.rebuilds.length, 'the visitor uploaded its copy').to.be.greaterThan(0);

    await agent.sync();
    expect(agent.ids()).to.include('v-last');
    await expectInvariants(server.address, chatId, cast.participants);
  });
});
