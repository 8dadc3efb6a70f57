import { setTimeout as pause } from 'node:timers/promises';
import { expect } from 'chai';
import type { Role } from '../../src/client/index.js';
import { derived, seeded } from '../support/random.js';
import { describeSettlement, settleWithin } from '../support/settle.js';
import { type Arrivals, checkThen, expectInvariants, type Participant, stage, syncEveryone, waitFor, waitForArrivals } from './invariants.js';
import { placement } from '../../src/client/placement.js';
import { RestartableServer } from './restartable.js';

/**
 * Chaos: three servers SIGKILLed, frozen (SIGSTOP) and thawed (SIGCONT), and restarted on their
 * addresses at random, a failure every few hundred ms, while several chats go on. Each chat
 * has two visitor devices (one visitor), two agents, a bot and a notice service, every one
 * watching (`start()`) and given the same server list in the same order (CHAT_SERVERS, as a
 * deployment has), each sending its messages one after another (a device waits for the
 * acknowledgement before its next send) while all the others do the same. Then the failures
 * stop and every server is up again. Then:
 *
 * (a) everything sent is acknowledged within a bounded time (invariant 6);
 * (b) each participant sends one last message, and it reaches every other participant of its
 *     chat by push alone (message events; nobody has called sync() so far) within PUSH_MS;
 * (c) everyone syncs, and invariants 1-5 hold for every chat against the server found holding
 *     it (read from every server, never assumed), every copy equal to it, in order.
 *
 * The run prints its seed, and a failing run the log of its steps.
 *
 *   npx mocha test/scenarios/chaos.test.ts                      one run, a random seed
 *   CHAOS_SEED=7 npx mocha test/scenarios/chaos.test.ts         replays seed 7's choices (process timing still varies)
 *   CHAOS_RUNS=20 CHAOS_SEED=1 npx mocha test/scenarios/chaos.test.ts   seeds 1..20, one test each
 *   for i in $(seq 20); do CHAOS_SEED=$i npx mocha test/scenarios/chaos.test.ts; done   the same, a process each
 *   CHAOS_LONG=1 npx mocha test/scenarios/chaos.test.ts         more chats, messages and failures (minutes)
 */
const SEED = process.env.CHAOS_SEED ? Number(process.env.CHAOS_SEED) : Math.floor(Math.random() * 2 ** 31);
const RUNS = process.env.CHAOS_RUNS ? Number(process.env.CHAOS_RUNS) : 1;
const LONG = process.env.CHAOS_LONG === '1';
/** `writingMs`: longest a device waits (writing) before each of its sends, so that its sends spread over the failures. */
const MODE = LONG ? { chats: 6, messagesEach: 12, failures: 80, writingMs: 4_000 } : { chats: 3, messagesEach: 4, failures: 20, writingMs: 2_500 };
/** Between two failures: a few hundred ms. */
const FAILURE_GAP_MS = { min: 150, max: 500 } as const;
/** A call to a frozen server gives up after this (the SDK's default is 5 s; a run should not wait that out). */
const CALL_TIMEOUT_MS = 2_000;
/** Once all servers are up: how long every send may take to be acknowledged. */
const SETTLE_MS = 30_000;
/** How long a message may take to be pushed to every other participant (slow, shared machines). */
const PUSH_MS = 10_000;
/** How long every participant may take to be back on its chat's home (docs/protocol.md: about 3 s plus a rebuild). */
const HOME_MS = 10_000;

const PEOPLE: readonly { readonly who: string; readonly role: (chat: number) => Role }[] = [
  { who: 'visitor phone', role: (chat) => ({ kind: 'visitor', visitorId: `vis-${chat}` }) },
  { who: 'visitor laptop', role: (chat) => ({ kind: 'visitor', visitorId: `vis-${chat}` }) },
  { who: 'agent 1', role: () => ({ kind: 'agent', agentId: 'agent-1' }) },
  { who: 'agent 2', role: () => ({ kind: 'agent', agentId: 'agent-2' }) },
  { who: 'bot', role: () => ({ kind: 'service', serviceId: 'order-bot', messageType: 'bot' }) },
  { who: 'notices', role: () => ({ kind: 'service', serviceId: 'notices', messageType: 'system' }) },
];

