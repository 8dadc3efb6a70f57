import { expect } from 'chai';
import fc from 'fast-check';
import type { ChatCopy } from '../../src/domain/chat.js';
import { type Message, MessageType } from '../../src/domain/message.js';
import { furtherThan, type ReadPosition } from '../../src/domain/read-positions.js';
import type { ChatStore } from '../../src/domain/store.js';
import { testStore } from '../support/domain.js';

/*
 * The read-position merge is a join over one fixed total order (furtherThan: send time, then id):
 * merging uploads in any order and any grouping reaches the same positions, merging one twice
 * changes nothing, and no merge moves a reader's position backwards. Checked at the domain level
 * over ChatStore.rebuild and ChatStore.markRead (the SDK does not upload read positions yet).
 */

const CHAT = 'c1';
const BASE = Date.UTC(2025, 11, 31);
const READERS = ['r1', 'r2', 'r3'];

/** A pool of messages; send times are drawn from few seconds so ties (broken by id) happen. */
function pool(times: number[]): Message[] {
  return times.map((t, i) => ({
    id: `m${i}`,
    dataOffset: i + 1,
    content: `text ${i}`,
    type: i % 2 === 0 ? MessageType.Visitor : MessageType.Agent,
    sendTime: new Date(BASE + t * 1000),
    senderId: i % 2 === 0 ? '' : 'agent',
  }));
}

interface UploadPlan {
  /** Indices of the pool's messages the upload carries (in pool order, at their pool offsets). */
  readonly messages: number[];
  /** Per reader, an index into the upload's messages (or none). */
  readonly reads: (number | undefined)[];
}

function copyOf(messages: Message[], plan: UploadPlan): ChatCopy {
  const carried = [...new Set(plan.messages)].sort((a, b) => a - b).map((i) => messages[i]!);
  const readPositions: ReadPosition[] = [];
  plan.reads.forEach((pick, r) => {
    if (pick === undefined || carried.length === 0) return;
    readPositions.push({ readerId: READERS[r]!, messageId: carried[pick % carried.length]!.id });
  });
  return { id: CHAT, visitor: undefined, beginTime: new Date(BASE), messages: carried, readPositions };
}

/** The join of several copies as one upload: every message any carries, each reader's furthest. */
function joined(messages: Message[], copies: ChatCopy[]): ChatCopy {
  const byId = new Map<string, Message>();
  for (const copy of copies) for (const m of copy.messages) byId.set(m.id, m);
  const furthest = new Map<string, ReadPosition>();
  for (const copy of copies) {
    for (const p of copy.readPositions ?? []) {
      const at = furthest.get(p.readerId);
      if (!at || furtherThan(find(messages, p.messageId), find(messages, at.messageId))) furthest.set(p.readerId, p);
    }
  }
  const carried = [...byId.values()].sort((a, b) => a.dataOffset - b.dataOffset);
  return { id: CHAT, visitor: undefined, beginTime: new Date(BASE), messages: carried, readPositions: [...furthest.values()] };
}

function find(messages: Message[], id: string): Message {
  const m = messages.find((x) => x.id === id);
  if (!m) throw new Error(`no message ${id}`);
  return m;
}

/** Each reader's position, as reader -> message id, sorted by reader. */
function positions(store: ChatStore): Record<string, string> {
  const outcome = store.getNewMessages(CHAT, { visitor: 0, agent: 0 });
  return Object.fromEntries([...outcome.readPositions].map((p) => [p.readerId, p.messageId]).sort());
}

/** Merges copies into a fresh store in order; checks after each that no position moved backwards. */
function mergeAll(messages: Message[], copies: ChatCopy[]): ChatStore {
  const store = testStore();
  let before: Record<string, string> = {};
  for (const copy of copies) {
    store.rebuild(copy);
    const after = positions(store);
    for (const [reader, id] of Object.entries(before)) {
      expect(after[reader], `reader ${reader} lost its position`).to.be.a('string');
      expect(furtherThan(find(messages, id), find(messages, after[reader]!)), `reader ${reader} moved back from ${id} to ${after[reader]}`).to.equal(false);
    }
    before = after;
  }
  return store;
}

/** The furthest position each reader has in any copy: what every merge must reach. */
function expected(messages: Message[], copies: ChatCopy[]): Record<string, string> {
  const all = joined(messages, copies).readPositions ?? [];
  return Object.fromEntries(all.map((p) => [p.readerId, p.messageId]).sort());
}

const planArb = (size: number): fc.Arbitrary<UploadPlan> =>
  fc.record({
    messages: fc.array(fc.nat({ max: size - 1 }), { minLength: 1, maxLength: size }),
    reads: fc.array(fc.option(fc.nat({ max: 20 }), { nil: undefined }), { minLength: READERS.length, maxLength: READERS.length }),
  });

