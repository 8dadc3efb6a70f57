import { expect } from 'chai';
import { mergeSide } from '../../src/domain/merge.js';
import type { Message } from '../../src/domain/message.js';
import { held } from '../support/domain.js';

/** Merges as the chat does: known ids are looked up among the held messages. */
const merge = (server: Message[], upload: Message[]) => mergeSide(server, upload, (id) => server.find((m) => m.id === id));

const layout = (messages: { id: string; dataOffset: number }[]) => messages.map((m) => `${m.dataOffset}:${m.id}`);

describe('mergeSide', () => {
  it('places uploaded messages at the free offsets they claim', () => {
    const merged = merge([held('a', 1), held('b', 2)], [held('d', 4), held('c', 3)]);
    expect(layout(merged.messages)).to.deep.equal(['1:a', '2:b', '3:c', '4:d']);
    expect(merged).to.include({ added: 2, displaced: 0 });
  });

  it('keeps gaps: an upload of a later part waits for the earlier one', () => {
    const merged = merge([], [held('c', 3)]);
    expect(layout(merged.messages)).to.deep.equal(['3:c']);
  });

  it('never moves a held message; a claimed offset that is taken moves the upload past the end, in order', () => {
    const server = [held('a', 1), held('y5', 2), held('y6', 3)];
    const upload = [held('x2', 2), held('x3', 3), held('x4', 4)];
    const merged = merge(server, upload);
    expect(layout(merged.messages)).to.deep.equal(['1:a', '2:y5', '3:y6', '4:x2', '5:x3', '6:x4']);
    expect(merged).to.include({ added: 3, displaced: 3 });
  });

  it('moves everything after the first taken offset, even claims of free offsets, to keep the upload in order', () => {
    const merged = merge([held('a', 1), held('b', 3)], [held('x', 2), held('y', 3), held('z', 4)]);
    expect(layout(merged.messages)).to.deep.equal(['1:a', '2:x', '3:b', '4:y', '5:z']);
    expect(merged.displaced).to.equal(2);
  });

  it('places a new message only above the held messages the upload lists before it (the uploader\'s order)', () => {
    // The server moved m1 to 4 in an earlier merge; the uploader still holds m1 at 2, m2 at 3.
    const server = [held('a', 1), held('b', 2), held('c', 3), held('m1', 4)];
    const merged = merge(server, [held('a', 1), held('m1', 2), held('m2', 3)]);
    expect(layout(merged.messages)).to.deep.equal(['1:a', '2:b', '3:c', '4:m1', '5:m2']);
    const gapped = merge([held('a', 1), held('m1', 4)], [held('m1', 2), held('m2', 3)]);
    expect(layout(gapped.messages)).to.deep.equal(['1:a', '4:m1', '5:m2']);
    expect(gapped.displaced).to.equal(1);
  });
});
