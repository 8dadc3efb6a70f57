import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { type ServerProcess, spawnServer } from '../support/servers.js';

const SCRIPT = fileURLToPath(new URL('./chat_client.py', import.meta.url));
const INSTALL = 'apt-get install -y python3-grpcio python3-grpc-tools';
/** `python3` first; Debian's own interpreter when `python3` is another one (pyenv) without grpc. */
const PYTHON_CANDIDATES = [process.env.PYTHON, 'python3', '/usr/bin/python3'].filter((p): p is string => !!p);

/** The first candidate python that can import grpc and grpc_tools' protoc, or a failure message. */
function findPython(): { python: string } | { problem: string } {
  const tried: string[] = [];
  for (const python of [...new Set(PYTHON_CANDIDATES)]) {
    const probe = spawnSync(python, ['-c', 'import grpc, grpc_tools.protoc'], { encoding: 'utf8' });
    if (probe.status === 0) return { python };
    tried.push(`${python}: ${probe.error?.message ?? probe.stderr.trim().split('\n').at(-1)}`);
  }
  return { problem: `no python3 with grpc and grpc_tools (tried ${tried.join('; ')}). Run: ${INSTALL}` };
}

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

    const child = spawn(found.python, [SCRIPT, a.address, b.address], { stdio: ['pipe', 'pipe', 'pipe'] });
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
