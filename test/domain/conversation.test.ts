import { expect } from 'chai';
import { interleave, wireBytes } from '../../src/domain/conversation.js';
import { MessageType, type Message } from '../../src/domain/message.js';
import { held } from '../support/domain.js';

const at = (id: string, offset: number, seconds: number, type = MessageType.Visitor): Message => ({
  ...held(id, offset, type),
  sendTime: new Date(seconds * 1000),
});
const reader = (messages: Message[]) => (i: number) => messages[i];

describe('interleave', () => {
  it('orders the two sides by send time, visitor first on a tie', () => {
    const visitor = [at('v1', 1, 1), at('v2', 2, 5)];
    const agent = [at('a1', 1, 1, MessageType.Agent), at('a2', 2, 3, MessageType.Bot)];
    const page = interleave(reader(visitor), reader(agent), 1 << 20);
    expect(page.messages.map((m) => m.id)).to.deep.equal(['v1', 'a1', 'a2', 'v2']);
    expect(page.truncated).to.equal(false);
  });

  it('keeps each side in offset order even when send times run backwards', () => {
    const visitor = [at('v1', 1, 9), at('v2', 2, 1)];
    const page = interleave(reader(visitor), reader([]), 1 << 20);
    expect(page.messages.map((m) => m.id)).to.deep.equal(['v1', 'v2']);
  });

  it('cuts the page to the byte budget but always returns at least one message', () => {
    const visitor = [at('v1', 1, 1), at('v2', 2, 2), at('v3', 3, 3)];
    const size = wireBytes(visitor[0]!);
    expect(interleave(reader(visitor), reader([]), size * 2).messages.map((m) => m.id)).to.deep.equal(['v1', 'v2']);
    const tiny = interleave(reader(visitor), reader([]), 1);
    expect(tiny.messages.map((m) => m.id)).to.deep.equal(['v1']);
    expect(tiny.truncated).to.equal(true);
  });
});
