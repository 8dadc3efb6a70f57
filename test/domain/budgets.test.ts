import { expect } from 'chai';
import { chatRecordBytes, heldBytes, visitorBytes } from '../../src/domain/held-bytes.js';
import type { HeapReading } from '../../src/domain/memory-guard.js';
import { MessageType } from '../../src/domain/message.js';
import { ChatStore } from '../../src/domain/store.js';
import type { EvictionReport } from '../../src/domain/memory-guard.js';
import { DOMAIN_LIMITS, held, refusal, steppingClock, submission, testStore } from '../support/domain.js';

const origin = { visitor: 0, agent: 0 };
const OVERHEAD = DOMAIN_LIMITS.messageOverheadBytes;
const record = (chatId: string) => chatRecordBytes(chatId, undefined, OVERHEAD);
const cost = (id: string, content = `text of ${id}`, senderId = '') => heldBytes({ id, content, senderId }, OVERHEAD);
const empty = (id: string) => ({ id, visitor: undefined, beginTime: undefined, messages: [] });

describe('byte budgets', () => {
  it('counts a chat record, each sent message and each merged one exactly, and eviction frees them', () => {
    const store = testStore();
    store.getNewMessages('c', origin);
    expect(store.heldBytes).to.equal(record('c'));
    store.addVisitorMessage({ chatId: 'c', caller: origin, message: submission('v1', undefined, 'héllo') });
    store.addAgentMessage({ chatId: 'c', agentId: 'agent-7', caller: origin, message: submission('a1') });
    // Content is UTF-8 bytes (é is 2), the agent's id is stamped as sender_id.
    const afterSends = record('c') + cost('v1', 'héllo') + cost('a1', 'text of a1', 'agent-7');
    expect(store.heldBytes).to.equal(afterSends);
    expect(cost('v1', 'héllo')).to.equal(2 + 6 + 48 + OVERHEAD);

    // A resend of a stored message costs nothing.
    store.addVisitorMessage({ chatId: 'c', caller: origin, message: submission('v1', undefined, 'héllo') });
    expect(store.heldBytes).to.equal(afterSends);

    // A merge counts only what the chat lacked, and the visitor it takes.
    const visitor = { id: 'vis-1', name: 'Ana', email: 'ana@example.com' };
    store.rebuild({ id: 'c', visitor, beginTime: undefined, messages: [held('v1', 1, MessageType.Visitor, 'héllo'), held('v2', 2), held('a9', 2, MessageType.Agent)] });
    const afterMerge = afterSends + visitorBytes(visitor) + cost('v2') + cost('a9');
    expect(store.heldBytes).to.equal(afterMerge);

    store.rebuild({ id: 'd', visitor: undefined, beginTime: undefined, messages: [held('x', 1)] });
    expect(store.heldBytes).to.equal(afterMerge + record('d') + cost('x'));
    expect(store.evict('c')).to.equal(true);
    expect(store.heldBytes).to.equal(record('d') + cost('x'));
  });

  it('frees what idle eviction drops, and keeps what a watched chat holds', () => {
    const store = testStore();
    store.getNewMessages('idle', origin);
    store.addVisitorMessage({ chatId: 'idle', caller: origin, message: submission('m') });
    store.getNewMessages('watched', origin);
    store.watch('watched', () => {});
    expect(store.evictIdle(new Date(Date.UTC(2030, 0, 1)))).to.equal(1);
    expect(store.heldBytes).to.equal(record('watched'));
  });

  it("refuses a send past the chat's budget, and changes nothing", () => {
    const limit = record('c') + cost('m1') + cost('m2');
    const store = testStore({ maxChatBytes: limit });
    store.getNewMessages('c', origin);
    store.addVisitorMessage({ chatId: 'c', caller: origin, message: submission('m1') });
    store.addVisitorMessage({ chatId: 'c', caller: origin, message: submission('m2') });
    const before = store.heldBytes;
    const error = refusal(() => store.addVisitorMessage({ chatId: 'c', caller: origin, message: submission('m3') }));
    expect(error.kind).to.equal('resource-exhausted');
    expect(error.message).to.equal(
      `chat "c" holds ${limit} bytes; ${cost('m3')} more would pass its budget of ${limit} bytes (--max-chat-bytes); continue in a new chat`,
    );
    expect(store.heldBytes).to.equal(before);
    expect(store.getNewMessages('c', origin).messages.map((m) => m.id)).to.deep.equal(['m1', 'm2']);
  });

  it("refuses a Rebuild past the server's budget whole, and changes nothing", () => {
    const store = testStore({ maxHeldBytes: record('a') + cost('a1') + record('b') + cost('b1') });
    store.rebuild({ id: 'a', visitor: undefined, beginTime: undefined, messages: [held('a1', 1)] });
    store.rebuild({ id: 'b', visitor: undefined, beginTime: undefined, messages: [] });
    const before = store.heldBytes;
    const error = refusal(() => store.rebuild({ id: 'b', visitor: undefined, beginTime: undefined, messages: [held('b1', 1), held('b2', 2)] }));
    expect(error.kind).to.equal('resource-exhausted');
    expect(error.message).to.match(/^this server holds \d+ bytes of chats; \d+ more would pass its budget of \d+ bytes \(--max-held-bytes\); try another server$/);
    expect(store.heldBytes).to.equal(before);
    expect(store.rebuild(empty('b')).offsets).to.deep.equal({ visitor: 0, agent: 0 });
    // What fits still goes in, exactly to the budget.
    store.rebuild({ id: 'b', visitor: undefined, beginTime: undefined, messages: [held('b1', 1)] });
    expect(store.heldBytes).to.equal(record('a') + cost('a1') + record('b') + cost('b1'));
  });

  it('refuses a new chat the server has no bytes left for', () => {
    const store = testStore({ maxHeldBytes: record('a') });
    store.getNewMessages('a', origin);
    const error = refusal(() => store.getNewMessages('b', origin));
    expect(error.message).to.contain('(--max-held-bytes); try another server');
    expect(store.size).to.equal(1);
  });
});

