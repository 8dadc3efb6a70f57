import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import fc from 'fast-check';
import { MessageType } from '../../src/domain/message.js';
import { type Sealable, sealInput, Sealer } from '../../src/domain/seal.js';
import { ChatStore, type ForgeryReport } from '../../src/domain/store.js';
import { DOMAIN_LIMITS, held, refusal, steppingClock, submission } from '../support/domain.js';

const k1 = randomBytes(32);
const k2 = randomBytes(32);
const sealer = (current = 'k1', keys: [string, Buffer][] = [['k1', k1]]) => new Sealer({ current, keys: new Map(keys) });

const sample: Sealable = { id: 'm1', type: MessageType.Agent, senderId: 'ag', content: 'hello', sendTime: new Date(Date.UTC(2026, 0, 1)) };

function sealedStore(options: { sealer?: Sealer; forgeries?: ForgeryReport[] } = {}): ChatStore {
  let epochs = 0;
  return new ChatStore(DOMAIN_LIMITS, steppingClock(), () => `e${++epochs}`, {
    sealer: options.sealer ?? sealer(),
    onForgery: (report) => options.forgeries?.push(report),
  });
}

describe('Sealer', () => {
  it('gives "<key id>.<base64url HMAC-SHA256>" under the current key, and accepts its own seal', () => {
    const seal = sealer().seal('c', sample);
    expect(seal).to.match(/^k1\.[A-Za-z0-9_-]{43}$/);
    expect(sealer().problem('c', sample, seal)).to.equal(undefined);
  });

  it('refuses no seal, an unknown key id and a seal of anything else, each with its reason', () => {
    const s = sealer();
    const seal = s.seal('c', sample);
    expect(s.problem('c', sample, undefined)).to.equal('has no seal');
    expect(s.problem('c', sample, '')).to.equal('has no seal');
    expect(s.problem('c', sample, `k0${seal.slice(2)}`)).to.equal('is sealed under a key this server does not know ("k0")');
    expect(s.problem('c', sample, 'garbage')).to.match(/^has a seal that does not match it: /);
    expect(s.problem('c', sample, `${seal}!`), 'a stray character base64url decoding would skip').to.match(/^has a seal that does not match it: /);
    const altered: Sealable[] = [
      { ...sample, id: 'm2' },
      { ...sample, type: MessageType.Bot },
      { ...sample, senderId: 'other' },
      { ...sample, content: 'hellO' },
      { ...sample, sendTime: new Date(sample.sendTime.getTime() + 1) },
    ];
    for (const message of altered) expect(s.problem('c', message, seal)).to.match(/^has a seal that does not match it: /);
    expect(s.problem('c2', sample, seal)).to.match(/^has a seal that does not match it: /);
    expect(sealer('k1', [['k1', k2]]).problem('c', sample, seal), 'same id, another key').to.match(/does not match/);
  });

  it('rotates: a new current key seals, an old one still verifies until removed', () => {
    const old = sealer().seal('c', sample);
    const rotated = sealer('k2', [['k1', k1], ['k2', k2]]);
    expect(rotated.seal('c', sample)).to.match(/^k2\./);
    expect(rotated.problem('c', sample, old)).to.equal(undefined);
    expect(rotated.keyIds).to.deep.equal(['k2', 'k1']);
    expect(sealer('k2', [['k2', k2]]).problem('c', sample, old)).to.equal('is sealed under a key this server does not know ("k1")');
  });

  it('refuses keys whose current key is missing', () => {
    expect(() => sealer('k9')).to.throw(RangeError, /k9/);
  });

  it('length-prefixes every field, so no two different messages give the same input', () => {
    const text = fc.string({ unit: 'grapheme', maxLength: 6 });
    const message = fc.record({ chatId: text, id: text, type: fc.constantFrom(1, 2, 3, 4), senderId: text, content: text, ms: fc.integer({ min: 0, max: 4e12 }) });
    const input = (m: { chatId: string; id: string; type: number; senderId: string; content: string; ms: number }) =>
      sealInput(m.chatId, { id: m.id, type: m.type, senderId: m.senderId, content: m.content, sendTime: new Date(m.ms) });
    fc.assert(
      fc.property(message, message, (a, b) => {
        const same = JSON.stringify(a) === JSON.stringify(b);
        expect(input(a).equals(input(b))).to.equal(same);
      }),
    );
    // The cases a plain concatenation would confuse.
    const at = new Date(0);
    expect(sealInput('ab', { ...sample, id: 'c', sendTime: at }).equals(sealInput('a', { ...sample, id: 'bc', sendTime: at }))).to.equal(false);
    expect(sealInput('c', { ...sample, senderId: '', content: 'x' }).equals(sealInput('c', { ...sample, senderId: 'x', content: '' }))).to.equal(false);
  });
});

