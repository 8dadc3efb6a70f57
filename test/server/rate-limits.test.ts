import { expect } from 'chai';
import { ChatError } from '../../src/domain/errors.js';
import { DEFAULT_CONFIG } from '../../src/server/config.js';
import { RateLimiter, rebuildBurstBytes } from '../../src/server/rate-limits.js';
import { RebuildBudget } from '../../src/server/rebuild-budget.js';

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
    expect(error.retryAfterMs, 'what the server sends as its retry pushback').to.equal(500);
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

describe('the Rebuild upload budget', () => {
  const message = (ms: number) => `this server is admitting rebuild uploads at 1000 bytes/s (--rebuild-bytes-per-second); retry in ${ms} ms`;

  it('admits a burst of bytes, then refuses with the rate and when to retry, and refills over time', () => {
    let now = 0;
    const budget = new RebuildBudget(1000, 2000, () => now);
    budget.admit(1500);
    budget.admit(500);
    const error = refusal(() => budget.admit(300));
    expect(error.message).to.equal(message(300));
    expect(error.retryAfterMs).to.equal(300);
    expect(budget).to.include({ refused: 1, refusedBytes: 300 });
    now = 300;
    budget.admit(300);
    now = 10_000; // a long quiet time saves up one burst, no more
    budget.admit(2000);
    expect(refusal(() => budget.admit(1)).retryAfterMs).to.equal(1);
  });

  it('tells a crowd refused together to come back one after another, each when it is then admitted', () => {
    let now = 0;
    const budget = new RebuildBudget(1000, 1000, () => now);
    budget.admit(1000);
    const told = Array.from({ length: 5 }, () => refusal(() => budget.admit(250)).retryAfterMs!);
    expect(told).to.deep.equal([250, 500, 750, 1000, 1250]);
    for (const at of told) {
      now = at;
      budget.admit(250);
    }
    expect(budget.refused).to.equal(5);
  });

  it('admits an upload larger than its burst once the bucket is full, leaving it in debt, and is off at 0 bytes per second', () => {
    let now = 0;
    const budget = new RebuildBudget(1000, 1000, () => now);
    budget.admit(5000);
    expect(refusal(() => budget.admit(5000)).retryAfterMs).to.equal(5000);
    now = 5000;
    budget.admit(5000);
    const off = new RebuildBudget(0, 0, () => now);
    for (let i = 0; i < 100; i += 1) off.admit(1_000_000);
    expect(off.refused).to.equal(0);
  });

  it('loses nothing when its clock steps back', () => {
    let now = 10_000;
    const budget = new RebuildBudget(1000, 1000, () => now);
    budget.admit(600);
    now = 0; // a wall clock set back: no refill, and no debt either
    budget.admit(400);
    now = 500;
    budget.admit(500);
  });

  it('takes one second of the rate as the burst, but never less than the largest request', () => {
    expect(rebuildBurstBytes(DEFAULT_CONFIG)).to.equal(4 * 1024 * 1024);
    expect(rebuildBurstBytes({ ...DEFAULT_CONFIG, rebuildBytesPerSecond: 1000 })).to.equal(DEFAULT_CONFIG.maxRequestBytes);
    expect(rebuildBurstBytes({ ...DEFAULT_CONFIG, rebuildBytesBurst: 10 * 1024 * 1024 })).to.equal(10 * 1024 * 1024);
  });
});
