import { expect } from 'chai';
import { ChatError } from '../../src/domain/errors.js';
import type { Clock, Limits } from '../../src/domain/limits.js';
import { type Message, MessageType } from '../../src/domain/message.js';
import { ChatStore, type Submission } from '../../src/domain/store.js';
import { DEFAULT_CONFIG, withDerivedBudgets } from '../../src/server/config.js';
import { heapLimitBytes } from '../../src/server/heap-probe.js';

/** The default limits, with the held-bytes budget derived from this process's heap. */
export const DOMAIN_LIMITS: Limits = withDerivedBudgets(DEFAULT_CONFIG, heapLimitBytes());

/** A clock that moves one second forward each time it is read. */
export function steppingClock(start = Date.UTC(2026, 0, 1)): Clock {
  let now = start;
  return { now: () => new Date((now += 1000)) };
}

/** A store with the default limits (or some overridden), a stepping clock and epochs e1, e2, ... */
export function testStore(limits: Partial<Limits> = {}, clock = steppingClock()): ChatStore {
  let epochs = 0;
  return new ChatStore({ ...DOMAIN_LIMITS, ...limits }, clock, () => `e${++epochs}`);
}

/** A message as a client would hold it. */
export function held(id: string, dataOffset: number, type = MessageType.Visitor, content = `text of ${id}`): Message {
  return { id, dataOffset, content, type, sendTime: new Date(Date.UTC(2026, 0, 1) + dataOffset * 1000), senderId: '' };
}

/** A submission of a new message. */
export function submission(id: string, type?: MessageType, content = `text of ${id}`): Submission {
  return { id, content, type, senderId: '' };
}

/** The ChatError `act` throws; fails the test when it throws nothing or something else. */
export function refusal(act: () => unknown): ChatError {
  try {
    act();
  } catch (error) {
    expect(error).to.be.instanceOf(ChatError);
    return error as ChatError;
  }
  return expect.fail('expected a refusal');
}
