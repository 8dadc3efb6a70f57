import { expect } from 'chai';
import fc from 'fast-check';
import { Chat } from '../../src/domain/chat.js';
import { mergeSide } from '../../src/domain/merge.js';
import { MessageColumns } from '../../src/domain/message-columns.js';
import { type Message, MessageType, sideOf } from '../../src/domain/message.js';
import { held } from '../support/domain.js';

/** Every held message read back from a side's columns (see {@link probed}). */
let columnReads = 0;
const readColumn = MessageColumns.prototype.message;

/**
 * Held messages whose every read is counted: each property read of one held as an object (beyond
 * a gap), and each read of one back from a side's columns. A merge that copies, re-indexes or
 * re-sorts the side it merges into reads each held message at least once, so the count shows
 * the work in the size of the chat without timing anything.
 */
function probed(messages: Message[]): { messages: Message[]; reads: () => number; reset: () => void } {
  let reads = 0;
  const out = messages.map((message) => {
    const probe = {} as Message;
    for (const [key, value] of Object.entries(message)) {
      Object.defineProperty(probe, key, {
        enumerable: true,
        get: () => {
          reads += 1;
          return value;
        },
      });
    }
    return probe;
  });
  return {
    messages: out,
    reads: () => reads + columnReads,
    reset: () => {
      reads = 0;
      columnReads = 0;
    },
  };
}

const START = Date.UTC(2026, 0, 1);
const at = (i: number) => new Date(START + i * 1000);

/** A chat holding `n` probed messages per side, contiguous unless `gapAt` leaves one visitor offset free. */
function bigChat(n: number, gapAt = 0) {
  const chat = new Chat('c', 'e1', at(0));
  const messages: Message[] = [];
  for (let i = 1; i <= n; i += 1) {
    if (i !== gapAt) messages.push({ ...held(`v${i}`, i), sendTime: at(i) });
    messages.push({ ...held(`a${i}`, i, MessageType.Agent), sendTime: at(i) });
  }
  const probe = probed(messages);
  chat.merge({ id: 'c', visitor: undefined, beginTime: undefined, messages: probe.messages });
  return { chat, probe };
}

/** A small upload: one message the chat holds and one new one right after it, on each side. */
function smallUpload(n: number): Message[] {
  return [
    { ...held(`v${n}`, n), sendTime: at(n) },
    { ...held('v-new', n + 1), sendTime: at(n + 1) },
    { ...held(`a${n}`, n, MessageType.Agent), sendTime: at(n) },
    { ...held('a-new', n + 1, MessageType.Agent), sendTime: at(n + 1) },
  ];
}

