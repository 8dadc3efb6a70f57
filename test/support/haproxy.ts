import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { credentials, makeClientConstructor, type ServiceClientConstructor, type ServiceDefinition, type ServiceError } from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';

const INSTALL = 'apt-get install -y haproxy';
/** On PATH; else where Debian puts it (/usr/sbin is not on a normal user's PATH). */
const BINARY_CANDIDATES = ['haproxy', '/usr/sbin/haproxy'];
/** How long haproxy gets to bind and pass a gRPC call through to a backend. */
const READY_TIMEOUT_MS = 10_000;
const READY_CALL_TIMEOUT_MS = 500;
const READY_RETRY_MS = 20;
/** Attempts at a free frontend port (another process may take the one picked before haproxy binds it). */
const BIND_ATTEMPTS = 5;

/** A haproxy process in front of chat servers, seen by clients as one address. */
export interface Haproxy {
  /** The one address clients use (`127.0.0.1:PORT`). */
  readonly address: string;
  /** haproxy's log so far: one line per request (with status and backend server) and per health change. */
  readonly logs: string[];
  /** Resolves once haproxy has logged (or had logged) a line containing `text`; rejects after `timeoutMs`. */
  waitForLog(text: string, timeoutMs?: number): Promise<void>;
  /** Kills haproxy, waits until it is gone and removes its config directory. */
  stop(): Promise<void>;
}

/**
 * How haproxy picks a backend: `first`, every call to the first backend that is up (one sticky
 * home for every chat); `chat-id`, a consistent hash of the `x-chat-id` header the SDK sends on
 * every call (each chat its own home; a dead backend's chats move, the others stay).
 */
export type Balance = 'first' | 'chat-id';

const BALANCE: Record<Balance, readonly string[]> = {
  first: ['  balance first'],
  'chat-id': ['  balance hdr(x-chat-id)', '  hash-type consistent'],
};

/**
 * The haproxy configuration for gRPC: HTTP/2 cleartext on both sides, calls balanced as
 * `balance` says, a backend taken out once a TCP health check (every 100 ms, one failure marks a
 * server down) finds it down. A call already bound to a backend that refuses connections is
 * retried there `retries` times, `timeout connect` apart, then answered 503, so a dead backend
 * costs a call about 300 ms instead of hanging it.
 */
export function haproxyConfig(port: number, backends: readonly string[], balance: Balance = 'first'): string {
  return [
    'global',
    '  nbthread 1',
    '  log stderr format raw local0 info',
    'defaults',
    '  mode http',
    '  log global',
    '  option httplog',
    '  retries 3',
    '  timeout connect 100ms',
    '  timeout client 30s',
    '  timeout server 10s',
    '  timeout check 500ms',
    'frontend grpc',
    `  bind 127.0.0.1:${port} proto h2`,
    '  default_backend chat',
    'backend chat',
    ...BALANCE[balance],
    '  default-server proto h2 check inter 100ms fall 1 rise 1',
    ...backends.map((address, i) => `  server s${i} ${address}`),
    '',
  ].join('\n');
}

/**
 * Runs `haproxy -db` (foreground) as a child process in front of `backends`, on a free port of
 * 127.0.0.1, and resolves once a gRPC health check passes through it to a backend. Throws when
 * haproxy is not installed, so a test that needs it fails instead of being skipped.
 */
export async function startHaproxy(backends: readonly string[], balance: Balance = 'first'): Promise<Haproxy> {
  return startWith(async (dir, port) => {
    const path = join(dir, 'haproxy.cfg');
    await writeFile(path, haproxyConfig(port, backends, balance));
    return { path, env: {} };
  });
}

/** The deployment's haproxy configuration, which {@link startDeployedHaproxy} runs as it is. */
export const DEPLOYED_CONFIG = fileURLToPath(new URL('../../deploy/haproxy.cfg', import.meta.url));

/**
 * Runs deploy/haproxy.cfg itself in front of three backends (its chat-a, chat-b and chat-c),
 * its frontend on a free port of 127.0.0.1, with `settings` (its environment variables, such as
 * HAPROXY_CHECK_INTER) in place of its defaults where a test needs quicker checks.
 */
export async function startDeployedHaproxy(backends: readonly [string, string, string], settings: Record<string, string> = {}): Promise<Haproxy> {
  return startWith(async (_dir, port) => ({
    path: DEPLOYED_CONFIG,
    env: { CHAT_FRONT: `127.0.0.1:${port}`, CHAT_A: backends[0], CHAT_B: backends[1], CHAT_C: backends[2], ...settings },
  }));
}

