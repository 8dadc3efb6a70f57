import { expect } from 'chai';
import { SideLog } from '../../src/domain/side-log.js';
import { held } from '../support/domain.js';

describe('SideLog', () => {
  it('counts only the messages held contiguously from offset 1', () => {
    const log = SideLog.of([held('a', 1), held('b', 2), held('d', 4)]);
    expect(log.contiguous).to.equal(2);
    expect(log.size).to.equal(3);
    expect(log.holds(4)).to.equal(true);
    expect(log.holds(3)).to.equal(false);
    expect(log.at(4)).to.equal(undefined);
  });

  it('absorbs messages beyond a gap once the gap is filled', () => {
    const log = SideLog.of([held('a', 1), held('c', 3), held('d', 4)]);
    const b = log.append((dataOffset) => ({ ...held('b', dataOffset) }));
    expect(b.dataOffset).to.equal(2);
    expect(log.contiguous).to.equal(4);
    expect(log.all().map((m) => m.id)).to.deep.equal(['a', 'b', 'c', 'd']);
  });

  it('lists every message by offset, gaps included', () => {
    const log = SideLog.of([held('e', 9), held('a', 1), held('c', 5)]);
    expect(log.all().map((m) => m.dataOffset)).to.deep.equal([1, 5, 9]);
  });
});
