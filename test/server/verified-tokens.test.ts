import { expect } from 'chai';
import type { Principal } from '../../src/domain/access.js';
import { VerifiedTokens } from '../../src/server/verified-tokens.js';

const AGENT: Principal = { sub: 'agent-1', role: 'agent' };

describe('VerifiedTokens', () => {
  let now = Date.UTC(2026, 11, 1);
  const tokens = () => new VerifiedTokens(2_000, () => now);

  it('takes a verified token back until its expiry plus the clock tolerance, then forgets it', () => {
    const verified = tokens();
    const exp = Math.floor(now / 1000) + 30;
    expect(verified.remember('t1', AGENT, exp)).to.equal(AGENT);
    expect(verified.get('t1')).to.equal(AGENT);
    now = exp * 1000 + 1_999;
    expect(verified.get('t1')).to.equal(AGENT);
    now = exp * 1000 + 2_000;
    expect(verified.get('t1')).to.equal(undefined);
    expect(verified.get('t2')).to.equal(undefined);
  });

  it('verifies a long-lived token again after a minute, so a key taken out of the key set stops admitting it', () => {
    const verified = tokens();
    verified.remember('t1', AGENT, Math.floor(now / 1000) + 3_600);
    now += 59_999;
    expect(verified.get('t1')).to.equal(AGENT);
    now += 1;
    expect(verified.get('t1')).to.equal(undefined);
  });

  it('holds at most 10,000 tokens, forgetting the oldest first', () => {
    const verified = tokens();
    const exp = Math.floor(now / 1000) + 30;
    for (let i = 0; i <= 10_000; i += 1) verified.remember(`t${i}`, AGENT, exp);
    expect(verified.get('t0')).to.equal(undefined);
    expect(verified.get('t1')).to.equal(AGENT);
    expect(verified.get('t10000')).to.equal(AGENT);
  });
});