describe('ChatStore with a sealer', () => {
  it("seals each send as stored (the server's time, the final sender), and a resend answers the same seal", () => {
    const s = sealer();
    const store = sealedStore({ sealer: s });
    store.getNewMessages('c', { visitor: 0, agent: 0 });
    const sent = store.addAgentMessage({ chatId: 'c', agentId: 'ag', caller: { visitor: 0, agent: 0 }, message: submission('a1') });
    if (sent.rebuildRequired) return expect.fail('rebuild required');
    expect(sent.message.senderId).to.equal('ag');
    expect(s.problem('c', sent.message, sent.message.seal)).to.equal(undefined);
    const again = store.addAgentMessage({ chatId: 'c', agentId: 'ag', caller: { visitor: 0, agent: 0 }, message: submission('a1') });
    expect(again.rebuildRequired || again.message.seal).to.equal(sent.message.seal);
  });

  it('takes back sealed messages, refuses (PERMISSION_DENIED) an upload adding an unsealed one, and reports it', () => {
    const s = sealer();
    const forgeries: ForgeryReport[] = [];
    const store = sealedStore({ sealer: s, forgeries });
    const good = { ...held('v1', 1), senderId: 'v' };
    const sealed = { ...good, seal: s.seal('c', good) };
    const forged = { ...held('a1', 1, MessageType.Agent), senderId: 'ag' };
    const error = refusal(() => store.rebuild({ id: 'c', visitor: undefined, beginTime: undefined, messages: [sealed, forged, { ...forged, id: 'a2', dataOffset: 2 }] }));
    expect(error.kind).to.equal('permission-denied');
    expect(error.message).to.match(/^chat\.messages\[1\] \(id "a1"\) has no seal \(and 1 more\)/);
    expect(forgeries).to.deep.equal([{ chatId: 'c', refused: 2 }]);
    expect(store.size, 'no chat created').to.equal(0);

    const taken = store.rebuild({ id: 'c', visitor: undefined, beginTime: undefined, messages: [sealed] });
    expect(taken.added).to.equal(1);
    expect(taken.messages[0]!.seal).to.equal(sealed.seal);
    // Held messages named again are compared as before: no seal needed.
    expect(store.rebuild({ id: 'c', visitor: undefined, beginTime: undefined, messages: [good] }).added).to.equal(0);
  });

  it('without a sealer, seals nothing and checks nothing', () => {
    let epochs = 0;
    const store = new ChatStore(DOMAIN_LIMITS, steppingClock(), () => `e${++epochs}`);
    store.getNewMessages('c', { visitor: 0, agent: 0 });
    const sent = store.addVisitorMessage({ chatId: 'c', caller: { visitor: 0, agent: 0 }, message: submission('v1') });
    expect(sent.rebuildRequired || 'seal' in sent.message).to.equal(false);
    expect(store.rebuild({ id: 'c', visitor: undefined, beginTime: undefined, messages: [held('a1', 1, MessageType.Agent)] }).added).to.equal(1);
  });
});
