import { expect } from 'chai';
import { ChatError } from '../../src/domain/errors.js';
import { MessageType, type RebuildCause } from '../../src/domain/message.js';
import { ChatStore, type RebuildReason, rebuildReason } from '../../src/domain/store.js';
import { DOMAIN_LIMITS, held, steppingClock, submission, testStore } from '../support/domain.js';

const origin = { visitor: 0, agent: 0 };
const ids = (messages: readonly { id: string }[]) => messages.map((m) => m.id);

/** Runs `act`, expects a ChatError of `kind`, and checks the store's answers did not change. */
function expectRefused(store: ChatStore, chatId: string, kind: ChatError['kind'], act: () => unknown): ChatError {
  const before = store.rebuild({ id: chatId, visitor: undefined, beginTime: undefined, messages: [] });
  let caught: unknown;
  try {
    act();
  } catch (error) {
    caught = error;
  }
  expect(caught, 'expected a refusal').to.be.instanceOf(ChatError);
  expect((caught as ChatError).kind).to.equal(kind);
  const after = store.rebuild({ id: chatId, visitor: undefined, beginTime: undefined, messages: [] });
  expect(after.offsets).to.deep.equal(before.offsets);
  expect(after.messages).to.deep.equal(before.messages);
  return caught as ChatError;
}

