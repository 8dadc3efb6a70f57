import { once } from 'node:events';
import { expect } from 'chai';
import { ChatSdkError, type ChatMessage, type ChatSession } from '../../src/client/index.js';
import { heldIds } from '../scenarios/invariants.js';
import { RestartableServer } from '../scenarios/restartable.js';
import { collectGarbageEvery } from '../support/gc.js';
import { sessionHarness } from '../support/sessions.js';
import { describeSettlement, settleWithin } from '../support/settle.js';

/** How soon after its signal fires (at 500 ms) an operation must have given up. */
const PROMPTLY_MS = 2_000;
/** How long a queued send may take to land once a server is back (a restart, a rebuild, backoff). */
const RECOVERY_MS = 10_000;

/**
 * An AbortSignal stops the caller's waiting (README, "Errors"): `sync({ signal })` and
 * `send(content, { signal })` reject with `ChatSdkError` `aborted` when it fires, even while
 * the session cannot reach any server and has sends queued, and with garbage collected while
 * they wait (an inline `AbortSignal.timeout()` nobody keeps), and the queued sends still land
 * once a server is back ("the message stays queued").
 */
describe('ChatSession cancellation while every server is down', function () {
  this.timeout(30_000);
  const harness = sessionHarness();
  const servers: RestartableServer[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.dispose()));
  });

  /** A session that has talked to its one server, which is then killed. */
  async function downAfterTalking(chatId: string): Promise<{ server: RestartableServer; session: ChatSession }> {
    const server = await RestartableServer.start('S');
    servers.push(server);
    const session = await harness.open({ chatId, role: { kind: 'visitor', visitorId: 'vis-1' }, servers: [server.address], callTimeoutMs: 1_000 });
    await session.send('before the outage', { id: 'm-1' });
    await server.kill();
    return { server, session };
  }

  /** Resolves at the session's next retry of a failed call: a send is being tried against the dead server. */
  async function retrying(session: ChatSession): Promise<void> {
    const retried = await settleWithin(once(session, 'retry'), RECOVERY_MS);
    expect(retried.state, `a retry of the queued send: ${describeSettlement(retried)}`).to.equal('resolved');
  }

  function expectAborted(what: string, settlement: Awaited<ReturnType<typeof settleWithin>>): void {
    expect(settlement.state, `${what}: ${describeSettlement(settlement)}`).to.equal('rejected');
    const { error } = settlement as { error: unknown };
    expect(error, `${what}: ${describeSettlement(settlement)}`).to.be.instanceOf(ChatSdkError);
    expect((error as ChatSdkError).kind, `${what}: ${describeSettlement(settlement)}`).to.equal('aborted');
  }

  it('sync({ signal }) rejects with aborted when the signal fires, and the send queued before it still lands', async () => {
    const { server, session } = await downAfterTalking('cancel-sync');
    const queued = session.send('queued while every server is down', { id: 'm-2' }); // not awaited: it cannot land yet
    queued.catch(() => undefined); // settled and checked below; a failing test's cleanup may reject it first
    await retrying(session); // the send is under way (and failing), as it is when a user asks to refresh

    const stopCollecting = collectGarbageEvery(50); // nobody keeps the signal: it must fire all the same
    const synced = await settleWithin(session.sync({ signal: AbortSignal.timeout(500) }), PROMPTLY_MS).finally(stopCollecting);
    expectAborted('sync({ signal: AbortSignal.timeout(500) })', synced);

    await server.restart();
    const landed = await settleWithin(queued, RECOVERY_MS);
    expect(landed.state, `the queued send once the server is back: ${describeSettlement(landed)}`).to.equal('resolved');
    expect((landed as { value: { id: string; dataOffset: number } }).value).to.include({ id: 'm-2', dataOffset: 2 });
    expect(session.pending).to.deep.equal([]);
    expect([...(await heldIds(server.address, 'cancel-sync'))].sort()).to.deep.equal(['m-1', 'm-2']);
  });

  it('send(content, { signal }) rejects with aborted when the signal fires, behind a queued send too, and both messages still land in order', async () => {
    const { server, session } = await downAfterTalking('cancel-send');
    const first = settleWithin(session.send('first while down', { id: 'm-2', signal: AbortSignal.timeout(500) }), PROMPTLY_MS);
    await retrying(session); // the first send is under way (and failing) when the second is made
    const second = settleWithin(session.send('second while down', { id: 'm-3', signal: AbortSignal.timeout(500) }), PROMPTLY_MS);
    const stopCollecting = collectGarbageEvery(50); // nobody keeps the signals: they must fire all the same
    const [firstSettled, secondSettled] = await Promise.all([first, second]).finally(stopCollecting);
    expectAborted('the first send while down', firstSettled);
    expectAborted('the second send while down, queued behind the first', secondSettled);

    // Aborting stopped the waiting, not the sends: both land, in the order they were sent.
    await server.restart();
    const deadline = Date.now() + RECOVERY_MS;
    while (session.pending.length > 0 || session.messages.length < 3) {
      expect(Date.now(), `sends still pending ${RECOVERY_MS} ms after the restart: ${session.pending.map((m) => m.id).join(', ')}`).to.be.below(deadline);
      await session.sync({ signal: AbortSignal.timeout(RECOVERY_MS) }).catch(() => undefined);
    }
    expect(session.messages.map((m) => `${m.id}@${m.dataOffset}`)).to.deep.equal(['m-1@1', 'm-2@2', 'm-3@3']);
    expect([...(await heldIds(server.address, 'cancel-send'))].sort()).to.deep.equal(['m-1', 'm-2', 'm-3']);
  });
});

/**
 * `updates({ signal })` ends when the signal fires (README: "an async iterator that ends when
 * `signal` aborts"), however the app made the signal and whatever the garbage collector does:
 * an `AbortSignal.timeout()` the app does not keep a reference to must still fire.
 */
describe('ChatSession.updates({ signal }) under garbage collection', function () {
  this.timeout(30_000);
  const harness = sessionHarness();
  /** How long an iterator whose signal fires at 300 ms may take to end. */
  const ENDS_WITHIN_MS = 5_000;

  for (const receive of ['watch', 'poll'] as const) {
    it(`ends by itself when nothing arrives and its AbortSignal.timeout(300) fires, with garbage collected every 50 ms (receive: '${receive}')`, async () => {
      const server = await harness.server();
      const session = await harness.open({ chatId: `quiet-${receive}`, role: { kind: 'agent', agentId: 'agent-7' }, servers: [server.address], receive, pollIntervalMs: 50 });
      const stopCollecting = collectGarbageEvery(50);
      try {
        const received: ChatMessage[] = [];
        const updates = session.updates({ signal: AbortSignal.timeout(300) }); // as the README's agent example does: nobody keeps the signal
        session.start();
        const ended = await settleWithin((async () => {
          for await (const message of updates) received.push(message);
        })(), ENDS_WITHIN_MS);
        expect(ended.state, `the updates() iterator: ${describeSettlement(ended)}`).to.equal('resolved');
        expect(received.map((m) => m.id)).to.deep.equal([]);
      } finally {
        stopCollecting();
      }
    });
  }
});