/** A configuration to run: its file, and the environment it reads. */
type Configured = (dir: string, port: number) => Promise<{ readonly path: string; readonly env: Record<string, string> }>;

async function startWith(configure: Configured): Promise<Haproxy> {
  const binary = findHaproxy();
  const dir = await mkdtemp(join(tmpdir(), 'chat-haproxy-'));
  try {
    for (let attempt = 1; ; attempt += 1) {
      const port = await freePort();
      const started = await launch(binary, dir, port, await configure(dir, port));
      if (started.ok) return started.haproxy;
      if (!started.portTaken || attempt === BIND_ATTEMPTS) throw new Error(started.problem);
    }
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

function findHaproxy(): string {
  const tried: string[] = [];
  for (const binary of BINARY_CANDIDATES) {
    const probe = spawnSync(binary, ['-v'], { encoding: 'utf8' });
    if (!probe.error && probe.status === 0) return binary;
    tried.push(`${binary}: ${probe.error?.message ?? probe.stderr.trim()}`);
  }
  throw new Error(`haproxy is needed for this test and was not found (tried ${tried.join('; ')}). Run: ${INSTALL}`);
}

type Launch = { ok: true; haproxy: Haproxy } | { ok: false; portTaken: boolean; problem: string };

async function launch(binary: string, dir: string, port: number, config: { readonly path: string; readonly env: Record<string, string> }): Promise<Launch> {
  const child = spawn(binary, ['-f', config.path, '-db'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...config.env } });
  const logs: string[] = [];
  const listeners = new Set<() => void>();
  const collect = (chunk: Buffer) => {
    logs.push(...chunk.toString().split('\n').filter((line) => line.length > 0));
    for (const listener of listeners) listener();
  };
  const waitForLog = (text: string, timeoutMs = READY_TIMEOUT_MS) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (!logs.some((line) => line.includes(text))) return;
        listeners.delete(check);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        listeners.delete(check);
        reject(new Error(`haproxy did not log "${text}" within ${timeoutMs} ms`));
      }, timeoutMs);
      listeners.add(check);
      check();
    });
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const exited = once(child, 'close'); // after 'exit', once stdout and stderr are drained too
  const address = `127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  const ready = await passesThrough(address, child);
  if (ready === true) {
    return {
      ok: true,
      haproxy: {
        address,
        logs,
        waitForLog,
        async stop() {
          await stop();
          await rm(dir, { recursive: true, force: true });
        },
      },
    };
  }
  await stop();
  const output = logs.join('\n');
  return { ok: false, portTaken: /address already in use/i.test(output), problem: `haproxy did not become ready on ${address}: ${ready}\n${output}` };
}

/** Retries a health check through haproxy until it passes (true), haproxy exits, or time runs out. */
async function passesThrough(address: string, child: ChildProcess): Promise<true | string> {
  const Health = makeClientConstructor(healthService as unknown as ServiceDefinition, 'grpc.health.v1.Health');
  // Reconnect as fast as we retry: grpc-js would otherwise back off for a second after the first refusal.
  const client = new Health(address, credentials.createInsecure(), { 'grpc.initial_reconnect_backoff_ms': READY_RETRY_MS, 'grpc.max_reconnect_backoff_ms': READY_RETRY_MS });
  const giveUp = Date.now() + READY_TIMEOUT_MS;
  let last = 'no attempt';
  try {
    while (Date.now() < giveUp) {
      if (child.exitCode !== null || child.signalCode !== null) return `haproxy exited (${child.exitCode ?? child.signalCode})`;
      const error = await healthCheck(client);
      if (error === undefined) return true;
      last = `${error.code} ${error.details}`;
      await delay(READY_RETRY_MS);
    }
    return `no health check passed within ${READY_TIMEOUT_MS} ms (last: ${last})`;
  } finally {
    client.close();
  }
}

type HealthCheck = (request: { service: string }, options: { deadline: number }, callback: (error: ServiceError | null) => void) => void;

function healthCheck(client: InstanceType<ServiceClientConstructor>): Promise<ServiceError | undefined> {
  const check = (client.Check as HealthCheck).bind(client);
  return new Promise((resolve) => check({ service: '' }, { deadline: Date.now() + READY_CALL_TIMEOUT_MS }, (error) => resolve(error ?? undefined)));
}

/** A port nothing listens on right now (the OS's pick for port 0). */
async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}