/** A heap the test sets, with a limit of 10,000 bytes: high water at 6,000, low water at 5,000. */
function fakeHeap() {
  const heap = { usedBytes: 0, limitBytes: 10_000, collections: 0, reads: 0 };
  const probe = (): HeapReading => {
    heap.reads += 1;
    return { usedBytes: heap.usedBytes, limitBytes: heap.limitBytes, collections: heap.collections };
  };
  return { heap, probe };
}

describe('the heap high-water mark', () => {
  const limits = { ...DOMAIN_LIMITS, heapHighWaterPercent: 60, heapLowWaterPercent: 50 };
  function guardedStore() {
    const { heap, probe } = fakeHeap();
    const reports: EvictionReport[] = [];
    const store = new ChatStore(limits, steppingClock(), undefined, { probe, onEviction: (report) => reports.push(report) });
    return { heap, store, reports };
  }
  const fill = (store: ChatStore, chatId: string) => {
    store.getNewMessages(chatId, origin);
    store.addVisitorMessage({ chatId, caller: origin, message: submission(`${chatId}-m`, undefined, 'x'.repeat(100)) });
  };

  it('evicts least recently used unwatched chats until below low water, and counts them', () => {
    const { heap, store, reports } = guardedStore();
    for (const id of ['c1', 'c2', 'watched', 'c3', 'c4', 'target']) fill(store, id);
    store.watch('watched', () => {});
    const perChat = record('c1') + cost('c1-m', 'x'.repeat(100));
    store.getNewMessages('c1', origin); // c1 is used again: c2 is now the least recently used

    heap.usedBytes = 5000 + 2.5 * perChat; // above 6000; three chats must go to get under 5000
    expect(heap.usedBytes).to.be.greaterThan(6000);
    store.addVisitorMessage({ chatId: 'target', caller: origin, message: submission('t2') });
    const present = (id: string) => store.readNew(id, origin).epoch !== '';
    expect(['c2', 'c3', 'c4', 'c1'].map(present), 'c2, c3, c4 evicted in that order; c1 stays').to.deep.equal([false, false, false, true]);
    expect(present('watched'), 'a watched chat stays').to.equal(true);
    expect(present('target'), 'the chat written stays').to.equal(true);
    expect(reports).to.deep.equal([{ chats: 3, freedBytes: 3 * perChat, heapUsedBytes: heap.usedBytes, heapLimitBytes: 10_000, stillShort: false }]);
    expect(store.memoryEvictions).to.deep.equal({ rounds: 1, chats: 3, freedBytes: 3 * perChat });
    const x = 'x'.repeat(100);
    const kept = ['c1', 'watched', 'target'].reduce((sum, id) => sum + record(id) + cost(`${id}-m`, x), 0);
    expect(store.heldBytes).to.equal(kept + cost('t2'));
  });

  it('counts evicted bytes as freed until a full collection shows them, so it does not evict again', () => {
    const { heap, store, reports } = guardedStore();
    for (const id of ['a', 'b', 'c']) fill(store, id);
    const perChat = record('a') + cost('a-m', 'x'.repeat(100));
    heap.usedBytes = 5000 + perChat - 10; // one chat's eviction gets under low water
    store.addVisitorMessage({ chatId: 'c', caller: origin, message: submission('c2') });
    expect(store.size).to.equal(2);
    // The heap still reads high (no collection yet): nothing more goes.
    store.addVisitorMessage({ chatId: 'c', caller: origin, message: submission('c3') });
    expect(store.size).to.equal(2);
    expect(reports).to.have.length(1);
    // A collection ran but the heap is still high: the guard believes the reading again.
    heap.collections += 1;
    store.addVisitorMessage({ chatId: 'c', caller: origin, message: submission('c4') });
    expect(store.size).to.equal(1);
    expect(store.memoryEvictions).to.deep.include({ rounds: 2, chats: 2 });
  });

  it('refuses writes when nothing unwatched is left to evict, changing nothing, and takes them again below the mark', () => {
    const { heap, store, reports } = guardedStore();
    fill(store, 'mine');
    fill(store, 'theirs');
    store.watch('theirs', () => {});
    heap.usedBytes = 9500;
    const before = store.heldBytes;
    const error = refusal(() => store.addVisitorMessage({ chatId: 'mine', caller: origin, message: submission('m2') }));
    expect(error.kind).to.equal('resource-exhausted');
    expect(error.message).to.match(/^the server is short of memory \(heap 0\.0 of 0\.0 MiB in use, .*\); try another server$/);
    expect(store.heldBytes).to.equal(before);
    expect(store.getNewMessages('mine', origin).offsets).to.deep.equal({ visitor: 1, agent: 0 });
    expect(reports, 'the chat written is never evicted for its own write').to.deep.equal([]);

    // Creating another chat evicts 'mine' (idle to that write), and is still refused.
    const mine = store.heldBytes - record('theirs') - cost('theirs-m', 'x'.repeat(100));
    expect(refusal(() => store.getNewMessages('new', origin)).message).to.contain('short of memory');
    expect(refusal(() => store.rebuild(empty('new'))).message).to.contain('short of memory');
    expect(reports).to.deep.equal([{ chats: 1, freedBytes: mine, heapUsedBytes: 9500, heapLimitBytes: 10_000, stillShort: true }]);
    expect(store.size).to.equal(1);

    heap.usedBytes = 100;
    expect(store.getNewMessages('new', origin).epoch).to.not.equal('');
    expect(store.size).to.equal(2);
  });

  it('does nothing below the high-water mark', () => {
    const { heap, store, reports } = guardedStore();
    fill(store, 'a');
    fill(store, 'b');
    heap.usedBytes = 6000; // at the mark, not above
    store.addVisitorMessage({ chatId: 'b', caller: origin, message: submission('b2') });
    expect(store.size).to.equal(2);
    expect(reports).to.deep.equal([]);
    expect(store.memoryEvictions).to.deep.equal({ rounds: 0, chats: 0, freedBytes: 0 });
  });
});
