import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { credentials } from '@grpc/grpc-js';
import { expect } from 'chai';
import { ChatServiceClient, ResultCode } from '../../generated/chat/v1/chat.js';
import { DEFAULT_CONFIG } from '../../src/server/config.js';
import { chatApi } from '../support/chat-api.js';
import { PRODUCTION_COMMAND, REPO, spawnServer, type ServerProcess } from '../support/servers.js';

const [, MAIN] = PRODUCTION_COMMAND;
const VERSION = (JSON.parse(readFileSync(`${REPO}/package.json`, 'utf8')) as { version: string }).version;

/** Runs the production command to its end (for settings it refuses, --help, --version). */
function run(args: readonly string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [MAIN, ...args], { cwd: REPO, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 30_000 });
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

describe('the server process', () => {
  let server: ServerProcess | undefined;
  afterEach(async () => server?.kill());

  it('logs its effective configuration, version and pid once, serves, and stops cleanly on SIGTERM', async () => {
    server = await spawnServer({ MAX_CONTENT_BYTES: '1000' });
    const started = server.logs.filter((l) => l.msg === 'chat server listening');
    expect(started).to.have.length(1);
    expect(started[0]!.config).to.include({ host: '127.0.0.1', maxContentBytes: 1000 });
    expect(started[0]).to.include({ version: VERSION, pid: server.child.pid });

    const client = new ChatServiceClient(server.address, credentials.createInsecure());
    const read = await chatApi(client).getNewMessage({ chatId: 'p', visitorOffset: 0, agentOffset: 0 });
    expect(read.code).to.equal(ResultCode.RESULT_CODE_REBUILD_REQUIRED);
    client.close();

    expect(await server.terminate()).to.equal(0);
    expect(server.logs.map((l) => l.msg)).to.include.members(['shutting down', 'stopped']);
  });

  it('listens on the PORT it is given', async () => {
    const probe = await spawnServer();
    const port = probe.port;
    await probe.kill();
    server = await spawnServer({ PORT: String(port) });
    expect(server.port).to.equal(port);
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

    it('a port already in use', async () => {
      const taken = createServer();
      taken.listen(0, '127.0.0.1');
      await once(taken, 'listening');
      const { port } = taken.address() as { port: number };
      try {
        const line = expectRefused(run([], { HOST: '127.0.0.1', PORT: String(port) }));
        expect(line).to.equal(`chat-rebuild: cannot listen on 127.0.0.1:${port}: address already in use (EADDRINUSE); choose another --port or --host (see --help)`);
      } finally {
        taken.close();
      }
    });

    it('a host that is not an address of this machine', () => {
      // 192.0.2.1 is TEST-NET-1 (RFC 5737): never local, and binding to it sends nothing.
      const line = expectRefused(run(['--host', '192.0.2.1', '--port', '0']));
      expect(line).to.equal('chat-rebuild: cannot listen on 192.0.2.1:0: address not available (EADDRNOTAVAIL); choose another --port or --host (see --help)');
    });
  });

  it('--help gives every setting its flag, variable, default and meaning, and exits 0', () => {
    const outcome = run(['--help']);
    expect(outcome.status).to.equal(0);
    expect(outcome.stdout).to.match(/--drain-ms\s+DRAIN_MS\s+default 5000\n\s+after SIGTERM\/SIGINT, how long health says NOT_SERVING/);
    expect(outcome.stdout).to.contain('--version');
    for (const key of Object.keys(DEFAULT_CONFIG)) {
      const flag = key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
      expect(outcome.stdout, flag).to.match(new RegExp(`--${flag}\\s+[A-Z_]+\\s+default [^\\n]+\\n {6}\\S[^\\n]+\\n`));
    }
  });

  it('--version prints the version in package.json and exits 0', () => {
    const outcome = run(['--version']);
    expect(outcome.status).to.equal(0);
    expect(outcome.stdout).to.equal(`${VERSION}\n`);
  });
});
