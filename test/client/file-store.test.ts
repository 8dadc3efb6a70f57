import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { FileStore, LocalStoreError } from '../../src/client/file-store.js';
import type { LocalChatState } from '../../src/client/local-store.js';
import { growingState, sampleState } from './fixtures/states.js';
import { killChildren } from '../support/servers.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const CHILD = fileURLToPath(new URL('./fixtures/save-in-child.ts', import.meta.url));
const CHILD_DEADLINE_MS = 30_000;

describe('FileStore', () => {
  const directories: string[] = [];
  const children = new Set<ChildProcess>();

  async function tempDirectory(): Promise<string> {
    const directory = await mkdtemp(path.join(tmpdir(), 'file-store-'));
    directories.push(directory);
    return directory;
  }

  function spawnChild(args: string[]): ChildProcess {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, ...args], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    return child;
  }

  afterEach(async () => {
    await killChildren(children);
    children.clear();
    await Promise.all(directories.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  });

  it('loads exactly what it saved, Dates included, and undefined for a chat never saved', async () => {
    const store = new FileStore(path.join(await tempDirectory(), 'not', 'yet', 'there'));
    expect(await store.load('chat-1')).to.equal(undefined);

    await store.save(sampleState('chat-1'));
    const loaded = await store.load('chat-1');
    expect(loaded).to.deep.equal(sampleState('chat-1'));
    expect(loaded!.messages[0]!.sendTime).to.be.an.instanceOf(Date);
    expect(loaded!.beginTime).to.be.an.instanceOf(Date);
    expect(loaded).to.have.property('visitor');

    const bare: LocalChatState = { chatId: 'chat-2', messages: [], outbox: [] };
    await store.save(bare);
    const loadedBare = await new FileStore(store.directory).load('chat-2');
    expect(loadedBare).to.deep.equal(bare);
    expect(loadedBare).not.to.have.property('visitor');
    const cleared = { ...bare, visitor: undefined, beginTime: undefined };
    await store.save(cleared);
    expect(await store.load('chat-2')).to.deep.equal(cleared);
    expect(await store.load('chat-1')).to.deep.equal(sampleState('chat-1'));
  });

  it("keeps each message's seal as received, and loads a file saved before seals existed", async () => {
    const store = new FileStore(await tempDirectory());
    const sample = sampleState('sealed');
    const [v1, a1, ...rest] = sample.messages;
    // As the generated decoder gives them: a seal, or the key present and undefined (a server that seals nothing).
    const sealed = { ...sample, messages: [{ ...v1!, seal: 'k1.c2VhbA' }, { ...a1!, seal: undefined }, ...rest] };
    await store.save(sealed);
    expect(await new FileStore(store.directory).load('sealed')).to.deep.equal(sealed);

    const old = { version: 1, chatId: 'old', messages: [{ id: 'v1', dataOffset: 1, content: 'hi', messageType: 2, sendTime: null, senderId: 'v' }], outbox: [] };
    await writeFile(store.pathOf('old'), JSON.stringify(old));
    const loaded = await store.load('old');
    // A file saved before attachments existed loads with none.
    expect(loaded!.messages).to.deep.equal([{ ...old.messages[0], sendTime: undefined, attachments: [] }]);
    expect(loaded!.messages[0]).not.to.have.property('seal');
  });

  it('keeps chats with hostile ids apart and inside its directory', async () => {
    const root = await tempDirectory();
    const store = new FileStore(path.join(root, 'store'));
    const ids = [
      '../x', '../../x', '/etc/passwd', 'a/b', 'a\\b', '.', '..', '', 'x.json', 'A', 'a', '%61', '~a',
      'con', 'nul.txt', 'caf\u00e9', 'cafe\u0301', '\u0000', '\ud800', '\udc00', 'x'.repeat(100_000),
      'x'.repeat(100_000) + 'y', '\u{1f4e6}'.repeat(40),
    ];
    for (const id of ids) await store.save(sampleState(id));

    expect(await readdir(root)).to.deep.equal(['store']);
    const names = await readdir(path.join(root, 'store'));
    expect(names).to.have.length(ids.length);
    // Even case-folded, as on macOS and Windows, no two chats share a file.
    expect(new Set(names.map((n) => n.toLowerCase())).size).to.equal(ids.length);
    for (const name of names) expect(Buffer.byteLength(name)).to.be.at.most(255 - 21);
    for (const id of ids) expect(await store.load(id)).to.deep.equal(sampleState(id));
  });

  it('applies saves of one chat in call order, so the last one wins', async () => {
    const store = new FileStore(await tempDirectory());
    const count = 40;
    // Earlier states are bigger, so an unordered store would tend to finish them last.
    const states = Array.from({ length: count }, (_, i) => growingState('busy', i, count - i));
    const finished: number[] = [];
    const saves = states.map((state, i) => store.save(state).then(() => finished.push(i)));
    const other = store.save(sampleState('quiet'));
    const loadedAtOnce = store.load('busy');
    // Settle everything before asserting, so a failure leaves no write racing the cleanup.
    const settled = await Promise.allSettled([...saves, other, loadedAtOnce]);
    expect(settled.filter((s) => s.status === 'rejected')).to.deep.equal([]);

    expect(await loadedAtOnce, 'a load sees the saves called before it').to.deep.equal(states.at(-1));
    expect(finished).to.deep.equal([...states.keys()]);
    expect(await new FileStore(store.directory).load('busy')).to.deep.equal(states.at(-1));
    expect(await store.load('quiet')).to.deep.equal(sampleState('quiet'));
  });

  it('refuses to save an invalid Date and keeps the previous state', async () => {
    const store = new FileStore(await tempDirectory());
    await store.save(sampleState('c'));
    const bad = { ...sampleState('c'), beginTime: new Date(Number.NaN) };
    const error = await rejection(store.save(bad));
    expect(error).to.be.an.instanceOf(RangeError);
    expect(await store.load('c')).to.deep.equal(sampleState('c'));
  });

  it('gives another process the state a process saved before it exited', async () => {
    const directory = await tempDirectory();
    const child = spawnChild([directory, 'once', 'restart']);
    const stderr = collect(child);
    const [code] = await within(once(child, 'exit'), CHILD_DEADLINE_MS, 'the child to exit');
    expect(code, stderr()).to.equal(0);
    expect(await new FileStore(directory).load('restart')).to.deep.equal(sampleState('restart'));
  });

  it('leaves a whole state, no older than the last completed save, when killed mid-save', async () => {
    const directory = await tempDirectory();
    const killAfterSaves = [2, 5, 10, 20, 30, 45, 60, 80];
    let tempFilesLeft = 0;
    for (const [run, threshold] of killAfterSaves.entries()) {
      const child = spawnChild([directory, 'grow', 'crash', String(run)]);
      const stderr = collect(child);
      let completed = 0;
      const savedAtMs: number[] = [];
      const lines = createInterface({ input: child.stdout! });
      const reached = new Promise<number>((resolve, reject) => {
        lines.on('line', (line) => {
          const saved = /^saved (\d+)$/.exec(line);
          if (saved) completed = Math.max(completed, Number(saved[1]));
          savedAtMs.push(performance.now());
          if (completed === threshold) resolve(savedAtMs.at(-1)! - savedAtMs.at(-2)!);
        });
        child.once('exit', () => reject(new Error(`the writer exited early: ${stderr()}`)));
      });
      const saveMs = await within(reached, CHILD_DEADLINE_MS, `${threshold} completed saves`);
      // A kill right after a report hits the start of the next save; half the runs instead wait a
      // random part of one save's duration, so kills also land mid-write, mid-fsync, mid-rename.
      // The delay only picks the moment to kill: no result depends on it having passed.
      if (run % 2 === 1) await new Promise((resolve) => setTimeout(resolve, Math.random() * saveMs));
      child.kill('SIGKILL');
      // Lines still in the pipe were printed before the kill: those saves completed too.
      await within(once(child, 'close'), CHILD_DEADLINE_MS, 'the killed writer to close');
      expect(child.signalCode).to.equal('SIGKILL');

      tempFilesLeft += (await readdir(directory)).filter((n) => n.endsWith('.tmp')).length;
      const loaded = await new FileStore(directory).load('crash');
      expect(loaded, `run ${run}: nothing loaded`).not.to.equal(undefined);
      const k = loaded!.messages.length;
      const stale = `run ${run}: loaded state ${k} is older than completed save ${completed}`;
      expect(k, stale).to.be.at.least(completed);
      expect(loaded, `run ${run}: state ${k} is not one the writer saved`).to.deep.equal(
        growingState('crash', run, k),
      );
    }
    // Loading cleaned up whatever temporary files the kills left.
    expect(await readdir(directory), `${tempFilesLeft} temp files were left by kills`).to.deep.equal([
      'crash.json',
    ]);
  });

  describe('refuses a file it did not write', () => {
    const state = (fields: object) =>
      JSON.stringify({ version: 1, chatId: 'c', messages: [], outbox: [], ...fields });
    const message = { id: 'v1', dataOffset: 1, content: 'hi', messageType: 2, senderId: 'v' };
    // Each file, and the words its error must contain to show it was refused for the right reason.
    const cases: Record<string, [content: string, reason: string]> = {
      'torn JSON': [state({}).slice(0, 30), 'is not valid JSON'],
      'an empty file': ['', 'is not valid JSON'],
      'JSON that is not a chat state': ['{"hello":"world"}', 'has no format version'],
      'an array': ['[]', 'the file is not an object'],
      'a field of the wrong type': [state({ outbox: [{ id: 7 }] }), 'outbox[0].id is not a string'],
      'a time that is not ISO': [state({ beginTime: 'May 1' }), 'beginTime is not an ISO 8601'],
      'a time in milliseconds': [
        state({ messages: [{ ...message, sendTime: 1711929598123 }] }),
        'messages[0].sendTime is not an ISO 8601',
      ],
      'a newer format version': [JSON.stringify({ version: 2 }), 'has format version 2'],
      'a seal that is not a string': [state({ messages: [{ ...message, sendTime: null, seal: 7 }] }), 'messages[0].seal is not a string'],
      "another chat's file": [state({ chatId: 'd' }), 'holds chat "d", not "c"'],
    };
    for (const [name, [content, reason]] of Object.entries(cases)) {
      it(`such as ${name}, with a LocalStoreError naming the file`, async () => {
        const store = new FileStore(await tempDirectory());
        await store.save(sampleState('c'));
        await writeFile(store.pathOf('c'), content);
        const error = await rejection(store.load('c'));
        expect(error).to.be.an.instanceOf(LocalStoreError);
        expect((error as LocalStoreError).file).to.equal(store.pathOf('c'));
        expect((error as Error).message).to.contain(store.pathOf('c')).and.to.contain(reason);
      });
    }

    it('but reads a file with a valid message', async () => {
      const store = new FileStore(await tempDirectory());
      await writeFile(store.pathOf('c'), state({ messages: [{ ...message, sendTime: null }] }));
      expect(await store.load('c')).to.deep.equal({
        chatId: 'c',
        messages: [{ ...message, sendTime: undefined, attachments: [] }],
        outbox: [],
      });
    });
  });
});

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

/** Rejects if `promise` has not settled within `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`gave up waiting ${ms} ms for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** The child's stderr so far, for failure messages. */
function collect(child: ChildProcess): () => string {
  let text = '';
  child.stderr!.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return () => text;
}
