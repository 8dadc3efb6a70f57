import { expect } from 'chai';
import { type Haproxy, startHaproxy } from '../support/haproxy.js';
import { Cast, expectInvariants, type Participant, readServer, syncEveryone, waitFor } from './invariants.js';
import { RestartableServer } from './restartable.js';

const CHAT = 'failback';

describe('scenario 13: failback behind a real load balancer (haproxy, balance first)', function () {
  this.timeout(40_000);
  const cast = new Cast();
  const servers: RestartableServer[] = [];
  let balancer: Haproxy | undefined;
  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && balancer) console.log(`haproxy's log:\n${balancer.logs.join('\n')}`);
    await cast.closeAll();
    await balancer?.stop();
    balancer = undefined;
    await Promise.all(servers.splice(0).map((s) => s.dispose()));
  });

  it('moves the chat to B, back to the restarted (empty) A, then to B again, where a bot posts on the stale copy first; everyone converges', async () => {
    const [a, b] = await Promise.all([RestartableServer.start('A'), RestartableServer.start('B')]);
    servers.push(a, b);
    const lb = (balancer = await startHaproxy([a.address, b.address]));
    /** Waits until haproxy's health check has seen server `s` (s0 = A) change to `state`. */
    const balancerSees = async (server: 's0' | 's1', state: 'UP' | 'DOWN', since: number) =>
      waitFor(`haproxy to find ${server} ${state}`, () => lb.logs.slice(since).some((entry) => entry.includes(`Server chat/${server} is ${state}`)), 10_000);

    const visitor = await cast.open('visitor', { kind: 'visitor', visitorId: 'vis-1' }, [lb.address], { chatId: CHAT });
    const agent = await cast.open('agent', { kind: 'agent', agentId: 'agent-7' }, [lb.address], { chatId: CHAT });
    const converse = async (phase: string) => {
      for (const n of [1, 2]) {
        await visitor.send(`${phase}-v${n}`);
        await agent.sync();
        await agent.send(`${phase}-a${n}`);
        await visitor.sync();
      }
    };
    const idsOn = async (server: RestartableServer) => (await readServer(server.address, CHAT)).messages.map((m) => m.id);
    const lastRebuild = (p: Participant) => p.rebuilds.at(-1);

    // 1. A, the first server up, is the chat's home.
    await converse('p1');
    expect(await idsOn(a)).to.include.members(['p1-v1', 'p1-a2']);

    // 2. A dies: the balancer moves the chat to B, which the sessions rebuild.
    let mark = lb.logs.length;
    await a.kill();
    await balancerSees('s0', 'DOWN', mark);
    await converse('p2');
    expect(lastRebuild(visitor)).to.deep.include({ address: lb.address, reason: 'missing' });
    expect(await idsOn(b)).to.include.members(['p1-v1', 'p2-a2']);

    // 3. A returns, empty, on its port: the balancer prefers it again; the sessions rebuild it.
    mark = lb.logs.length;
    await a.restart();
    await balancerSees('s0', 'UP', mark);
    const rebuildsBefore = visitor.rebuilds.length + agent.rebuilds.length;
    await converse('p3');
    expect(visitor.rebuilds.length + agent.rebuilds.length, 'the empty A was rebuilt').to.be.greaterThan(rebuildsBefore);
    expect(await idsOn(a)).to.include.members(['p1-v1', 'p2-a2', 'p3-v1', 'p3-a2']);
    const stale = await readServer(b.address, CHAT);
    expect(stale.messages.map((m) => m.id), "B's stale copy").to.not.include('p3-v1');

    // 4. A dies again: the chat lands on B, stale. A bot that holds nothing of the chat posts
    //    there before anyone else arrives: it takes the agent offset A gave p3-a1.
    mark = lb.logs.length;
    await a.kill();
    await balancerSees('s0', 'DOWN', mark);
    const bot = await cast.open('bot', { kind: 'service', serviceId: 'order-bot' }, [lb.address], { chatId: CHAT });
    const posted = await bot.send('z', 'Your order ships today.');
    expect(posted.dataOffset, 'the bot extends B\'s stale agent side').to.equal(stale.offsets.agent + 1);
    expect(agent.session.messages.find((m) => m.id === 'p3-a1')?.dataOffset, 'an agent offset claimed twice').to.equal(posted.dataOffset);

    // 5. Everyone syncs (on B); invariants 1-5 hold.
    await syncEveryone(cast.participants);
    await expectInvariants(b.address, CHAT, cast.participants);
  });
});
