import { expect } from 'chai';
import type { Typing } from '../../src/client/index.js';
import { TYPING_THROTTLE_MS, TypingList, TypingThrottle } from '../../src/client/typing.js';

describe('typing on the client', () => {
  it('sends a true at most once per throttle interval, unless a false went in between', () => {
    let now = 0;
    const throttle = new TypingThrottle(() => now);
    expect(throttle.admit(false)).to.equal(false); // nothing to stop
    expect(throttle.admit(true)).to.equal(true);
    now += TYPING_THROTTLE_MS - 1;
    expect(throttle.admit(true)).to.equal(false);
    now += 1;
    expect(throttle.admit(true)).to.equal(true);
    expect(throttle.admit(false)).to.equal(true);
    expect(throttle.admit(true)).to.equal(true); // a new burst
  });

  it('reports changes of who is typing, not renewals, and drops entries already expired', () => {
    let now = 1_000;
    const seen: string[][] = [];
    const list = new TypingList((typing) => seen.push(typing.map((t) => t.participantId)), () => now);
    const at = (participantId: string, ms: number): Typing => ({ participantId, expireTime: new Date(ms) });
    list.update([at('vis-1', 2_000)]);
    list.update([at('vis-1', 3_000)]); // renewed: no change
    list.update([at('vis-1', 3_000), at('agent-1', 500)]); // agent-1's has expired already
    now = 3_500;
    list.update([at('vis-1', 3_000)]);
    list.close();
    expect(seen).to.deep.equal([['vis-1'], []]);
  });
});
