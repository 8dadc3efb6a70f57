import { expect } from 'chai';
import { type ChatMessage, MessageType } from '../../generated/chat/v1/chat.js';
import { backoffDelayMs } from '../../src/client/backoff.js';
import { LocalCopy } from '../../src/client/local-copy.js';
import { splitUploads } from '../../src/client/upload.js';

const msg = (id: string, dataOffset: number, type = MessageType.MESSAGE_TYPE_VISITOR, seconds = dataOffset): ChatMessage => ({
  id, dataOffset, content: `text of ${id}`, messageType: type, sendTime: new Date(seconds * 1000), senderId: '', attachments: [],
});
const agentMsg = (id: string, dataOffset: number, seconds = dataOffset) => msg(id, dataOffset, MessageType.MESSAGE_TYPE_AGENT, seconds);

describe('LocalCopy', () => {
  it('counts contiguous prefixes per side; a message beyond a gap does not advance them', () => {
    const copy = new LocalCopy([msg('v1', 1), msg('v3', 3), agentMsg('a1', 1)]);
    expect(copy.offsets).to.deep.equal({ visitor: 1, agent: 1 });
    expect(copy.take([msg('v2', 2)]).map((m) => m.id)).to.deep.equal(['v2']);
    expect(copy.offsets).to.deep.equal({ visitor: 3, agent: 1 });
  });

  it('takes a message once, however often it is delivered', () => {
    const copy = new LocalCopy();
    expect(copy.take([msg('v1', 1), msg('v1', 1)])).to.have.length(1);
    expect(copy.take([msg('v1', 1)])).to.have.length(0);
    expect(copy.all()).to.have.length(1);
  });

  it('orders the conversation by send time across sides, visitor first on a tie', () => {
    const visitorAt = (id: string, offset: number, seconds: number) => msg(id, offset, MessageType.MESSAGE_TYPE_VISITOR, seconds);
    const copy = new LocalCopy([agentMsg('a1', 1, 2), visitorAt('v1', 1, 1), visitorAt('v2', 2, 3), agentMsg('a2', 2, 3)]);
    expect(copy.conversation().map((m) => m.id)).to.deep.equal(['v1', 'a1', 'v2', 'a2']);
  });

  it('keeps a message whose offset the server gave to another as a stray, never dropping it', () => {
    const copy = new LocalCopy([msg('v1', 1), msg('x', 2)]);
    copy.take([msg('y', 2)]);
    expect(copy.strayMessages.map((m) => m.id)).to.deep.equal(['x']);
    expect(copy.offsets.visitor).to.equal(2);
    copy.take([msg('x', 3)]); // the server placed it anew
    expect(copy.strayMessages).to.have.length(0);
    expect(copy.conversation().map((m) => `${m.id}@${m.dataOffset}`)).to.deep.equal(['v1@1', 'y@2', 'x@3']);
  });

  it('adopts the server\'s complete view, reporting only what it did not hold', () => {
    const copy = new LocalCopy([msg('v1', 1), msg('x', 2)]);
    const fresh = copy.adopt([msg('v1', 1), msg('y', 2), msg('x', 3), agentMsg('a1', 1)]);
    expect(fresh.map((m) => m.id)).to.deep.equal(['y', 'a1']);
    expect(copy.offsets).to.deep.equal({ visitor: 3, agent: 1 });
  });

  it("uploads each message with the server's seal as received, renumbered ones too", () => {
    const sealed = (m: ChatMessage): ChatMessage => ({ ...m, seal: `k1.${m.id}` });
    const copy = new LocalCopy([sealed(msg('v1', 1)), sealed(msg('x', 2))]);
    copy.take([sealed(msg('y', 2))]); // x becomes a stray, renumbered on upload
    const seals = (messages: ChatMessage[]) => messages.map((m) => `${m.id}@${m.dataOffset}:${m.seal}`);
    expect(seals(copy.whole())).to.deep.equal(['v1@1:k1.v1', 'y@2:k1.y', 'x@3:k1.x']);
    expect(seals(copy.above({ visitor: 1, agent: 0 }))).to.deep.equal(['y@2:k1.y', 'x@3:k1.x']);
  });

  it('uploads only what lies above the server\'s offsets, or everything for -1/-1', () => {
    const copy = new LocalCopy([msg('v1', 1), msg('v2', 2), agentMsg('a1', 1), agentMsg('a2', 2)]);
    expect(copy.above({ visitor: 1, agent: 2 }).map((m) => m.id)).to.deep.equal(['v2']);
    expect(copy.above({ visitor: 0, agent: 0 }).map((m) => m.id)).to.deep.equal(['v1', 'a1', 'v2', 'a2']);
  });

  it('lists what lies above the server for a copy of 200,000 messages (no argument list that large)', () => {
    const copy = new LocalCopy(Array.from({ length: 200_000 }, (_, i) => msg(`v${i + 1}`, i + 1)));
    expect(copy.above({ visitor: 0, agent: 0 })).to.have.length(200_000);
    expect(copy.above({ visitor: 199_999, agent: 0 }).map((m) => m.id)).to.deep.equal(['v200000']);
  });

  it('uploads the whole copy renumbered without gaps, so a new server gets no hole', () => {
    const copy = new LocalCopy([msg('v1', 1), msg('own', 7), agentMsg('a2', 2)]);
    expect(copy.whole().map((m) => `${m.id}@${m.dataOffset}`)).to.deep.equal(['v1@1', 'a2@1', 'own@2']);
    expect(copy.offsets, 'the copy itself keeps the server\'s placement').to.deep.equal({ visitor: 1, agent: 0 });
  });

  it('uploads strays after the placed messages with fresh offsets: never one claimed twice, never a hole', () => {
    const copy = new LocalCopy([msg('v1', 1), msg('x', 2)]);
    copy.take([msg('y', 2)]);
    copy.take([msg('z', 2)]); // x and y, both once at 2, are strays now
    const claims = (messages: { id: string; dataOffset: number }[]) => messages.map((m) => `${m.id}@${m.dataOffset}`);
    expect(claims(copy.whole())).to.deep.equal(['v1@1', 'z@2', 'x@3', 'y@4']);
    expect(claims(copy.above({ visitor: 2, agent: 0 }))).to.deep.equal(['x@3', 'y@4']);

    // A truncated rebuild answer unplaces everything; own sends once held beyond a gap (at 4
    // and 5, nothing at 3) must not claim 4 and 5 on a new server, where the next send would
    // take 3 and land before them.
    const sender = new LocalCopy([agentMsg('a1', 1), agentMsg('own1', 3), agentMsg('own2', 4)]);
    sender.unplaceAll();
    expect(claims(sender.whole())).to.deep.equal(['a1@1', 'own1@2', 'own2@3']);
  });
});

