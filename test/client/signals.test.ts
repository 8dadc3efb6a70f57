import { expect } from 'chai';
import { ChatSdkError } from '../../src/client/errors.js';
import { SerialQueue } from '../../src/client/serial.js';
import { linkSignals } from '../../src/client/signals.js';

describe('SerialQueue', () => {
  it('runs tasks one at a time in order; one whose signal fires while it waits rejects at once and never runs', async () => {
    const queue = new SerialQueue();
    const ran: string[] = [];
    let release!: () => void;
    const first = queue.run(() => new Promise<void>((resolve) => (release = () => (ran.push('first'), resolve()))));
    const stop = new AbortController();
    const second = queue.run(async () => void ran.push('second'), stop.signal);
    const third = queue.run(async () => void ran.push('third'));
    stop.abort();
    const error = await second.catch((e: unknown) => e);
    expect(error).to.be.instanceOf(ChatSdkError).and.include({ kind: 'aborted' });
    expect(ran, 'the first still holds the queue').to.deep.equal([]);
    release();
    await Promise.all([first, third]);
    expect(ran).to.deep.equal(['first', 'third']);
  });
});

describe('linkSignals', () => {
  it('fires when any source fires, with its reason, and detaches from the sources when disposed', () => {
    const a = new AbortController();
    const b = new AbortController();
    const link = linkSignals(a.signal, undefined, b.signal);
    b.abort('b went');
    expect(link.signal.aborted).to.equal(true);
    expect(link.signal.reason).to.equal('b went');
    const other = linkSignals(a.signal);
    other.dispose();
    a.abort();
    expect(other.signal.aborted, 'disposed: no longer linked').to.equal(false);
  });

  it('is aborted at once when a source already is', () => {
    expect(linkSignals(AbortSignal.abort('early')).signal.reason).to.equal('early');
  });
});