describe('ChatStore', () => {
  describe('sends', () => {
    it('asks for a rebuild with -1/-1 when the chat is missing, and never creates it', () => {
      const store = testStore();
      const outcome = store.addVisitorMessage({ chatId: 'c', caller: origin, message: submission('m1') });
      expect(outcome).to.deep.equal({ rebuildRequired: true, offsets: { visitor: -1, agent: -1 }, epoch: '' });
      expect(store.size).to.equal(0);
    });

    it('gives each side its own offsets (the seed stamped visitor messages with the agent offset)', () => {
      const store = testStore();
      store.getNewMessages('c', origin);
      const a1 = store.addAgentMessage({ chatId: 'c', agentId: 'ag', caller: origin, message: submission('a1') });
      const a2 = store.addAgentMessage({ chatId: 'c', agentId: 'bot', caller: origin, message: submission('a2', MessageType.Bot) });
      const v1 = store.addVisitorMessage({ chatId: 'c', caller: origin, message: submission('v1') });
      expect(a1.rebuildRequired || a2.rebuildRequired || v1.rebuildRequired).to.equal(false);
      if (v1.rebuildRequired || a2.rebuildRequired) return;
      expect(v1.message).to.include({ dataOffset: 1, type: MessageType.Visitor });
      expect(a2.message).to.include({ dataOffset: 2, type: MessageType.Bot, senderId: 'bot' });
      expect(v1.offsets).to.deep.equal({ visitor: 1, agent: 2 });
    });

    it('asks for a rebuild, storing nothing, when the caller is ahead on either side', () => {
      const store = testStore();
      store.getNewMessages('c', origin);
      const outcome = store.addVisitorMessage({ chatId: 'c', caller: { visitor: 0, agent: 3 }, message: submission('m') });
      expect(outcome).to.deep.equal({ rebuildRequired: true, offsets: { visitor: 0, agent: 0 }, epoch: 'e1' });
      expect(store.getNewMessages('c', origin).messages).to.have.length(0);
    });

    it('answers a resend of a stored id with the stored message and creates nothing', () => {
      const store = testStore();
      store.getNewMessages('c', origin);
      const first = store.addVisitorMessage({ chatId: 'c', caller: origin, message: submission('m') });
      const again = store.addVisitorMessage({ chatId: 'c', caller: { visitor: 1, agent: 0 }, message: submission('m') });
      expect(again).to.deep.equal(first);
      expect(store.getNewMessages('c', origin).offsets).to.deep.equal({ visitor: 1, agent: 0 });
    });

    it('refuses an id reused for a different message', () => {
      const store = testStore();
      store.getNewMessages('c', origin);
      store.addVisitorMessage({ chatId: 'c', caller: origin, message: submission('m') });
      const error = expectRefused(store, 'c', 'invalid-argument', () =>
        store.addVisitorMessage({ chatId: 'c', caller: origin, message: submission('m', undefined, 'other text') }),
      );
      expect(error.message).to.contain('already names a different message');
    });

    it('uses the role default for an unspecified type and refuses a type of the other side', () => {
      const store = testStore();
      store.getNewMessages('c', origin);
      const agent = store.addAgentMessage({ chatId: 'c', agentId: 'ag', caller: origin, message: submission('a') });
      expect(!agent.rebuildRequired && agent.message.type).to.equal(MessageType.Agent);
      expectRefused(store, 'c', 'invalid-argument', () =>
        store.addVisitorMessage({ chatId: 'c', caller: origin, message: submission('x', MessageType.Agent) }),
      );
      expectRefused(store, 'c', 'invalid-argument', () =>
        store.addAgentMessage({ chatId: 'c', agentId: 'ag', caller: origin, message: submission('y', MessageType.Visitor) }),
      );
      expectRefused(store, 'c', 'invalid-argument', () =>
        store.addAgentMessage({ chatId: 'c', agentId: 'ag', caller: origin, message: submission('z', 9 as MessageType) }),
      );
    });

    it('refuses empty ids, negative offsets, empty or oversized content, and a sender other than the agent', () => {
      const store = testStore({ maxContentBytes: 10 });
      store.getNewMessages('c', origin);
      const cases: [string, () => unknown][] = [
        ['chat_id is required', () => store.addVisitorMessage({ chatId: '', caller: origin, message: submission('m') })],
        ['message.id is required', () => store.addVisitorMessage({ chatId: 'c', caller: origin, message: submission('') })],
        ['agent_id is required', () => store.addAgentMessage({ chatId: 'c', agentId: '', caller: origin, message: submission('m') })],
        ['visitor_offset must be', () => store.addVisitorMessage({ chatId: 'c', caller: { visitor: -1, agent: 0 }, message: submission('m') })],
        ['content is empty', () => store.addVisitorMessage({ chatId: 'c', caller: origin, message: submission('m', undefined, '') })],
        ['the limit is 10', () => store.addVisitorMessage({ chatId: 'c', caller: origin, message: submission('m', undefined, 'ünïcödé!') })],
        ['differs from agent_id', () =>
          store.addAgentMessage({ chatId: 'c', agentId: 'ag', caller: origin, message: { ...submission('m'), senderId: 'other' } })],
      ];
      for (const [expected, act] of cases) expect(expectRefused(store, 'c', 'invalid-argument', act).message).to.contain(expected);
    });

    it('refuses a send to a full chat with resource-exhausted', () => {
      const store = testStore({ maxMessagesPerChat: 1 });
      store.getNewMessages('c', origin);
      store.addVisitorMessage({ chatId: 'c', caller: origin, message: submission('m1') });
      expectRefused(store, 'c', 'resource-exhausted', () =>
        store.addVisitorMessage({ chatId: 'c', caller: origin, message: submission('m2') }),
      );
    });
  });

  describe('reads', () => {
    it('creates a missing chat empty and asks for a rebuild with -1/-1; then reads 0/0', () => {
      const store = testStore();
      expect(store.getNewMessages('c', origin)).to.deep.equal({ rebuildRequired: true, offsets: { visitor: -1, agent: -1 }, epoch: 'e1', messages: [], ended: false, readPositions: [] });
      expect(store.getNewMessages('c', origin)).to.deep.equal({ rebuildRequired: false, offsets: origin, epoch: 'e1', messages: [], ended: false, readPositions: [] });
    });

    it("returns each side above the caller's own offsets (the seed compared with the server's)", () => {
      const store = testStore();
      store.rebuild({
        id: 'c',
        visitor: undefined,
        beginTime: undefined,
        messages: [held('v1', 1), held('v2', 2), held('a1', 1, MessageType.Agent), held('a2', 2, MessageType.Agent)],
      });
      const read = store.getNewMessages('c', { visitor: 1, agent: 0 });
      expect(ids(read.messages)).to.deep.equal(['a1', 'v2', 'a2']);
      expect(read.offsets).to.deep.equal({ visitor: 2, agent: 2 });
    });

    it('asks for an incremental rebuild with its own offsets when the caller is ahead', () => {
      const store = testStore();
      store.rebuild({ id: 'c', visitor: undefined, beginTime: undefined, messages: [held('v1', 1)] });
      expect(store.getNewMessages('c', { visitor: 1, agent: 2 })).to.deep.equal({
        rebuildRequired: true,
        offsets: { visitor: 1, agent: 0 },
        epoch: 'e1',
        messages: [],
        ended: false,
        readPositions: [],
      });
    });

    it('asks for a rebuild when the caller\'s offsets refer to another epoch, even if they look fine', () => {
      const store = testStore();
      store.rebuild({ id: 'c', visitor: undefined, beginTime: undefined, messages: [held('v1', 1), held('v2', 2)] });
      const stale = { visitor: 1, agent: 0, epoch: 'from-a-dead-server' };
      expect(store.getNewMessages('c', stale)).to.deep.include({ rebuildRequired: true, offsets: { visitor: 2, agent: 0 }, epoch: 'e1' });
      expect(store.addVisitorMessage({ chatId: 'c', caller: stale, message: submission('v3') })).to.deep.include({ rebuildRequired: true });
      expect(store.getNewMessages('c', { ...stale, epoch: 'e1' }).rebuildRequired).to.equal(false);
      expect(store.getNewMessages('c', { ...stale, epoch: '' }).rebuildRequired, 'no marker: offsets only').to.equal(false);
    });

    it('evicts idle chats; the next call finds the chat missing and a new epoch is born', () => {
      const store = testStore();
      store.getNewMessages('idle', origin);
      store.getNewMessages('busy', origin);
      const cutoff = new Date(Date.UTC(2026, 0, 1) + 10_000);
      for (let i = 0; i < 10; i += 1) store.getNewMessages('busy', origin);
      expect(store.evictIdle(cutoff)).to.equal(1);
      expect(store.getNewMessages('idle', origin)).to.deep.include({ rebuildRequired: true, offsets: { visitor: -1, agent: -1 }, epoch: 'e3' });
      expect(store.getNewMessages('busy', origin).rebuildRequired).to.equal(false);
    });

    it('pages a large backlog: each page continues both sides without a gap', () => {
      const store = testStore({ maxResponseBytes: 400 });
      const messages = Array.from({ length: 30 }, (_, i) => held(`m${i}`, Math.floor(i / 2) + 1, i % 2 ? MessageType.Agent : MessageType.Visitor));
      store.rebuild({ id: 'c', visitor: undefined, beginTime: undefined, messages });
      let position = origin;
      const seen: string[] = [];
      for (let pages = 1; ; pages += 1) {
        const read = store.getNewMessages('c', position);
        if (read.messages.length === 0) break;
        expect(read.messages.length).to.be.below(30);
        for (const m of read.messages) {
          const side = m.type === MessageType.Visitor ? 'visitor' : 'agent';
          expect(m.dataOffset).to.equal(position[side] + 1);
          position = { ...position, [side]: m.dataOffset };
          seen.push(m.id);
        }
        expect(pages).to.be.below(30);
      }
      expect(seen).to.have.members(ids(messages));
      expect(position).to.deep.equal({ visitor: 15, agent: 15 });
    });
  });

  describe('rebuilds', () => {
    it('creates the chat, takes the copy, and changes nothing when the same copy comes again', () => {
      const store = testStore();
      const copy = { id: 'c', visitor: { id: 'v', name: 'Vi', email: 'v@x' }, beginTime: new Date(5), messages: [held('v1', 1), held('a1', 1, MessageType.Agent)] };
      const first = store.rebuild(copy);
      expect(first).to.include({ created: true, added: 2, displaced: 0, truncated: false });
      expect(first.offsets).to.deep.equal({ visitor: 1, agent: 1 });
      expect(first.visitor).to.deep.equal(copy.visitor);
      expect(first.beginTime).to.deep.equal(new Date(5));
      const second = store.rebuild(copy);
      expect(second).to.include({ created: false, added: 0 });
      expect(second.messages).to.deep.equal(first.messages);
    });

    it('accepts a large copy in several uploads, in any order, whose union is the whole chat', () => {
      const store = testStore();
      const all = Array.from({ length: 9 }, (_, i) => held(`v${i + 1}`, i + 1));
      const part = (from: number, to: number) => ({ id: 'c', visitor: undefined, beginTime: undefined, messages: all.slice(from, to) });
      expect(store.rebuild(part(6, 9)).offsets).to.deep.equal({ visitor: 0, agent: 0 });
      expect(store.rebuild(part(0, 3)).offsets).to.deep.equal({ visitor: 3, agent: 0 });
      const last = store.rebuild(part(3, 6));
      expect(last.offsets).to.deep.equal({ visitor: 9, agent: 0 });
      expect(ids(last.messages)).to.deep.equal(ids(all));
    });

    it('keeps the uploader\'s order around messages the server holds elsewhere', () => {
      const store = testStore();
      const copy = (...messages: ReturnType<typeof held>[]) => ({ id: 'c', visitor: undefined, beginTime: undefined, messages });
      store.rebuild(copy(held('a', 1)));
      store.rebuild(copy(held('m1', 4))); // beyond a gap: the server holds m1 at 4
      // The uploader holds m1 at 2 and m2 after it; offset 3 is free, but m2 must follow m1.
      const merged = store.rebuild(copy(held('a', 1), held('m1', 2), held('m2', 3)));
      expect(merged.messages.map((m) => `${m.dataOffset}:${m.id}`)).to.deep.equal(['1:a', '4:m1', '5:m2']);
    });

    it('adds only what the server lacks and keeps what it holds at its offsets', () => {
      const store = testStore();
      store.rebuild({ id: 'c', visitor: undefined, beginTime: undefined, messages: [held('v1', 1), held('y', 2)] });
      const merged = store.rebuild({ id: 'c', visitor: undefined, beginTime: undefined, messages: [held('v1', 1), held('x', 2), held('z', 3)] });
      expect(merged.messages.map((m) => `${m.dataOffset}:${m.id}`)).to.deep.equal(['1:v1', '2:y', '3:x', '4:z']);
      expect(merged).to.include({ added: 2, displaced: 2 });
    });

    it('refuses an upload that alters a held message, or is malformed, and changes nothing', () => {
      const store = testStore();
      store.rebuild({ id: 'c', visitor: undefined, beginTime: undefined, messages: [held('v1', 1)] });
      const upload = (...messages: ReturnType<typeof held>[]) => () =>
        store.rebuild({ id: 'c', visitor: undefined, beginTime: undefined, messages });
      const cases: [string, () => unknown][] = [
        ['chat.messages[1].id "v1" names a message that differs from the message the server holds', upload(held('v2', 2), { ...held('v1', 1), content: 'forged' })],
        ['chat.messages[1].id "v2" appears twice', upload(held('v2', 2), held('v2', 3))],
        ['chat.messages[1].data_offset 2 is claimed twice', upload(held('v2', 2), held('v3', 2))],
        ['chat.messages[0].data_offset must be 1 or more', upload(held('v2', 0))],
        ['chat.messages[0].message_type is required', upload({ ...held('v2', 2), type: 0 as MessageType })],
        ['chat.messages[0].id is required', upload(held('', 2))],
        ['chat.id is required', () => store.rebuild({ id: '', visitor: undefined, beginTime: undefined, messages: [] })],
      ];
      for (const [expected, act] of cases) expect(expectRefused(store, 'c', 'invalid-argument', act).message).to.contain(expected);
    });

    it('merges an upload that extends an incarnation only into that one, and never creates the chat for it', () => {
      const store = testStore();
      store.rebuild({ id: 'c', visitor: undefined, beginTime: undefined, messages: [held('v1', 1)] }); // epoch e1
      // A later part of a copy whose first part reached e1 arrives after a restart, or at another server:
      const misdirected = store.rebuild({ id: 'c', epoch: 'e0', visitor: undefined, beginTime: undefined, messages: [held('v9', 5)] });
      expect(misdirected).to.include({ rebuildRequired: true, epoch: 'e1', added: 0 });
      expect(misdirected.offsets).to.deep.equal({ visitor: 1, agent: 0 });
      expect(store.getNewMessages('c', origin).offsets, 'nothing merged').to.deep.equal({ visitor: 1, agent: 0 });
      const elsewhere = store.rebuild({ id: 'other', epoch: 'e1', visitor: undefined, beginTime: undefined, messages: [held('w2', 2)] });
      expect(elsewhere).to.include({ rebuildRequired: true, epoch: '' });
      expect(elsewhere.offsets).to.deep.equal({ visitor: -1, agent: -1 });
      expect(store.size, 'the missing chat was not created').to.equal(1);
      const extending = store.rebuild({ id: 'c', epoch: 'e1', visitor: undefined, beginTime: undefined, messages: [held('v2', 2)] });
      expect(extending).to.include({ rebuildRequired: false, added: 1 });
      expect(extending.offsets).to.deep.equal({ visitor: 2, agent: 0 });
    });

    it('refuses chats beyond the server limit and messages beyond the chat limit', () => {
      const store = testStore({ maxChats: 1, maxMessagesPerChat: 2 });
      store.rebuild({ id: 'c', visitor: undefined, beginTime: undefined, messages: [held('v1', 1)] });
      expectRefused(store, 'c', 'resource-exhausted', () =>
        store.rebuild({ id: 'c', visitor: undefined, beginTime: undefined, messages: [held('v2', 2), held('a1', 1, MessageType.Agent)] }),
      );
      expect(() => store.getNewMessages('other', origin)).to.throw(ChatError, 'its limit');
      expect(store.size).to.equal(1);
    });
  });

  describe('what it counts, for metrics', () => {
    it('counts the messages it holds as sends, merges and evictions change them', () => {
      const store = testStore();
      expect(store.messageCount).to.equal(0);
      store.getNewMessages('c', origin);
      store.addVisitorMessage({ chatId: 'c', caller: origin, message: submission('v1') });
      store.addVisitorMessage({ chatId: 'c', caller: origin, message: submission('v1') }); // a resend stores nothing
      expect(store.messageCount).to.equal(1);
      store.rebuild({ id: 'c', visitor: undefined, beginTime: undefined, messages: [held('v1', 1), held('v2', 2), held('v4', 4)] });
      store.rebuild({ id: 'd', visitor: undefined, beginTime: undefined, messages: [held('w1', 1), held('b1', 1, MessageType.Agent)] });
      expect(store.messageCount, 'a message held beyond a gap counts').to.equal(5);
      expectRefused(store, 'd', 'invalid-argument', () =>
        store.rebuild({ id: 'd', visitor: undefined, beginTime: undefined, messages: [held('w9', 9), { ...held('w1', 1), content: 'altered' }] }),
      );
      expect(store.messageCount, 'a refused upload adds nothing').to.equal(5);
      store.evict('c');
      expect(store.messageCount).to.equal(2);
      store.evictIdle(new Date(Date.UTC(2100, 0, 1)));
      expect(store.messageCount).to.equal(0);
    });

    it('tells why each send or read it answers asks for a rebuild, and what each Rebuild came to', () => {
      const causes: RebuildCause[] = [];
      const reasons: RebuildReason[] = [];
      let epochs = 0;
      const store = new ChatStore(DOMAIN_LIMITS, steppingClock(), () => `e${++epochs}`, {
        onRebuildRequired: (cause) => causes.push(cause),
        onRebuild: (outcome) => reasons.push(rebuildReason(outcome)),
      });
      store.addVisitorMessage({ chatId: 'c', caller: origin, message: submission('v1') });
      store.getNewMessages('c', origin); // creates the chat, epoch e1
      store.readNew('gone', origin);
      expect(causes).to.deep.equal(['missing_chat', 'missing_chat', 'missing_chat']);
      store.getNewMessages('c', { visitor: 1, agent: 0 });
      store.addAgentMessage({ chatId: 'c', agentId: 'ag', caller: { visitor: 0, agent: 2 }, message: submission('a1') });
      store.getNewMessages('c', { visitor: 5, agent: 0, epoch: 'e0' });
      store.readNew('c', { ...origin, epoch: 'e0' });
      expect(causes.slice(3)).to.deep.equal(['caller_ahead', 'caller_ahead', 'epoch_mismatch', 'epoch_mismatch'], 'another epoch comes first');
      store.getNewMessages('c', { ...origin, epoch: 'e1' });
      store.addVisitorMessage({ chatId: 'c', caller: origin, message: submission('v1') });
      expect(causes, 'answers that ask for nothing').to.have.length(7);

      store.rebuild({ id: 'n', visitor: undefined, beginTime: undefined, messages: [held('w1', 1)] });
      store.rebuild({ id: 'c', visitor: undefined, beginTime: undefined, messages: [held('v1', 1)] });
      store.rebuild({ id: 'c', epoch: 'e0', visitor: undefined, beginTime: undefined, messages: [held('v2', 2)] });
      expect(() => store.rebuild({ id: '', visitor: undefined, beginTime: undefined, messages: [] })).to.throw(ChatError);
      expect(reasons, 'a refused Rebuild is not told').to.deep.equal(['created', 'merged', 'epoch_mismatch']);
      expect(causes, "a Rebuild's answer is not a read's").to.have.length(7);
    });
  });
});
