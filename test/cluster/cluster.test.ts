import { expect } from 'chai';
import { type Haproxy, startDeployedHaproxy } from '../support/haproxy.js';
import { Cast, expectInvariants, type Participant, syncEveryone, waitForArrivals } from '../scenarios/invariants.js';
import { RestartableServer } from '../scenarios/restartable.js';

/** Conversations through the one front address: each a visitor and an agent, both watching. */
const CONVERSATIONS = Number(process.env.CLUSTER_CONVERSATIONS ?? 50);
/** How long every conversation has, after an event, to be talking again by push alone. */
const RECOVERY_MS = 60_000;

/**
 * The servers as deploy/ runs them (the x-chat-id check on), with a short watch lifetime: a
 * watch left on a chat's old server after its home came back ends within it and comes back
 * through the hash (the deployment uses the 5 min default).
 */
const SERVER_ENV = { REQUIRE_CHAT_ID_HEADER: 'true', WATCH_MAX_AGE_MS: '3000', DRAIN_MS: '0' };

/**
 * deploy/haproxy.cfg with quicker checks and slow start, so each event settles in seconds. A check
 * still gets 1 s to answer and 3 tries: on a loaded CI machine a check slower
 * than 300 ms took a healthy server out during the first round.
 */
const HAPROXY_SETTINGS = {
  HAPROXY_CHECK_INTER: '100ms',
  HAPROXY_CHECK_FALL: '3',
  HAPROXY_CHECK_RISE: '1',
  HAPROXY_SLOWSTART: '1s',
  HAPROXY_TIMEOUT_CHECK: '1s',
  HAPROXY_TIMEOUT_CONNECT: '200ms',
};

interface Conversation {
  readonly chatId: string;
  readonly visitor: Participant;
  readonly agent: Participant;
}

/** The server haproxy sent each chat's calls to, from its request log (`chat/chat-a ... {chat id}`). */
function homesOf(haproxy: Haproxy, since = 0): Map<string, string> {
  const homes = new Map<string, string>();
  for (const entry of haproxy.logs.slice(since)) {
    const match = / chat\/(chat-[abc]) .* \{([^}]*)\} /.exec(entry);
    if (match?.[2]) homes.set(match[2], match[1]!); // a health check names no chat
  }
  return homes;
}

describe('a cluster: three servers behind haproxy running deploy/haproxy.cfg', function () {
  this.timeout(300_000);
  const cast = new Cast();
  const servers: RestartableServer[] = [];
  let haproxy: Haproxy | undefined;
  afterEach(async () => {
    await cast.closeAll();
    await haproxy?.stop();
    await Promise.all(servers.splice(0).map((s) => s.dispose()));
  });

  it(`keeps ${CONVERSATIONS} conversations going by push through a kill, a restart, a freeze and a thaw, and every chat keeps invariants 1-6`, async () => {
    servers.push(...(await Promise.all(['chat-a', 'chat-b', 'chat-c'].map((name) => RestartableServer.start(name, SERVER_ENV)))));
    haproxy = await startDeployedHaproxy([servers[0]!.address, servers[1]!.address, servers[2]!.address], HAPROXY_SETTINGS);
    const front = [haproxy.address];
    const conversations: Conversation[] = [];
    for (let i = 0; i < CONVERSATIONS; i += 1) {
      const chatId = `cluster-${i}`;
      const options = { chatId, callTimeoutMs: 2_000 };
      const visitor = await cast.open(`visitor-${i}`, { kind: 'visitor', visitorId: `v${i}` }, front, options);
      const agent = await cast.open(`agent-${i}`, { kind: 'agent', agentId: `a${i}` }, front, options);
      visitor.session.start();
      agent.session.start();
      conversations.push({ chatId, visitor, agent });
    }

    /** Each conversation says one thing each way; both must arrive by the receivers alone. */
    const talk = async (label: string) => {
      const expected = conversations.flatMap(({ visitor, agent }, i) => {
        const v = `${label}-v${i}`;
        const a = `${label}-a${i}`;
        void visitor.send(v);
        void agent.send(a);
        return [
          { to: agent, ids: [v] },
          { to: visitor, ids: [a] },
        ];
      });
      await waitForArrivals(`after ${label}, every conversation by push`, expected, RECOVERY_MS);
    };

    await talk('start');
    const start = homesOf(haproxy);
    expect(start.size, 'chats seen in the balancer log').to.equal(CONVERSATIONS);
    const perServer = (homes: Map<string, string>) =>
      Object.fromEntries(['chat-a', 'chat-b', 'chat-c'].map((name) => [name, [...homes.values()].filter((h) => h === name).length]));
    const spread = perServer(start);
    const healthChanges = () => haproxy!.logs.filter((l) => / is (UP|DOWN)/.test(l) && !l.startsWith('['));
    expect(Object.values(spread).every((n) => n > 0), `chats on every server: ${JSON.stringify(spread)}; health changes: ${healthChanges().join(' | ') || 'none'}`).to.equal(true);

    /** Talks until haproxy is routing every chat `server` held at the start back to it. */
    const untilHomesReturn = async (server: string, label: string) => {
      await haproxy!.waitForLog(`Server chat/${server} is UP`);
      const since = haproxy!.logs.length;
      const returned = () => [...homesOf(haproxy!, since)].filter(([chatId, home]) => home === server && start.get(chatId) === server).length;
      for (let round = 1; returned() < (spread[server] ?? 0); round += 1) {
        if (round > 40) expect.fail(`${server}'s chats did not all come back after the ${label}: ${returned()} of ${spread[server]}`);
        await talk(`${label}-${round}`);
      }
    };

    // The server with the most chats dies (SIGKILL): its chats move to the other two.
    const busiest = servers.reduce((a, b) => ((spread[b.name] ?? 0) > (spread[a.name] ?? 0) ? b : a));
    const beforeKill = haproxy.logs.length;
    await busiest.kill();
    await talk('kill');
    const afterKill = homesOf(haproxy, beforeKill);
    expect([...afterKill.values()], `no call served by the dead ${busiest.name}`).not.to.include(busiest.name);
    for (const [chatId, home] of start) {
      if (home !== busiest.name) expect(afterKill.get(chatId), `${chatId} stays on ${home} (consistent hashing)`).to.equal(home);
    }

    // It comes back, empty: once a check finds it up, its chats return to it over the slow
    // start, each rebuilt there from the copies. Every round of talk must still arrive by push.
    await busiest.restart();
    await untilHomesReturn(busiest.name, 'restart');

    // Another server hangs (SIGSTOP) with its chats and connections: the talk starts at once,
    // so some calls and every watch of its chats are stuck on it until a check marks it down
    // (on-marked-down shutdown-sessions closes them) and they go on elsewhere.
    const frozen = servers.find((s) => s !== busiest)!;
    const beforeFreeze = haproxy.logs.length;
    frozen.freeze();
    await talk('freeze');
    expect(haproxy.logs.slice(beforeFreeze).some((l) => l.includes(`Server chat/${frozen.name} is DOWN`)), `${frozen.name} marked down`).to.equal(true);
    // It resumes (SIGCONT) holding its chats as they were before the freeze: they come back to
    // it, and the copies, further on, bring it up to date (another incarnation's history).
    frozen.thaw();
    await untilHomesReturn(frozen.name, 'thaw');

    for (const { chatId, visitor, agent } of conversations) {
      await syncEveryone([visitor, agent]);
      await expectInvariants(front[0]!, chatId, [visitor, agent]);
    }
  });
});
