import { expect } from 'chai';
import { mergeSide } from '../../src/domain/merge.js';
import { held } from '../support/domain.js';

const layout = (messages: { id: string; dataOffset: number }[]) => messages.map((m) => `${m.dataOffset}:${m.id}`);

describe('mergeSide', () => {
  it('places uploaded messages at the free offsets they claim', () => {
    const merged = mergeSide([held('a', 1), held('b', 2)], [held('d', 4), held('c', 3)]);
    expect(layout(merged.messages)).to.deep.equal(['1:a', '2:b', '3:c', '4:d']);
    expect(merged).to.include({ added: 2, displaced: 0 });
  });

  it('keeps gaps: an upload of a later part waits for the earlier one', () => {
    const merged = mergeSide([], [held('c', 3)]);
    expect(layout(merged.messages)).to.deep.equal(['3:c']);
  });

  it('never moves a held message; a claimed offset that is taken moves the upload past the end, in order', () => {
    const server = [held('a', 1), held('y5', 2), held('y6', 3)];
    const upload = [held('x2', 2), held('x3', 3), held('x4', 4)];
    const merged = mergeSide(server, upload);
    expect(layout(merged.messages)).to.deep.equal(['1:a', '2:y5', '3:y6', '4:x2', '5:x3', '6:x4']);
    expect(merged).to.include({ added: 3, displaced: 3 });
  });

  it('moves everything after the first taken offset, even claims of free offsets, to keep the upload in order', () => {
    const merged = mergeSide([held('a', 1), held('b', 3)], [held('x', 2), held('y', 3), held('z', 4)]);
    expect(layout(merged.messages)).to.deep.equal(['1:a', '2:x', '3:b', '4:y', '5:z']);
    expect(merged.displaced).to.equal(2);
  });
});
