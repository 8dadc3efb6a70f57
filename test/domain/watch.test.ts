import { expect } from 'chai';
import { MessageType } from '../../src/domain/message.js';
import type { ChatStore } from '../../src/domain/store.js';
import type { ChatChange } from '../../src/domain/watchers.js';
import { held, refusal, submission, testStore } from '../support/domain.js';

const origin = { visitor: 0, agent: 0 };
const ids = (messages: readonly { id: string }[]) => messages.map((m) => m.id);

/** Subscribes to `chatId` and records what the listener hears. */
function record(store: ChatStore, chatId: string): { heard: ChatChange[]; cancel: () => void } {
  const heard: ChatChange[] = [];
  return { heard, cancel: store.watch(chatId, (change) => heard.push(change)) };
}

describe('ChatStore.watch', () => {
  it('tells the watchers of a chat, before the send returns, and no one else', () => {
    const store = testStore();
    store.getNewMessages('c', origin);
    store.getNewMessages('other', origin);
    const watcher = record(store, 'c');
    const bystander = record(store, 'other');

    store.addVisitorMessage({ chatId: 'c', caller: origin, message: submission('v1') });
    expect(watcher.heard).to.deep.equal(['messages']);
    store.addAgentMessage({ chatId: 'c', agentId: 'ag', caller: origin, message: submission('a1') });
    expect(watcher.heard).to.deep.equal(['messages', 'messages']);
    expect(bystander.heard).to.deep.equal([]);
  });

  it('misses nothing between a read and the next notification when both happen in one step', () => {
    const store = testStore();
    store.getNewMessages('c', origin);
    store.addVisitorMessage({ chatId: 'c', caller: origin, message: submission('v1') });

    let position = { visitor: 0, agent: 0, epoch: 'e1' };
    const seen: string[] = [];
    const pull = () => {
      const read = store.readNew('c', position);
      seen.push(...ids(read.messages));
      position = { ...position, visitor: read.offsets.visitor, agent: read.offsets.agent };
    };
    store.watch('c', pull);
    pull(); // the catch-up read, in the same synchronous step as the subscription

    store.addAgentMessage({ chatId: 'c', agentId: 'ag', caller: origin, message: submission('a1') });
    store.addVisitorMessage({ chatId: 'c', caller: { visitor: 1, agent: 1 }, message: submission('v2') });
    expect(seen).to.deep.equal(['v1', 'a1', 'v2']);
  });

  it('tells watchers of a merge that added messages, and of nothing that changed no message', () => {
    const store = testStore();
    store.getNewMessages('c', origin);
    const { heard } = record(store, 'c');

    store.rebuild({ id: 'c', visitor: undefined, beginTime: undefined, messages: [held('v1', 1)] });
    expect(heard).to.deep.equal(['messages']);

    store.rebuild({ id: 'c', visitor: undefined, beginTime: undefined, messages: [held('v1', 1)] }); // a repeat adds nothing
    store.addVisitorMessage({ chatId: 'c', caller: { visitor: 1, agent: 0 }, message: submission('v1', undefined, 'text of v1') }); // a resend
    store.addVisitorMessage({ chatId: 'c', caller: { visitor: 5, agent: 0 }, message: submission('v9') }); // ahead: rebuild required
    refusal(() => store.addVisitorMessage({ chatId: 'c', caller: origin, message: submission('x', MessageType.Agent) }));
    store.getNewMessages('c', origin);
    expect(heard).to.deep.equal(['messages']);
  });

  it('tells watchers of an eviction; a watcher read then finds the chat missing and does not create it', () => {
    const store = testStore();
    store.getNewMessages('c', origin);
    const { heard } = record(store, 'c');

    expect(store.evict('c')).to.equal(true);
    expect(heard).to.deep.equal(['evicted']);
    expect(store.readNew('c', { ...origin, epoch: 'e1' })).to.deep.equal({
      rebuildRequired: true,
      offsets: { visitor: -1, agent: -1 },
      epoch: '',
      messages: [],
      ended: false,
      readPositions: [],
    });
    expect(store.size).to.equal(0);
  });

  it('keeps a watched chat through idle eviction, and evicts it once no one watches', () => {
    const store = testStore();
    store.getNewMessages('c', origin);
    const { cancel } = record(store, 'c');
    const later = new Date(Date.UTC(2030, 0, 1));

    expect(store.evictIdle(later)).to.equal(0);
    expect(store.size).to.equal(1);
    cancel();
    expect(store.evictIdle(later)).to.equal(1);
    expect(store.size).to.equal(0);
  });

  it('counts subscriptions, refuses one beyond maxWatchers, and cancels each once', () => {
    const store = testStore({ maxWatchers: 2 });
    const first = record(store, 'c');
    const second = record(store, 'c'); // many watchers per chat
    expect(store.watcherCount).to.equal(2);

    const error = refusal(() => store.watch('d', () => {}));
    expect(error.kind).to.equal('resource-exhausted');
    expect(error.message).to.contain('serves 2 watchers, its limit');

    first.cancel();
    first.cancel(); // idempotent: the other subscription stays
    expect(store.watcherCount).to.equal(1);
    store.getNewMessages('c', origin);
    store.addVisitorMessage({ chatId: 'c', caller: origin, message: submission('v1') });
    expect(first.heard).to.deep.equal([]);
    expect(second.heard).to.deep.equal(['messages']);
    record(store, 'd');
    expect(store.watcherCount).to.equal(2);
  });

  it('does not tell a listener cancelled by an earlier one during the same notification', () => {
    const store = testStore();
    store.getNewMessages('c', origin);
    const heard: string[] = [];
    let cancelSecond = () => {};
    store.watch('c', () => {
      heard.push('first');
      cancelSecond();
    });
    cancelSecond = store.watch('c', () => heard.push('second'));

    store.addVisitorMessage({ chatId: 'c', caller: origin, message: submission('v1') });
    expect(heard).to.deep.equal(['first']);
    expect(store.watcherCount).to.equal(1);
  });

  it('refuses an empty chat id', () => {
    const error = refusal(() => testStore().watch('', () => {}));
    expect(error.kind).to.equal('invalid-argument');
    expect(error.message).to.contain('chat_id is required');
  });
});
