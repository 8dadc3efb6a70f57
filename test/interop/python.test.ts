import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { type ServerProcess, spawnServer } from '../support/servers.js';
import { findPython } from './find-python.js';
import { testKeysJson } from '../support/security.js';

const SCRIPT = fileURLToPath(new URL('./chat_client.py', import.meta.url));

describe('a Python client compiled only from proto/chat/v1/chat.proto', function () {
  this.timeout(60_000);
  const servers: ServerProcess[] = [];
  let client: ChildProcess | undefined;

  afterEach(async () => {
    if (client && client.exitCode === null && client.signalCode === null) {
      const exited = once(client, 'exit');
      client.kill('SIGKILL');
      await exited;
    }
    client = undefined;
    await Promise.all(servers.splice(0).map((server) => server.kill()));
  });

  it('runs the original flows on A, fails over to B, rebuilds and converges with the codes and offsets of docs/reference.md', async () => {
    const found = findPython();
    if ('problem' in found) expect.fail(found.problem);

    const a = await spawnServer();
    servers.push(a);
    const b = await spawnServer();
    servers.push(b);

    // The servers are secure (the test keys): the client mints each party's token and seals its hand-built copies.
    const child = spawn(found.python, [SCRIPT, a.address, b.address], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, CHAT_TEST_KEYS: testKeysJson() } });
    client = child;
    let stdout = '';
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>;
    const output = () => `\n--- python stdout ---\n${stdout}--- python stderr ---\n${stderr}`;

    const ready = new Promise<void>((resolve, reject) => {
      createInterface({ input: child.stdout! }).on('line', (line) => {
        stdout += `${line}\n`;
        if (line === 'READY_FOR_FAILOVER') resolve();
      });
      void exited.then(([code, signal]) =>
        reject(new Error(`the python client exited (${code ?? signal}) before READY_FOR_FAILOVER${output()}`)),
      );
    });
    await ready;

    await a.kill();
    child.stdin!.end('server A is gone\n');

    const [code, signal] = await exited;
    expect(code, `the python client exited with ${code ?? signal}${output()}`).to.equal(0);
    expect(stdout).to.contain('PASS:');
  });
});