describe('merge cost', () => {
  before(() => {
    MessageColumns.prototype.message = function (this: MessageColumns, ...args: Parameters<MessageColumns['message']>) {
      columnReads += 1;
      return readColumn.apply(this, args);
    };
  });
  after(() => {
    MessageColumns.prototype.message = readColumn;
  });

  it('touches held messages in proportion to the upload, not the chat', () => {
    const touched: number[] = [];
    for (const n of [2_000, 20_000]) {
      const { chat, probe } = bigChat(n);
      probe.reset();
      const summary = chat.merge({ id: 'c', visitor: undefined, beginTime: undefined, messages: smallUpload(n) });
      touched.push(probe.reads());
      expect(summary).to.deep.equal({ added: 2, displaced: 0, readsMoved: 0 });
      expect(chat.offsets).to.deep.equal({ visitor: n + 1, agent: n + 1 });
    }
    // Reading the two held messages the upload names, and little else; the same for 10x the chat.
    expect(touched[0]).to.be.at.most(16);
    expect(touched[1]).to.equal(touched[0]);
  });

  it('moves displaced messages past the end without touching the held side', () => {
    const { chat, probe } = bigChat(10_000);
    probe.reset();
    const summary = chat.merge({
      id: 'c',
      visitor: undefined,
      beginTime: undefined,
      messages: [held('x1', 5), held('x2', 6)],
    });
    expect(summary).to.deep.equal({ added: 2, displaced: 2, readsMoved: 0 });
    expect(chat.find('x2')?.dataOffset).to.equal(10_002);
    expect(probe.reads()).to.be.at.most(8);
  });

  it('reads back each held message as it was stored, after a merge beside it', () => {
    const { chat } = bigChat(100);
    chat.merge({ id: 'c', visitor: undefined, beginTime: undefined, messages: smallUpload(100) });
    const stored = { ...held('v7', 7), sendTime: at(7) };
    expect(chat.find('v7')).to.deep.equal(stored);
    expect(chat.readAfter({ visitor: 6, agent: 6 }, 1).messages[0]).to.deep.equal(stored);
    expect(chat.find('v-new')).to.deep.equal({ ...held('v-new', 101), sendTime: at(101) });
  });

  it('snapshots a budget-sized page: the reads are bounded by the page, not the chat, gaps or not', () => {
    const { chat, probe } = bigChat(20_000, 100);
    probe.reset();
    const page = chat.snapshot(2_000);
    expect(page.truncated).to.equal(true);
    expect(probe.reads()).to.be.below(page.messages.length * 12);
    // Past the gap too, in offset order.
    const whole = chat.snapshot(Number.POSITIVE_INFINITY).messages.filter((m) => m.type === MessageType.Visitor);
    expect(whole.map((m) => m.dataOffset).slice(97, 101)).to.deep.equal([98, 99, 101, 102]);
    expect(whole).to.have.length(19_999);
  });

  it('places every message as the array merge does (a reference model of rules 1-3)', () => {
    const offsets = fc.uniqueArray(fc.integer({ min: 1, max: 30 }), { maxLength: 20 });
    fc.assert(
      fc.property(offsets, offsets, fc.array(fc.boolean(), { maxLength: 20 }), (serverAt, claimsAt, known) => {
        const server = serverAt.map((o) => held(`s${o}`, o)).sort((a, b) => a.dataOffset - b.dataOffset);
        // An upload of new messages and of some held ones, which may claim other offsets.
        const upload: Message[] = [];
        const used = new Set<string>();
        claimsAt.forEach((o, i) => {
          const pick = server[i % Math.max(1, server.length)];
          if (known[i] && pick && !used.has(pick.id)) {
            used.add(pick.id);
            upload.push({ ...pick, dataOffset: o });
          } else upload.push(held(`u${o}`, o));
        });
        const find = (id: string) => server.find((m) => m.id === id);
        const expected = referenceMerge(server, upload, find);
        const actual = mergeSide(server, upload, find);
        expect(actual.messages.map((m) => `${m.dataOffset}:${m.id}`)).to.deep.equal(expected.messages.map((m) => `${m.dataOffset}:${m.id}`));
        expect([actual.added, actual.displaced]).to.deep.equal([expected.added, expected.displaced]);

        // The chat gives the same layout, merging in place.
        const chat = new Chat('c', 'e1', at(0));
        chat.merge({ id: 'c', visitor: undefined, beginTime: undefined, messages: server });
        chat.merge({ id: 'c', visitor: undefined, beginTime: undefined, messages: upload });
        const side = chat.snapshot(Number.POSITIVE_INFINITY).messages.filter((m) => sideOf(m.type) === 'visitor');
        expect(side.map((m) => `${m.dataOffset}:${m.id}`).sort()).to.deep.equal(expected.messages.map((m) => `${m.dataOffset}:${m.id}`).sort());
      }),
      { numRuns: 300 },
    );
  });
});

/** The merge as it was written over arrays before it worked in place (O(n + m log m)). */
function referenceMerge(held: readonly Message[], uploaded: readonly Message[], find: (id: string) => Message | undefined) {
  const claims = [...uploaded].sort((a, b) => a.dataOffset - b.dataOffset);
  const kept: Message[] = [];
  const moved: Message[] = [];
  let cursor = 0;
  let floor = 0;
  for (const message of claims) {
    const known = find(message.id);
    if (known) {
      floor = Math.max(floor, known.dataOffset);
      continue;
    }
    while (cursor < held.length && held[cursor]!.dataOffset < message.dataOffset) cursor += 1;
    const taken = held[cursor]?.dataOffset === message.dataOffset;
    if (moved.length === 0 && !taken && message.dataOffset > floor) {
      kept.push(message);
      floor = message.dataOffset;
    } else moved.push(message);
  }
  const messages = [...held, ...kept].sort((a, b) => a.dataOffset - b.dataOffset);
  let last = messages.at(-1)?.dataOffset ?? 0;
  for (const message of moved) messages.push({ ...message, dataOffset: (last += 1) });
  return { messages, added: kept.length + moved.length, displaced: moved.length };
}
