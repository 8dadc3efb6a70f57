import { expect } from 'chai';
import { Chat } from '../../src/domain/chat.js';
import { MessageType } from '../../src/domain/message.js';
import { SideLog } from '../../src/domain/side-log.js';
import { held, refusal, submission, testStore } from '../support/domain.js';

const origin = { visitor: 0, agent: 0 };
const layout = (messages: readonly { id: string; dataOffset: number }[]) => messages.map((m) => `${m.dataOffset}:${m.id}`);

describe('domain validation', () => {
  describe('a merge never drops a message, whatever offsets are claimed', () => {
    it('moving two messages past offset 2^53-1 is refused before anything changes (one was dropped, still indexed by id)', () => {
      // The chat itself, below the store's validation: the structure must hold on its own.
      const chat = new Chat('c', 'e1', new Date(0));
      chat.merge({ id: 'c', visitor: undefined, beginTime: undefined, messages: [held('v1', 1), held('far', 2 ** 53 - 1)] });
      const before = chat.snapshot(Infinity).messages;
      expect(() =>
        chat.merge({ id: 'c', visitor: undefined, beginTime: undefined, messages: [held('x1', 1), held('x2', 2), held('a1', 1, MessageType.Agent)] }),
      ).to.throw(/offset/);
      expect(chat.snapshot(Infinity).messages).to.deep.equal(before);
      expect(chat.find('x1')).to.equal(undefined);
      expect(chat.find('a1'), 'the agent side is untouched too').to.equal(undefined);
      expect(chat.size).to.equal(2);
    });

    it('SideLog refuses two messages at one offset, and offsets that are not safe whole numbers', () => {
      expect(() => SideLog.of([held('a', 3), held('b', 3)])).to.throw(/offset 3/);
      expect(() => SideLog.of([held('a', 2 ** 53)])).to.throw(/offset/);
      expect(() => SideLog.of([held('a', 0)])).to.throw(/offset/);
    });
  });

  describe('the store bounds offsets by maxMessagesPerChat', () => {
    it('refuses an upload claiming an offset above the limit, naming it', () => {
      const store = testStore({ maxMessagesPerChat: 10 });
      const error = refusal(() => store.rebuild({ id: 'c', visitor: undefined, beginTime: undefined, messages: [held('v', 11)] }));
      expect(error.message).to.match(/data_offset 11 is above 10/);
      expect(store.size).to.equal(0);
    });

    it('refuses caller offsets above the limit', () => {
      const store = testStore({ maxMessagesPerChat: 10 });
      store.getNewMessages('c', origin);
      expect(refusal(() => store.getNewMessages('c', { visitor: 11, agent: 0 })).message).to.match(/visitor_offset .* 10/);
      expect(refusal(() => store.addVisitorMessage({ chatId: 'c', caller: { visitor: 0, agent: 1.5 }, message: submission('m') })).kind).to.equal('invalid-argument');
    });
  });

  describe('client clocks', () => {
    const now = Date.UTC(2026, 0, 1);
    const clock = { now: () => new Date(now) };

    it('refuses an uploaded send_time more than maxClockSkewMs ahead, and an Invalid Date', () => {
      const store = testStore({ maxClockSkewMs: 1000 }, clock);
      const at = (ms: number) => ({ ...held('v1', 1), sendTime: new Date(ms) });
      expect(refusal(() => store.rebuild({ id: 'c', visitor: undefined, beginTime: undefined, messages: [at(now + 1001)] })).message).to.match(/in the future/);
      expect(refusal(() => store.rebuild({ id: 'c', visitor: undefined, beginTime: undefined, messages: [at(Number.NaN)] })).message).to.match(/send_time/);
      expect(refusal(() => store.rebuild({ id: 'c', visitor: undefined, beginTime: new Date(Number.NaN), messages: [] })).message).to.match(/begin_time/);
      expect(store.size).to.equal(0);
      store.rebuild({ id: 'c', visitor: undefined, beginTime: undefined, messages: [at(now + 1000)] });
      expect(store.size).to.equal(1);
    });
  });

  describe('resends', () => {
    it('a visitor resend is the stored message even after the chat learnt its visitor', () => {
      const store = testStore();
      store.getNewMessages('c', origin);
      const first = store.addVisitorMessage({ chatId: 'c', caller: origin, message: submission('m1') });
      store.rebuild({ id: 'c', visitor: { id: 'visitor-42', name: '', email: '' }, beginTime: undefined, messages: [] });
      const again = store.addVisitorMessage({ chatId: 'c', caller: origin, message: submission('m1') });
      expect(again).to.deep.equal(first.rebuildRequired ? undefined : { ...first, offsets: again.offsets });
      expect(layout(store.rebuild({ id: 'c', visitor: undefined, beginTime: undefined, messages: [] }).messages)).to.deep.equal(['1:m1']);
    });
  });
});
