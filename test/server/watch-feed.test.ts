import { expect } from 'chai';
import { pino } from 'pino';
import { ResultCode, WatchChatRequest, type WatchChatResponse } from '../../generated/chat/v1/chat.js';
import type { Limits } from '../../src/domain/limits.js';
import { MessageType } from '../../src/domain/message.js';
import type { ChatStore } from '../../src/domain/store.js';
import { INSECURE } from '../../src/domain/access.js';
import { chatHandlers, type WatchFeed } from '../../src/server/chat-service.js';
import type { Loose } from '../support/chat-api.js';
import { held, refusal, steppingClock, submission, testStore } from '../support/domain.js';

const origin = { visitor: 0, agent: 0 };
const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
const ids = (response: WatchChatResponse | undefined) => response?.messages.map((m) => m.id);

/** A store and its handlers, no gRPC. */
function setUp(limits: Partial<Limits> = {}) {
  const store = testStore(limits);
  const handlers = chatHandlers(store, steppingClock(), pino({ level: 'silent' }));
  const watch = (request: Loose<WatchChatRequest>) => handlers.watchChat(WatchChatRequest.fromPartial(request), INSECURE);
  return { store, watch };
}

/** Counts the feed's change notifications. */
function listen(feed: WatchFeed): { count: number } {
  const heard = { count: 0 };
  feed.onChange(() => (heard.count += 1));
  return heard;
}

const visitorSays = (store: ChatStore, id: string) => store.addVisitorMessage({ chatId: 'c', caller: origin, message: submission(id) });

