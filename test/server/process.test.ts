import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { credentials, Metadata, status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { ResultCode } from '../../generated/chat/v1/chat.js';
import { HealthCheckResponse_ServingStatus, HealthClient } from '../../generated/health/v1/health.js';
import { DEFAULT_CONFIG } from '../../src/server/config.js';
import { chatApi } from '../support/chat-api.js';
import { withPortTaken } from '../support/ports.js';
import { PRODUCTION_COMMAND, REPO, type ServerProcess, spawnServer, testClient } from '../support/servers.js';

const [, MAIN] = PRODUCTION_COMMAND;
const VERSION = (JSON.parse(readFileSync(`${REPO}/package.json`, 'utf8')) as { version: string }).version;

/** Runs the production command to its end (for settings it refuses, --help, --version); insecure unless `env` says otherwise. */
function run(args: readonly string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [MAIN, ...args], { cwd: REPO, env: { ...process.env, INSECURE: 'true', ...env }, encoding: 'utf8', timeout: 30_000 });
}

/** Runs `use` with a temporary seal keys file holding `keys` (and `current`), removed afterwards. */
async function withSealKeys<T>(content: { current: string; keys: Record<string, string> }, use: (path: string) => T | Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'chat-seal-'));
  const path = join(dir, 'seal-keys.json');
  writeFileSync(path, JSON.stringify(content));
  try {
    return await use(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Asserts the run refused a setting: status 2 and exactly one line on stderr, no stack. */
function expectRefused(outcome: ReturnType<typeof run>): string {
  expect(outcome.status, outcome.stderr).to.equal(2);
  const lines = outcome.stderr.split('\n').filter((line) => line !== '');
  expect(lines, outcome.stderr).to.have.length(1);
  expect(lines[0]).to.match(/^chat-rebuild: /);
  expect(lines[0]).not.to.match(/\bat \S+:\d+/);
  return lines[0]!;
}

/** The serving status of `service` in the server's health, as Check answers it. */
async function healthOf(address: string, service: string): Promise<HealthCheckResponse_ServingStatus> {
  const health = new HealthClient(address, credentials.createInsecure());
  try {
    return await new Promise((resolve, reject) =>
      health.check({ service }, new Metadata(), { deadline: Date.now() + 10_000 }, (error, response) => (error ? reject(error) : resolve(response.status))),
    );
  } finally {
    health.close();
  }
}

/**
 * Reads chat `chatId` over a new connection (a channel of its own: grpc-js would otherwise
 * share the test's open one): succeeds while the server serves, fails with its status when it
 * does not.
 */
async function readOverNewConnection(address: string, chatId: string): Promise<ResultCode> {
  const client = testClient(address, { options: { 'grpc.use_local_subchannel_pool': 1 } });
  try {
    return (await chatApi(client).getNewMessage({ chatId, visitorOffset: 0, agentOffset: 0 })).code;
  } finally {
    client.close();
  }
}

/**
 * Sends `signal` again each time the server takes it for a repeat of the one before (npm
 * forwards what a process-group kill also delivers, and the server counts those once), until
 * the server logs `next`.
 */
async function signalUntil(server: ServerProcess, signal: NodeJS.Signals, next: string): Promise<Record<string, unknown>> {
  const REPEAT = 'signal taken as a repeat';
  const repeats = () => server.logs.filter((l) => l.msg === REPEAT).length;
  const logged = server.waitForLog(next);
  for (;;) {
    const before = repeats();
    process.kill(server.pid, signal);
    const repeated = server.waitForLog((l) => l.msg === REPEAT && repeats() > before);
    repeated.catch(() => {}); // still waiting when the step came first: it ends when the server exits
    const outcome = await Promise.race([logged.then((entry) => ({ entry })), repeated.then(() => undefined)]);
    if (outcome) return outcome.entry;
  }
}

describe('the server process', () => {
  let server: ServerProcess | undefined;
  afterEach(async () => server?.kill());

  it('logs its effective configuration, version and pid once, serves, and stops cleanly on SIGTERM', async () => {
    server = await spawnServer({ MAX_CONTENT_BYTES: '1000', DRAIN_MS: '0' });
    const started = server.logs.filter((l) => l.msg === 'chat server listening');
    expect(started).to.have.length(1);
    expect(started[0]!.config).to.include({ host: '127.0.0.1', maxContentBytes: 1000, drainMs: 0 });
    expect(started[0]).to.include({ version: VERSION, pid: server.child.pid, seals: 'on', insecure: false, metrics: 'off' });

    const client = testClient(server.address);
    const read = await chatApi(client).getNewMessage({ chatId: 'p', visitorOffset: 0, agentOffset: 0 });
    expect(read.code).to.equal(ResultCode.RESULT_CODE_REBUILD_REQUIRED);
    client.close();

    expect(await server.terminate()).to.equal(0);
    expect(server.logs.map((l) => l.msg)).to.include.members(['shutting down', 'listener closed', 'stopped']);
  });

  it('listens on the PORT it is given', async () => {
    const probe = await spawnServer();
    const port = probe.port;
    await probe.kill();
    server = await spawnServer({ PORT: String(port) });
    expect(server.port).to.equal(port);
  });

  describe('on SIGTERM or SIGINT', () => {
    it('drains: health says NOT_SERVING while calls are still served; a second signal ends the drain, the listener closes, and it exits 0', async () => {
      server = await spawnServer({ DRAIN_MS: '600000', SHUTDOWN_GRACE_MS: '5000' });
      expect(await healthOf(server.address, '')).to.equal(HealthCheckResponse_ServingStatus.SERVING);
      const client = testClient(server.address);
      await chatApi(client).getNewMessage({ chatId: 'd', visitorOffset: 0, agentOffset: 0 });

      process.kill(server.pid, 'SIGTERM');
      expect(await server.waitForLog('shutting down')).to.include({ signal: 'SIGTERM', drainMs: 600_000, shutdownGraceMs: 5000 });
      expect(await healthOf(server.address, '')).to.equal(HealthCheckResponse_ServingStatus.NOT_SERVING);
      expect(await healthOf(server.address, 'chat.v1.ChatService')).to.equal(HealthCheckResponse_ServingStatus.NOT_SERVING);
      const during = await chatApi(client).getNewMessage({ chatId: 'd1', visitorOffset: 0, agentOffset: 0 });
      expect(during.code, 'a call on an open connection during the drain').to.equal(ResultCode.RESULT_CODE_REBUILD_REQUIRED);
      expect(await readOverNewConnection(server.address, 'd2'), 'a new connection during the drain').to.equal(ResultCode.RESULT_CODE_REBUILD_REQUIRED);

      expect(await signalUntil(server, 'SIGTERM', 'drain cut short')).to.include({ signal: 'SIGTERM' });
      await server.waitForLog('listener closed');
      const after = await readOverNewConnection(server.address, 'd').then(
        () => undefined,
        (error: { code: status }) => error.code,
      );
      expect(after, 'a new connection after the drain').to.equal(status.UNAVAILABLE);
      client.close();
      expect(await server.exited).to.equal(0);
      expect(server.logs.at(-1)).to.include({ msg: 'stopped' });
    });

    it('ends the drain after drain-ms by itself, and exits 0', async () => {
      server = await spawnServer({ DRAIN_MS: '300' });
      const signalled = performance.now();
      process.kill(server.pid, 'SIGINT');
      expect(await server.exited).to.equal(0);
      const elapsedMs = performance.now() - signalled;
      const messages = server.logs.map((l) => l.msg);
      expect(messages.slice(messages.indexOf('shutting down'))).to.deep.equal(['shutting down', 'drain over', 'listener closed', 'stopped']);
      expect(elapsedMs, 'from the signal to the exit').to.be.at.least(300);
    });
  });

  describe('a setting it cannot use: one line on stderr, exit status 2', () => {
    it('a number that is not one', () => {
      const line = expectRefused(run(['--port', 'eighty']));
      expect(line).to.equal('chat-rebuild: port (PORT) must be a whole number >= 0; got "eighty" (see --help)');
    });

    it('an unknown flag', () => {
      expect(expectRefused(run(['--prot', '1']))).to.contain("Unknown option '--prot'");
    });

    it('a log level pino does not have', () => {
      const line = expectRefused(run(['--log-level', 'loud']));
      expect(line).to.equal('chat-rebuild: log-level (LOG_LEVEL) must be one of trace, debug, info, warn, error, fatal, silent; got "loud" (see --help)');
      expect(expectRefused(run([], { LOG_LEVEL: 'verbose' }))).to.contain('got "verbose"');
    });

    it('a port already in use', () =>
      withPortTaken((port) => {
        const line = expectRefused(run([], { HOST: '127.0.0.1', PORT: String(port) }));
        expect(line).to.equal(`chat-rebuild: cannot listen on 127.0.0.1:${port}: address already in use (EADDRINUSE); choose another --port or --host (see --help)`);
      }));

    it('a metrics port already in use', () =>
      withPortTaken((port) => {
        const line = expectRefused(run([], { HOST: '127.0.0.1', PORT: '0', METRICS_PORT: String(port) }));
        expect(line).to.equal(
          `chat-rebuild: cannot serve metrics on 127.0.0.1:${port}: address already in use (EADDRINUSE); choose another --metrics-port or --metrics-host (see --help)`,
        );
      }));

    it('a key file it cannot read', () => {
      expect(expectRefused(run(['--port', '0', '--auth-jwks-file', '/no/such/jwks.json'], { INSECURE: '' }))).to.equal(
        'chat-rebuild: auth-jwks-file "/no/such/jwks.json" cannot be read: ENOENT (see --help)',
      );
    });

    it('a seal keys file it cannot use', async () => {
      const short = randomBytes(16).toString('base64');
      await withSealKeys({ current: 'k1', keys: { k1: short } }, (path) => {
        expect(expectRefused(run(['--port', '0', '--seal-keys-file', path]))).to.equal(
          `chat-rebuild: seal-keys-file "${path}" has key "k1" of 16 bytes; a seal key needs at least 32 (see --help)`,
        );
      });
    });

    it('a host that is not an address of this machine', () => {
      // 192.0.2.1 is TEST-NET-1 (RFC 5737): never local, and binding to it sends nothing.
      const line = expectRefused(run(['--host', '192.0.2.1', '--port', '0']));
      expect(line).to.equal('chat-rebuild: cannot listen on 192.0.2.1:0: address not available (EADDRNOTAVAIL); choose another --port or --host (see --help)');
    });
  });

  it('with --insecure, warns at start that it checks no tokens, and says so in the listening line', async () => {
    const server = await spawnServer({ INSECURE: 'true' });
    try {
      const warning = await server.waitForLog((entry) => entry.level === 40 && String(entry.msg).startsWith('INSECURE: no authentication'));
      expect(warning).to.include({ insecure: true });
      expect(await server.waitForLog('chat server listening')).to.include({ insecure: true });
    } finally {
      await server.kill();
    }
  });

  it('with --seal-keys-file, says in the listening line that it seals, and with which key ids, never the keys', async () => {
    const keys = { k1: randomBytes(32).toString('base64'), k2: randomBytes(32).toString('base64') };
    await withSealKeys({ current: 'k2', keys }, async (path) => {
      server = await spawnServer({ SEAL_KEYS_FILE: path });
      const listening = await server.waitForLog('chat server listening');
      expect(listening).to.deep.include({ seals: 'on', sealKeyIds: ['k2', 'k1'] });
      const logged = server.logs.map((l) => JSON.stringify(l)).join('\n');
      expect(logged).not.to.include(keys.k1).and.not.to.include(keys.k2);
    });
  });

  it('without --insecure, refuses to start with no key source, or with one and no seal keys, in one line saying what to give', () => {
    const none = expectRefused(run(['--port', '0'], { INSECURE: '' }));
    expect(none).to.equal(
      'chat-rebuild: no key source for bearer tokens: give --auth-hs256-secret-file, --auth-jwks-file or --auth-jwks-url (with --seal-keys-file), or --insecure for a development server that checks nobody (see --help)',
    );
    const secret = join(mkdtempSync(join(tmpdir(), 'chat-secret-')), 'secret');
    writeFileSync(secret, randomBytes(32).toString('hex'));
    try {
      const unsealed = expectRefused(run(['--port', '0', '--auth-hs256-secret-file', secret], { INSECURE: '' }));
      expect(unsealed).to.match(/^chat-rebuild: --auth-hs256-secret-file without --seal-keys-file would let any caller upload history nobody sent/);
    } finally {
      rmSync(dirname(secret), { recursive: true, force: true });
    }
  });

  it('--help gives every setting its flag, variable, default and meaning, and exits 0', () => {
    const outcome = run(['--help']);
    expect(outcome.status).to.equal(0);
    expect(outcome.stdout).to.match(/--drain-ms \(DRAIN_MS\), default 5000\n\s+after SIGTERM\/SIGINT, how long health says NOT_SERVING/);
    expect(outcome.stdout).to.contain('--version');
    for (const key of Object.keys(DEFAULT_CONFIG)) {
      const flag = key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
      expect(outcome.stdout, flag).to.match(new RegExp(`--${flag} \\([A-Z0-9_]+\\), default [^\\n]+\\n {6}\\S[^\\n]+\\n`));
    }
  });

  it('--version prints the version in package.json and exits 0', () => {
    const outcome = run(['--version']);
    expect(outcome.status).to.equal(0);
    expect(outcome.stdout).to.equal(`${VERSION}\n`);
  });
});