describe(`chaos: three servers killed, frozen, thawed and restarted at random while ${MODE.chats} chats go on (seed ${SEED}${RUNS > 1 ? ` to ${SEED + RUNS - 1}` : ''})`, function () {
  let log: string[] = [];
  let seed = SEED;
  afterEach(async function () {
    if (this.currentTest?.state !== 'failed') return;
    console.log(`chaos failed with seed ${seed}: replay its choices with CHAOS_SEED=${seed}. Its steps:\n  ${log.join('\n  ')}`);
  });
  const { cast, servers } = stage();

  for (let run = 0; run < RUNS; run += 1) {
    const runSeed = SEED + run;
    it(`seed ${runSeed}: every message acknowledged, the last ones pushed to everyone, invariants 1-6 holding once all servers are up`, async function () {
      this.timeout(LONG ? 900_000 : 120_000);
      seed = runSeed;
      log = [];
      const started = Date.now();
      const note = (what: string) => log.push(`${String(Date.now() - started).padStart(6)} ms  ${what}`);
      console.log(`      chaos seed ${runSeed}`);

      servers.push(...(await Promise.all(['S1', 'S2', 'S3'].map((name) => RestartableServer.start(name)))));
      const CHAT_SERVERS = servers.map((s) => s.address);
      const nameOf = (address: string) => servers.find((s) => s.address === address)?.name ?? address;
      const chats: { readonly chatId: string; readonly people: Participant[] }[] = [];
      for (let c = 1; c <= MODE.chats; c += 1) {
        const chatId = `chaos-${runSeed}-${c}`;
        const people: Participant[] = [];
        for (const { who, role } of PEOPLE) {
          people.push(await cast.open(`c${c} ${who}`, role(c), CHAT_SERVERS, { chatId, callTimeoutMs: CALL_TIMEOUT_MS }));
        }
        for (const p of people) {
          p.session.on('connected', (address) => note(`${p.name} talks to ${nameOf(address)}`));
          p.session.on('rebuild', (e) => note(`${p.name} rebuilt ${nameOf(e.address)} (${e.reason}, uploaded ${e.uploaded})`));
          p.session.start();
        }
        chats.push({ chatId, people });
      }
      const everyone = chats.flatMap((c) => c.people);

      // Every device sends its messages in sequence, all devices at once.
      const talking = everyone.map(async (p, i) => {
        const random = derived(runSeed, i);
        for (let k = 1; k <= MODE.messagesEach; k += 1) {
          await pause(Math.floor(random() * MODE.writingMs));
          await p.send(`${p.name.replaceAll(' ', '-')}-${k}`);
        }
      });
      talking.forEach((t) => t.catch(() => undefined)); // awaited below; a failing test's cleanup may reject them first

      // Meanwhile, a failure every few hundred ms.
      const random = seeded(runSeed);
      const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
      for (let step = 1; step <= MODE.failures; step += 1) {
        await pause(FAILURE_GAP_MS.min + Math.floor(random() * (FAILURE_GAP_MS.max - FAILURE_GAP_MS.min)));
        const choices: [string, RestartableServer[]][] = [
          ['kill', servers.filter((s) => s.alive)],
          ['freeze', servers.filter((s) => s.serving)],
          ['thaw', servers.filter((s) => s.frozen)],
          ['restart', servers.filter((s) => !s.alive)],
        ];
        const [action, candidates] = pick(choices.filter(([, candidates]) => candidates.length > 0));
        const server = pick(candidates);
        note(`failure ${step}: ${action} ${server.name}`);
        if (action === 'kill') await server.kill();
        else if (action === 'freeze') server.freeze();
        else if (action === 'thaw') server.thaw();
        else await server.restart();
      }

      // Failures stop; every server is up again, on its address.
      for (const server of servers) {
        if (server.frozen) {
          note(`end: thaw ${server.name}`);
          server.thaw();
        } else if (!server.alive) {
          note(`end: restart ${server.name}`);
          await server.restart();
        }
      }
      note('all servers up');

      // (a) Every send is acknowledged.
      const settled = await settleWithin(Promise.all(talking), SETTLE_MS);
      const unacknowledged = everyone.filter((p) => p.session.pending.length > 0).map((p) => `${p.name}: ${p.session.pending.map((m) => m.id).join(', ')}`);
      expect(settled.state, `every send acknowledged within ${SETTLE_MS} ms of all servers being up: ${describeSettlement(settled)}; pending: ${unacknowledged.join('; ')}`).to.equal('resolved');
      note('every send acknowledged');

      // (b) One last message each, pushed to every other participant of its chat.
      const lastOf = new Map(everyone.map((p) => [p, `${p.name.replaceAll(' ', '-')}-last`]));
      const lastSent = await settleWithin(Promise.all(everyone.map((p) => p.send(lastOf.get(p)!))), SETTLE_MS);
      expect(lastSent.state, `the last sends acknowledged: ${describeSettlement(lastSent)}`).to.equal('resolved');
      note('every last message acknowledged');
      const arrivals: Arrivals[] = chats.flatMap(({ people }) => people.map((to) => ({ to, ids: people.filter((p) => p !== to).map((p) => lastOf.get(p)!) })));
      await checkThen(
        async () => {
          await waitForArrivals('last messages pushed to every other participant of their chat', arrivals, PUSH_MS);
          note('every last message pushed to everyone');
        },
        // (c) Every participant is back on its chat's home (by placement, within the re-homing
        // bound of docs/protocol.md); everyone syncs (after (b) failed too, so that a report says
        // whether the copies converge); each chat then holds invariants 1-5 on its home, and the
        // home holds every message acknowledged.
        async () => {
          for (const { chatId, people } of chats) {
            const home = placement(chatId, CHAT_SERVERS)[0]!;
            const away = () => people.filter((p) => p.session.server !== home).map((p) => `${p.name} on ${nameOf(p.session.server)}`);
            await waitFor(`every participant of ${chatId} back on its home ${nameOf(home)} (away: ${away().join(', ')})`, () => away().length === 0, HOME_MS);
            note(`${chatId}: everyone on its home ${nameOf(home)}`);
            await syncEveryone(people);
            await expectInvariants(home, chatId, people); // durability there included: it holds every message acknowledged
            note(`${chatId}: converged on ${nameOf(home)}`);
          }
        },
      );
    });
  }
});