describe('the WatchChat handler (a feed, no gRPC)', () => {
  it('answers first at once, without messages when the caller is up to date, then has nothing new', () => {
    const { store, watch } = setUp();
    store.getNewMessages('c', origin);
    visitorSays(store, 'v1');
    const feed = watch({ chatId: 'c', visitorOffset: 1, agentOffset: 0 });

    expect(feed.next()).to.deep.equal({ code: ResultCode.RESULT_CODE_OK, visitorDataOffset: 1, agentDataOffset: 0, messages: [], epoch: 'e1', ended: false, readPositions: [], typing: [] });
    expect(feed.next()).to.equal(undefined);
    expect(feed.done).to.equal(false);
    expect(store.watcherCount).to.equal(1);
  });

  it('tells its listener synchronously of a send or a merge, and gives only what is new, in order', () => {
    const { store, watch } = setUp();
    store.getNewMessages('c', origin);
    visitorSays(store, 'v1');
    const feed = watch({ chatId: 'c' });
    const heard = listen(feed);
    expect(ids(feed.next())).to.deep.equal(['v1']);

    store.addAgentMessage({ chatId: 'c', agentId: 'ag', caller: origin, message: submission('a1') });
    expect(heard.count, 'told before the send returned').to.equal(1);
    visitorSays(store, 'v2');
    const live = feed.next();
    expect(ids(live)).to.deep.equal(['a1', 'v2']);
    expect(live).to.deep.include({ visitorDataOffset: 2, agentDataOffset: 1 });
    expect(feed.next()).to.equal(undefined);

    store.rebuild({ id: 'c', visitor: undefined, beginTime: undefined, messages: [held('a2', 2, MessageType.Agent)] });
    expect(heard.count).to.equal(3);
    expect(ids(feed.next())).to.deep.equal(['a2']);
    expect(feed.next()).to.equal(undefined);
  });

  it('cuts a backlog to the response size budget, each page continuing the last, without a change', () => {
    const { store, watch } = setUp({ maxResponseBytes: 1_000 });
    store.getNewMessages('c', origin);
    for (const i of range(20)) {
      store.addVisitorMessage({ chatId: 'c', caller: origin, message: submission(`v${i}`, undefined, 'x'.repeat(200)) });
    }
    const feed = watch({ chatId: 'c' });
    const pages: string[][] = [];
    for (let page = feed.next(); page; page = feed.next()) pages.push(ids(page)!);

    expect(pages.length).to.be.greaterThan(2);
    expect(pages.flat()).to.deep.equal(range(20).map((i) => `v${i}`));
    expect(feed.done).to.equal(false);
  });

  it('creates a missing chat and answers REBUILD_REQUIRED -1/-1 as its last response, freeing the slot', () => {
    const { store, watch } = setUp();
    const feed = watch({ chatId: 'nowhere' });

    expect(feed.next()).to.deep.include({ code: ResultCode.RESULT_CODE_REBUILD_REQUIRED, visitorDataOffset: -1, agentDataOffset: -1 });
    expect(feed.done).to.equal(true);
    expect(feed.next()).to.equal(undefined);
    expect(store.size, 'the chat was created').to.equal(1);
    expect(store.watcherCount).to.equal(0);
  });

  it('answers a caller ahead, or another epoch, with the server offsets and epoch, and is done', () => {
    const { store, watch } = setUp();
    store.getNewMessages('c', origin);
    visitorSays(store, 'v1');
    for (const request of [
      { chatId: 'c', visitorOffset: 2, agentOffset: 0 },
      { chatId: 'c', visitorOffset: 1, agentOffset: 0, epoch: 'an-older-incarnation' },
    ]) {
      const feed = watch(request);
      expect(feed.next()).to.deep.equal({
        code: ResultCode.RESULT_CODE_REBUILD_REQUIRED,
        visitorDataOffset: 1,
        agentDataOffset: 0,
        messages: [],
        epoch: 'e1',
        ended: false,
        readPositions: [],
        typing: [],
      });
      expect(feed.done).to.equal(true);
      expect(feed.next()).to.equal(undefined);
    }
  });

  it('answers an eviction while watched with REBUILD_REQUIRED -1/-1 and no epoch, without creating the chat', () => {
    const { store, watch } = setUp();
    store.getNewMessages('c', origin);
    const feed = watch({ chatId: 'c' });
    const heard = listen(feed);
    feed.next();

    store.evict('c');
    expect(heard.count).to.equal(1);
    expect(feed.next()).to.deep.equal({ code: ResultCode.RESULT_CODE_REBUILD_REQUIRED, visitorDataOffset: -1, agentDataOffset: -1, messages: [], epoch: '', ended: false, readPositions: [], typing: [] });
    expect(feed.done).to.equal(true);
    expect(feed.next()).to.equal(undefined);
    expect(store.size).to.equal(0);
    expect(store.watcherCount).to.equal(0);
  });

  it('refuses a watcher beyond maxWatchers; close frees the slot, is idempotent, and silences the feed', () => {
    const { store, watch } = setUp({ maxWatchers: 1 });
    store.getNewMessages('c', origin);
    const feed = watch({ chatId: 'c' });
    const heard = listen(feed);
    const full = refusal(() => watch({ chatId: 'c' }));
    expect(full.kind).to.equal('resource-exhausted');
    expect(full.message).to.contain('serves 1 watchers, its limit');

    feed.close();
    feed.close();
    expect(store.watcherCount).to.equal(0);
    visitorSays(store, 'v1');
    expect(heard.count).to.equal(0);
    expect(feed.next()).to.equal(undefined);
    expect(ids(watch({ chatId: 'c' }).next())).to.deep.equal(['v1']);
  });

  it('refuses bad input as GetNewMessage does, throwing before anything is subscribed', () => {
    const { store, watch } = setUp();
    const cases: [Loose<WatchChatRequest>, RegExp][] = [
      [{ chatId: '' }, /chat_id is required/],
      [{ chatId: 'c', visitorOffset: -1 }, /visitor_offset must be a whole number >= 0/],
      [{ chatId: 'c', agentOffset: -3 }, /agent_offset must be/],
    ];
    for (const [request, message] of cases) {
      const error = refusal(() => watch(request));
      expect(error.kind).to.equal('invalid-argument');
      expect(error.message).to.match(message);
    }
    expect(store.watcherCount).to.equal(0);
    expect(store.size).to.equal(0);
  });
});