describe('splitUploads', () => {
  it('keeps every upload under the byte limit, in order, with at least one message of its own each', () => {
    const messages = Array.from({ length: 10 }, (_, i) => ({ ...msg(`m${i}`, i + 1), content: 'x'.repeat(1_000) }));
    const uploads = splitUploads(messages, 4_000);
    // Each upload after the first repeats one message (the side's last one) before its own.
    expect(uploads.map((upload, i) => upload.slice(i === 0 ? 0 : 1)).flat().map((m) => m.id)).to.deep.equal(messages.map((m) => m.id));
    expect(uploads.length).to.be.greaterThan(3);
    for (const [i, upload] of uploads.entries()) expect(upload.length - (i === 0 ? 0 : 1)).to.be.within(1, 2);
    expect(splitUploads(messages.slice(0, 1), 10)).to.have.length(1);
  });

  it('begins every upload after the first with the last message of each side sent before it', () => {
    const big = (m: ChatMessage) => ({ ...m, content: 'x'.repeat(1_000) });
    const messages = [msg('v1', 1), agentMsg('a1', 1), msg('v2', 2), msg('v3', 3), agentMsg('a2', 2), msg('v4', 4)].map(big);
    const uploads = splitUploads(messages, 3_300);
    expect(uploads.map((upload) => upload.map((m) => m.id))).to.deep.equal([
      ['v1', 'a1'],
      ['v1', 'a1', 'v2'],
      ['v2', 'a1', 'v3'],
      ['v3', 'a1', 'a2'],
      ['v3', 'a2', 'v4'],
    ]);
  });
});

describe('backoffDelayMs', () => {
  it('grows the ceiling exponentially up to the cap, with full jitter below it', () => {
    const options = { initialMs: 10, maxMs: 100, multiplier: 2 };
    expect([0, 1, 2, 3, 4, 10].map((attempt) => backoffDelayMs(attempt, options, () => 0.999_999))).to.deep.equal([9, 19, 39, 79, 99, 99]);
    expect(backoffDelayMs(5, options, () => 0)).to.equal(0);
  });
});
