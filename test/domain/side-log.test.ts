import { expect } from 'chai';
import fc from 'fast-check';
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

  it('inserts at free offsets in any order and reads back in offset order, across long runs beyond a gap', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: 3_000 }), { minLength: 1, maxLength: 2_500 }), (offsets) => {
        const log = new SideLog();
        const model = new Set<number>();
        for (const offset of offsets) {
          log.insert(held(`m${offset}`, offset));
          model.add(offset);
        }
        const sorted = [...model].sort((a, b) => a - b);
        let contiguous = 0;
        while (model.has(contiguous + 1)) contiguous += 1;
        expect(log.contiguous).to.equal(contiguous);
        expect(log.size).to.equal(sorted.length);
        expect(log.last).to.equal(sorted.at(-1));
        expect(log.all().map((m) => m.dataOffset)).to.deep.equal(sorted);
        const read = log.reader();
        expect(sorted.map((_, i) => read(i)?.dataOffset)).to.deep.equal(sorted);
        expect(read(sorted.length)).to.equal(undefined);
        expect(read(0)?.dataOffset).to.equal(sorted[0]);
        expect(log.holds(sorted[0]!)).to.equal(true);
      }),
      { numRuns: 40 },
    );
  });

  it('keeps order when thousands wait beyond a gap, inserted back to front and interleaved, then absorbs them all', () => {
    const log = new SideLog();
    for (let offset = 5_000; offset >= 2; offset -= 2) log.insert(held(`e${offset}`, offset));
    for (let offset = 3; offset < 5_000; offset += 2) log.insert(held(`o${offset}`, offset));
    expect([log.contiguous, log.size, log.last]).to.deep.equal([0, 4_999, 5_000]);
    const read = log.reader();
    expect(Array.from({ length: 4_999 }, (_, i) => read(i)?.dataOffset)).to.deep.equal(Array.from({ length: 4_999 }, (_, i) => i + 2));
    log.insert(held('first', 1));
    expect([log.contiguous, log.size, log.last]).to.deep.equal([5_000, 5_000, 5_000]);
    expect(log.all().map((m) => m.dataOffset)).to.deep.equal(Array.from({ length: 5_000 }, (_, i) => i + 1));
    log.insert(held('later', 5_002));
    expect(log.all().at(-1)?.id).to.equal('later');
  });

  it('knows its last offset beyond a gap, and after the gap is filled', () => {
    const log = SideLog.of([held('a', 1), held('c', 3)]);
    expect(log.last).to.equal(3);
    log.insert(held('b', 2));
    expect([log.contiguous, log.last]).to.deep.equal([3, 3]);
    expect(new SideLog().last).to.equal(0);
  });
});
