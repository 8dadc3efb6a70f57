import { once } from 'node:events';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { expect } from 'chai';
import { Cast, expectInvariants, type Participant, syncEveryone, waitFor } from './invariants.js';
import { RestartableServer } from './restartable.js';
import { chatIdPlaced } from '../support/placement.js';

/**
 * A TCP relay between one client and a server that can stop passing the server's bytes back:
 * the client's requests still arrive and are processed, but their answers are lost on the way,
 * as when a server stores a message and dies before its answer leaves the machine.
 */
class LossyLink {
  private readonly pairs: { client: Socket; upstream: Socket }[] = [];
  private holding = false;

  private constructor(
    private readonly server: Server,
    readonly address: string,
  ) {}

  static async start(target: { port: number }): Promise<LossyLink> {
    let link: LossyLink | undefined;
    const server = createServer((client) => {
      const upstream = createConnection({ host: '127.0.0.1', port: target.port });
      link!.pairs.push({ client, upstream });
      client.on('data', (chunk) => upstream.write(chunk));
      // While holding, answers are dropped (never delivered late), and the client's connection
      // stays open, so the client keeps waiting for them until the link is cut.
      upstream.on('data', (chunk) => link!.holding || client.write(chunk));
      upstream.on('close', () => link!.holding || client.destroy());
      client.on('close', () => upstream.destroy());
      for (const socket of [client, upstream]) socket.on('error', () => undefined); // a reset is the point here
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as { port: number };
    link = new LossyLink(server, `127.0.0.1:${port}`);
    return link;
  }

  /** From now on the server's answers are lost. */
  dropAnswers(): void {
    this.holding = true;
  }

  /** Drops every connection: the client sees its call fail (UNAVAILABLE) and retries. */
  cut(): void {
    for (const { client, upstream } of this.pairs.splice(0)) {
      client.destroy();
      upstream.destroy();
    }
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

describe('failover scenarios against real server processes', function () {
  this.timeout(30_000);
  const cast = new Cast();
  const servers: RestartableServer[] = [];
  const links: LossyLink[] = [];
  /** Tasks a failed test may leave running: awaited before the servers go, so none restarts one. */
  const background: Promise<unknown>[] = [];
  /** Aborted when the test ends, so that its background tasks stop waiting. */
  let ended = new AbortController();
  beforeEach(() => {
    ended = new AbortController();
  });
  afterEach(async () => {
    ended.abort();
    await cast.closeAll(); // pending sends reject, so a conversation left running ends
    await Promise.allSettled(background.splice(0));
    await Promise.all(links.splice(0).map((l) => l.close()));
    await Promise.all(servers.splice(0).map((s) => s.dispose()));
  });

  const startPair = async () => {
    const [a, b] = await Promise.all([RestartableServer.start('A'), RestartableServer.start('B')]);
    servers.push(a, b);
    return { a, b };
  };

  /**
   * Scenario 4. Honest loss of an acknowledgement: the visitor reaches A through a relay that,
   * once told to, stops passing A's answers back. A receives the send, stores the message and
   * answers; the answer is dropped (the agent, reading A directly, proves the message is
   * stored). Then A is SIGKILLed and the visitor's connection cut: its call fails without an
   * answer, exactly as if A had died between storing and answering, and the SDK resends the
   * same id, now on B.
   */
  const lostAcknowledgement = async (prefix: string, order: 'sender retries first' | 'receiver rebuilds first') => {
    const { a, b } = await startPair();
    const link = await LossyLink.start(a);
    links.push(link);
    // A is the chat's home for both: the visitor, through the relay, and the agent, directly.
    const chatId = chatIdPlaced(prefix, [link.address, b.address], [a.address, b.address]);
    // A generous call deadline: the lost answer must end by the cut, not by a timeout.
    const visitor = await cast.open('visitor', { kind: 'visitor', visitorId: 'vis-1' }, [link.address, b.address], { chatId, callTimeoutMs: 20_000 });
    const agent = await cast.open('agent', { kind: 'agent', agentId: 'agent-7' }, [a.address, b.address], { chatId });
    await visitor.send('v1');
    await agent.sync();
    await agent.send('a1');
    await visitor.sync();

    link.dropAnswers();
    const sent = visitor.send('x', 'did you get this?');
    await waitFor('A to store x (the agent reads it there)', async () => (await agent.sync()).some((m) => m.id === 'x'));
    expect(visitor.acknowledged.has('x'), 'the visitor got no answer').to.equal(false);
    const fromA = agent.session.messages.find((m) => m.id === 'x')!;
    await a.kill();

    if (order === 'receiver rebuilds first') {
      await agent.sync(); // the agent fails over to B and rebuilds it, x included
      expect(agent.rebuilds.at(-1)).to.deep.include({ address: b.address, reason: 'missing' });
    }
    link.cut();
    const stored = await sent;
    expect(stored.id).to.equal('x');
    expect(visitor.retries.some((r) => r.address === link.address), 'the visitor retried after losing the answer').to.equal(true);
    if (order === 'receiver rebuilds first') {
      expect(stored.sendTime, 'the retry was answered with the x the agent brought from A').to.deep.equal(fromA.sendTime);
    }
    await syncEveryone(cast.participants);
    expect(agent.rebuilds.filter((r) => r.address === b.address), 'the agent, holding x from A, rebuilt B').to.not.be.empty;
    const view = await expectInvariants(b.address, chatId, cast.participants);
    expect(view.messages.filter((m) => m.id === 'x'), 'x exists once on B').to.have.length(1);
  };

  it('4. lost acknowledgement: A stores x and dies before answering; the visitor retries x on B, then the agent, which got x from A, rebuilds B: x exists once', async () => {
    await lostAcknowledgement('lost-ack-1', 'sender retries first');
  });

  it('4. lost acknowledgement, other order: the agent rebuilds B with x first, then the visitor\'s retry of x finds it stored: x exists once', async () => {
    await lostAcknowledgement('lost-ack-2', 'receiver rebuilds first');
  });

  it('7. visitor and agent rebuild the same chat on an empty server at the same instant, each holding something the other lacks', async () => {
    const { a, b } = await startPair();
    const both = [a.address, b.address];
    // Several pairs, each chat at home on A: more interleavings of the two rebuilds.
    const chats = ['together-1', 'together-2', 'together-3'].map((prefix) => chatIdPlaced(prefix, both));
    const pairs: { chatId: string; visitor: Participant; agent: Participant }[] = [];
    for (const chatId of chats) {
      const visitor = await cast.open(`${chatId} visitor`, { kind: 'visitor', visitorId: 'vis-1' }, both, { chatId });
      const agent = await cast.open(`${chatId} agent`, { kind: 'agent', agentId: 'agent-7' }, both, { chatId });
      for (let i = 1; i <= 3; i += 1) {
        await visitor.send(`v${i}`);
        await agent.sync();
        await agent.send(`a${i}`);
        await visitor.sync();
      }
      await visitor.send('v-last'); // the agent never reads it from A
      await agent.send('a-last'); // the visitor never reads it from A
      pairs.push({ chatId, visitor, agent });
    }
    await a.kill();

    await Promise.all(pairs.flatMap(({ visitor, agent }) => [visitor.sync(), agent.sync()]));
    for (const { chatId, visitor, agent } of pairs) {
      for (const p of [visitor, agent]) expect(p.rebuilds.filter((r) => r.address === b.address), `${p.name} rebuilt B`).to.not.be.empty;
      await syncEveryone([visitor, agent]);
      await expectInvariants(b.address, chatId, [visitor, agent]);
    }
  });

  it('12. flapping: the servers die and come back on their ports again and again during a conversation', async () => {
    const chatId = 'flapping';
    const { a, b } = await startPair();
    const nodes = [a, b];
    const addresses = nodes.map((n) => n.address);
    const visitor = await cast.open('visitor', { kind: 'visitor', visitorId: 'vis-1' }, addresses, { chatId });
    const agent = await cast.open('agent', { kind: 'agent', agentId: 'agent-7' }, addresses, { chatId });
    const bot = await cast.open('bot', { kind: 'service', serviceId: 'order-bot' }, [...addresses].reverse(), { chatId });
    const FLAPS = 6;
    /** How far the conversation may run ahead of the flapping: rounds per death or return. */
    const ROUNDS_PER_EVENT = 3;
    let round = 0;
    let events = 0;

    const conversation = (async () => {
      const queued: Promise<unknown>[] = [];
      for (; round < 2 * FLAPS * ROUNDS_PER_EVENT; round += 1) {
        await waitFor('the flapping to keep up', () => ended.signal.aborted || events >= Math.floor(round / ROUNDS_PER_EVENT), 20_000, 2);
        await visitor.send(`v${round}`);
        queued.push(visitor.send(`v${round}b`)); // awaited later: it may be in flight when a server dies
        await agent.sync();
        await agent.send(`a${round}`);
        if (round % 3 === 0) await bot.send(`b${round}`);
        await visitor.sync();
      }
      await Promise.all(queued);
    })();
    // Each death and each return waits for the conversation to move on (a condition, not a
    // sleep), then happens while the next rounds run: between sends, during sends, in rebuilds.
    const flapper = (async () => {
      for (let flap = 0; flap < FLAPS && !ended.signal.aborted; flap += 1) {
        const node = nodes[flap % 2]!;
        for (const event of ['kill', 'restart'] as const) {
          const from = round;
          await waitFor(`the conversation to pass round ${from}`, () => ended.signal.aborted || round > from, 20_000, 2);
          if (ended.signal.aborted) return;
          await node[event]();
          events += 1;
        }
      }
    })();
    background.push(conversation, flapper);
    await Promise.all([conversation, flapper].map((task) => task.catch((error: unknown) => {
      ended.abort(); // the other task stops waiting too
      throw error;
    })));
    expect(events).to.equal(2 * FLAPS);

    // The chat needs one home to converge on: A stays, B goes for good (the clients move to A).
    await b.kill();
    await syncEveryone(cast.participants);
    await expectInvariants(a.address, chatId, cast.participants);
    const rebuilds = cast.participants.flatMap((p) => p.rebuilds);
    expect(rebuilds.length, 'the flaps forced rebuilds').to.be.greaterThan(FLAPS / 2);
  });
});
