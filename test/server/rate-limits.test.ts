import { expect } from 'chai';
import { ChatError } from '../../src/domain/errors.js';
import { RateLimiter } from '../../src/server/rate-limits.js';

function refusal(run: () => void): ChatError {
  try {
    run();
  } catch (error) {
    expect(error).to.be.instanceOf(ChatError).with.property('kind', 'resource-exhausted');
    return error as ChatError;
  }
  return expect.fail('not refused');
}

describe('per-subject rate limits', () => {
  it('allows a burst, then refuses with the limit and when to retry, and refills over time', () => {
    let now = 0;
    const limiter = new RateLimiter('send', 2, 3, 100, () => now);
    for (let i = 0; i < 3; i += 1) limiter.take('visitor:v1');
    const error = refusal(() => limiter.take('visitor:v1'));
    expect(error.message).to.equal('"visitor:v1" reached the send rate limit (2 per second, bursts of 3); retry in 500 ms');
    limiter.take('visitor:v2'); // another subject has its own bucket
    now = 499;
    refusal(() => limiter.take('visitor:v1'));
    now = 500;
    limiter.take('visitor:v1');
    refusal(() => limiter.take('visitor:v1'));
  });

  it('takes one second of the rate as the burst when none is given, and 0 per second as no limit', () => {
    const now = 0;
    const limiter = new RateLimiter('rebuild', 2, 0, 100, () => now);
    limiter.take('s');
    limiter.take('s');
    expect(refusal(() => limiter.take('s')).message).to.contain('rebuild rate limit (2 per second, bursts of 2)');
    const off = new RateLimiter('send', 0, 0, 1, () => now);
    for (let i = 0; i < 1000; i += 1) off.take(`s${i}`);
    expect(off.size).to.equal(0);
  });

  it('tracks at most maxSubjects, forgetting full buckets first, else the least recently seen', () => {
    let now = 0;
    const limiter = new RateLimiter('send', 1, 2, 3, () => now);
    limiter.take('a');
    limiter.take('b');
    limiter.take('c');
    limiter.take('a'); // a is now empty and the most recently seen
    now = 1000; // b and c have refilled; a has not (1 of 2)
    limiter.take('d');
    expect(limiter.size).to.be.at.most(3);
    limiter.take('a'); // a was kept: its second token is the one it got back
    refusal(() => limiter.take('a'));
    for (let i = 0; i < 50; i += 1) limiter.take(`new-${i}`);
    expect(limiter.size).to.equal(3);
  });
});