const scenarioArb = fc
  .array(fc.nat({ max: 4 }), { minLength: 1, maxLength: 8 })
  .chain((times) => fc.record({ times: fc.constant(times), plans: fc.array(planArb(times.length), { minLength: 1, maxLength: 5 }) }));

describe('read-position merge (domain lattice)', function () {
  this.timeout(60_000);

  it('any order of uploads reaches the furthest position of each reader, never moving one back', () => {
    fc.assert(
      fc.property(scenarioArb, fc.infiniteStream(fc.nat()), ({ times, plans }, seeds) => {
        const messages = pool(times);
        const copies = plans.map((plan) => copyOf(messages, plan));
        const want = expected(messages, copies);
        // The uploads in their order, reversed, and in a random permutation.
        const shuffled = copies.map((c) => [seeds.next().value as number, c] as const).sort((a, b) => a[0] - b[0]).map(([, c]) => c);
        for (const order of [copies, [...copies].reverse(), shuffled]) {
          expect(positions(mergeAll(messages, order))).to.deep.equal(want);
        }
      }),
      { numRuns: 150 },
    );
  });

  it('any grouping of uploads (pre-joined on a client, or merged one by one) reaches the same positions', () => {
    fc.assert(
      fc.property(scenarioArb, fc.nat(), ({ times, plans }, cut) => {
        const messages = pool(times);
        const copies = plans.map((plan) => copyOf(messages, plan));
        const at = cut % (copies.length + 1);
        // (a ⊔ b) ⊔ c against a ⊔ (b ⊔ c): the groups are joined first, then merged.
        const left = [joined(messages, copies.slice(0, at)), ...copies.slice(at)];
        const right = [...copies.slice(0, at), joined(messages, copies.slice(at))];
        const want = expected(messages, copies);
        expect(positions(mergeAll(messages, left))).to.deep.equal(want);
        expect(positions(mergeAll(messages, right))).to.deep.equal(want);
        expect(positions(mergeAll(messages, [joined(messages, copies)]))).to.deep.equal(want);
      }),
      { numRuns: 150 },
    );
  });

  it('merging an upload again (or the server\'s own answer back) changes nothing', () => {
    fc.assert(
      fc.property(scenarioArb, ({ times, plans }) => {
        const messages = pool(times);
        const copies = plans.map((plan) => copyOf(messages, plan));
        const store = mergeAll(messages, copies);
        const once = positions(store);
        for (const copy of copies) store.rebuild(copy);
        expect(positions(store)).to.deep.equal(once);
        const answer = store.rebuild({ id: CHAT, visitor: undefined, beginTime: undefined, messages: [] });
        store.rebuild({ id: CHAT, visitor: undefined, beginTime: undefined, messages: [...answer.messages], readPositions: [...answer.readPositions] });
        expect(positions(store)).to.deep.equal(once);
      }),
      { numRuns: 150 },
    );
  });

  it('MarkRead interleaved with uploads keeps each reader\'s furthest, and an answer\'s positions never move back', () => {
    fc.assert(
      fc.property(
        scenarioArb,
        fc.array(fc.record({ reader: fc.nat({ max: READERS.length - 1 }), message: fc.nat({ max: 20 }), before: fc.nat() }), { maxLength: 8 }),
        ({ times, plans }, marks) => {
          const messages = pool(times);
          const copies = plans.map((plan) => copyOf(messages, plan));
          const store = testStore();
          const acknowledged: ReadPosition[] = [];
          const steps: (() => void)[] = copies.map((copy) => () => void store.rebuild(copy));
          for (const mark of marks) {
            steps.splice(mark.before % (steps.length + 1), 0, () => {
              const held = store.rebuild({ id: CHAT, visitor: undefined, beginTime: undefined, messages: [] }).messages;
              if (held.length === 0) return;
              const target = held[mark.message % held.length]!;
              const outcome = store.markRead({ chatId: CHAT, readerId: READERS[mark.reader]!, messageId: target.id, epoch: '' });
              expect(outcome.rebuildRequired).to.equal(false);
              acknowledged.push({ readerId: READERS[mark.reader]!, messageId: target.id });
            });
          }
          let before: Record<string, string> = {};
          for (const step of steps) {
            step();
            const after = positions(store);
            for (const [reader, id] of Object.entries(before)) {
              expect(furtherThan(find(messages, id), find(messages, after[reader]!))).to.equal(false);
            }
            before = after;
          }
          const want = expected(messages, [...copies, { id: CHAT, visitor: undefined, beginTime: undefined, messages: [], readPositions: [] }]);
          for (const p of acknowledged) {
            const at = want[p.readerId];
            if (!at || furtherThan(find(messages, p.messageId), find(messages, at))) want[p.readerId] = p.messageId;
          }
          expect(positions(store)).to.deep.equal(Object.fromEntries(Object.entries(want).sort()));
        },
      ),
      { numRuns: 150 },
    );
  });
});
