import { expect } from 'chai';
import type { ChatSession, RetryEvent, Role } from '../../src/client/index.js';
import { chatApi } from '../support/chat-api.js';
import { ManualClock } from '../support/manual-clock.js';
import { chatIdPlaced } from '../support/placement.js';
import { seeded } from '../support/random.js';
import { sessionHarness } from '../support/sessions.js';

/** A server whose upload budget is tiny: 4 KiB a second, in requests of at most 4 KiB. */
const TIGHT = { maxContentBytes: 1000, maxRequestBytes: 4096, rebuildBytesPerSecond: 4096 } as const;
const TEXT = 'z'.repeat(900);
const transcript = (messages: readonly { id: string; dataOffset: number }[]) => messages.map((m) => `${m.id}@${m.dataOffset}`);

describe('ChatSession failing over onto a server that paces uploads', () => {
  const harness = sessionHarness();

  /** A chat's home, and the server it fails over to, whose budget is tiny and paced by `clock`. */
  const servers = async (clock: ManualClock) => {
    const home = await harness.server();
    const tight = await harness.server(TIGHT, { clock });
    return { home, tight, addresses: [home.address, tight.address] };
  };

  it('uploads its copy in several parts, each it is refused retried at the same address after the pushback, and converges', async () => {
    const clock = new ManualClock();
    const { home, tight, addresses } = await servers(clock);
    const chatId = chatIdPlaced('paced', addresses);
    const visitor = await harness.open({ chatId, role: { kind: 'visitor' }, servers: addresses, maxUploadBytes: TIGHT.maxRequestBytes, sleep: clock.sleep, random: seeded(7) });
    for (let i = 0; i < 40; i += 1) await visitor.send(TEXT, { id: `v${i}` });
    expect(visitor.server).to.equal(home.address);

    const retries: RetryEvent[] = [];
    visitor.on('retry', (event) => retries.push(event));
    const rebuilt = new Promise((resolve) => visitor.once('rebuild', resolve));
    await home.close();
    await visitor.sync();

    expect(await rebuilt).to.deep.include({ address: tight.address, reason: 'missing', uploaded: 40 });
    const pushedBack = retries.filter((event) => event.pushbackMs !== undefined);
    expect(pushedBack.length, 'the budget refused some parts').to.be.at.least(5);
    expect(pushedBack.length).to.equal(tight.server.rebuildUploads.refused);
    for (const event of pushedBack) {
      expect(event.address).to.equal(tight.address);
      expect(event.error.metadata.get('grpc-retry-pushback-ms')).to.deep.equal([String(event.pushbackMs)]);
      expect(event.delayMs).to.be.at.least(event.pushbackMs!).and.below(event.pushbackMs! + 2_000);
    }
    expect(visitor.server, 'it stayed where the pushbacks came from').to.equal(tight.address);
    const view = await chatApi(tight.client).getNewMessage({ chatId, visitorOffset: 0, agentOffset: 0 });
    expect(view.messages.map((m) => m.id)).to.deep.equal(Array.from({ length: 40 }, (_, i) => `v${i}`));
    expect(transcript(visitor.messages)).to.deep.equal(transcript(view.messages));
  });

  it('many sessions rebuilding at once against one budget all converge, with nothing lost or doubled', async function () {
    this.timeout(60_000);
    const clock = new ManualClock();
    const { home, tight, addresses } = await servers(clock);
    const roles: Role[] = [{ kind: 'visitor' }, { kind: 'agent', agentId: 'agent-1' }];
    const chats = Array.from({ length: 6 }, (_, i) => chatIdPlaced(`crowd-${i}`, addresses));
    const sessions: { chatId: string; session: ChatSession }[] = [];
    for (const [c, chatId] of chats.entries()) {
      for (const [r, role] of roles.entries()) {
        const random = seeded(100 * c + r + 1);
        const session = await harness.open({ chatId, role, servers: addresses, maxUploadBytes: TIGHT.maxRequestBytes, sleep: clock.sleep, random });
        sessions.push({ chatId, session });
      }
    }
    // Each participant says 8 things on the home, and everyone reads everything.
    for (let i = 0; i < 8; i += 1) {
      await Promise.all(sessions.map(({ session }, s) => session.send(TEXT, { id: `s${s}-m${i}` })));
    }
    await Promise.all(sessions.map(({ session }) => session.sync()));

    await home.close();
    let pushbacks = 0;
    for (const { session } of sessions) session.on('retry', (event) => (pushbacks += event.pushbackMs === undefined ? 0 : 1));
    await Promise.all(sessions.map(({ session }) => session.sync()));
    await Promise.all(sessions.map(({ session }) => session.sync())); // the first ones back read what the later ones brought

    expect(pushbacks, 'the budget paced them').to.be.above(0);
    expect(pushbacks).to.equal(tight.server.rebuildUploads.refused);
    for (const [c, chatId] of chats.entries()) {
      const view = await chatApi(tight.client).getNewMessage({ chatId, visitorOffset: 0, agentOffset: 0 });
      const sent = [2 * c, 2 * c + 1].flatMap((s) => Array.from({ length: 8 }, (_, i) => `s${s}-m${i}`));
      expect([...view.messages.map((m) => m.id)].sort(), chatId).to.deep.equal(sent.sort());
      for (const { session } of sessions.filter((s) => s.chatId === chatId)) {
        expect(session.server).to.equal(tight.address);
        expect(transcript(session.messages), chatId).to.deep.equal(transcript(view.messages));
      }
    }
  });
});
