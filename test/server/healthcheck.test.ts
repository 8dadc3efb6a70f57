import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { expect } from 'chai';
import { HEALTHCHECK_COMMAND, REPO, type ServerProcess, spawnServer } from '../support/servers.js';

const [, PROBE] = HEALTHCHECK_COMMAND;

/** Runs the health probe to its end: exit code, output, and how long it took. */
async function probe(args: readonly string[], env: Record<string, string> = {}) {
  const started = performance.now();
  const child = spawn(process.execPath, [PROBE, ...args], { cwd: REPO, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr, ms: performance.now() - started };
}

/** A TCP listener on 127.0.0.1 that accepts connections and never says a word (a hung server). */
async function silentListener(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const listener: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  return {
    port: (listener.address() as { port: number }).port,
    async close() {
      for (const socket of sockets) socket.destroy();
      listener.close();
      await once(listener, 'close');
    },
  };
}

/** A port nothing listens on (one the kernel just handed out and took back). */
async function deadPort(): Promise<number> {
  const listener = await silentListener();
  await listener.close();
  return listener.port;
}

describe('the health probe (the Dockerfile HEALTHCHECK)', () => {
  let server: ServerProcess | undefined;
  afterEach(async () => server?.kill());

  it('exits 0 for a serving server, found from HOST and PORT as the server reads them', async () => {
    server = await spawnServer();
    const byFlag = await probe(['--address', server.address]);
    expect(byFlag.code, byFlag.stderr).to.equal(0);
    expect(byFlag.stdout).to.equal(`healthcheck: ${server.address} is SERVING\n`);
    const byEnv = await probe([], { HOST: '0.0.0.0', PORT: String(server.port) });
    expect(byEnv.code, byEnv.stderr).to.equal(0);
    expect((await probe(['--address', server.address, '--service', 'chat.v1.ChatService'])).code).to.equal(0);
  });

  it('exits 1 for a draining server (NOT_SERVING)', async () => {
    server = await spawnServer({ DRAIN_MS: '600000' });
    process.kill(server.pid, 'SIGTERM');
    await server.waitForLog('shutting down');
    const draining = await probe(['--address', server.address]);
    expect(draining.code).to.equal(1);
    expect(draining.stderr).to.equal(`healthcheck: ${server.address} is NOT_SERVING\n`);
  });

  it('exits 1 at once when nothing listens', async () => {
    const port = await deadPort();
    const dead = await probe(['--address', `127.0.0.1:${port}`, '--timeout-ms', '20000']);
    expect(dead.code).to.equal(1);
    expect(dead.stderr).to.match(new RegExp(`^healthcheck: 127\\.0\\.0\\.1:${port} did not answer: UNAVAILABLE `));
    expect(dead.ms, 'well before its timeout').to.be.below(15_000);
  });

  it('exits 1 at its timeout when the server does not answer', async () => {
    const hung = await silentListener();
    try {
      const silent = await probe(['--address', `127.0.0.1:${hung.port}`, '--timeout-ms', '1000']);
      expect(silent.code).to.equal(1);
      expect(silent.stderr).to.match(/did not answer: DEADLINE_EXCEEDED /);
      expect(silent.ms).to.be.at.least(1000).and.below(15_000);
    } finally {
      await hung.close();
    }
  });
});
