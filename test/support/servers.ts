import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { type ChannelCredentials, type ClientOptions, credentials, type Interceptor } from '@grpc/grpc-js';
import { pino } from 'pino';
import { ChatServiceClient } from '../../generated/chat/v1/chat.js';
import type { Clock } from '../../src/domain/limits.js';
import { type Config, DEFAULT_CONFIG } from '../../src/server/config.js';
import { type ChatServer, startServer } from '../../src/server/server.js';
import { actAsRequestSays, type TestKeys, testSecurity, testSecurityEnv } from './security.js';

/** A server under test and a client connected to it. */
export interface TestServer {
  readonly address: string;
  readonly server: ChatServer;
  readonly client: ChatServiceClient;
  close(): Promise<void>;
}

/**
 * Starts a real server in this process on 127.0.0.1:0, with a generated client. It is secure
 * with the test keys (test/support/security.ts) unless the overrides say `insecure` or give
 * keys of their own, and its client carries a token for whoever each request says it is. A
 * `clock` replaces the system's (it stamps sends and paces the rate limits and upload budget).
 */
export async function startTestServer(overrides: Partial<Config> = {}, { clock }: { readonly clock?: Clock } = {}): Promise<TestServer> {
  const { config, ...keys } = testSecurity(overrides);
  const server = await startServer({ ...DEFAULT_CONFIG, host: '127.0.0.1', port: 0, ...config }, pino({ level: 'silent' }), clock);
  const address = `127.0.0.1:${server.port}`;
  const client = testClient(address, keys);
  return {
    address,
    server,
    client,
    async close() {
      client.close();
      await server.stop(0);
    },
  };
}

/**
 * A generated client for a test server at `address` (plaintext unless `channel` says otherwise)
 * that carries a token for whoever each request says it is and seals the histories its
 * Rebuilds upload, with the test keys (test/support/security.ts), for a server that uses them:
 * one started without keys of its own, which is what the defaults assume.
 */
export function testClient(
  address: string,
  { testTokens = true, testSeals = true, channel = credentials.createInsecure(), options = {} }: TestClientOptions = {},
): ChatServiceClient {
  return new ChatServiceClient(address, channel, { ...options, interceptors: testInterceptors({ testTokens, testSeals }) });
}

/** How {@link testClient} connects, and which test keys its server uses. */
export interface TestClientOptions extends Partial<TestKeys> {
  /** The channel's credentials (default: plaintext). */
  readonly channel?: ChannelCredentials;
  /** grpc-js channel options. */
  readonly options?: ClientOptions;
}

/** The interceptors of {@link testClient}, for a generic grpc-js client (raw bytes get a token too, and no seals). */
export function testInterceptors({ testTokens = true, testSeals = true }: Partial<TestKeys> = {}): Interceptor[] {
  return [actAsRequestSays({ testTokens, testSeals })];
}

/** The repository, the working directory of the server's production command. */
export const REPO = fileURLToPath(new URL('../..', import.meta.url));

/**
 * The production command, relative to {@link REPO}: what the Dockerfile's CMD runs and what
 * {@link spawnServer} runs (test/server/docker.test.ts checks they agree).
 */
export const PRODUCTION_COMMAND = ['node', 'dist/src/server/main.js'] as const;

/** The health probe the Dockerfile's HEALTHCHECK runs, relative to {@link REPO}. */
export const HEALTHCHECK_COMMAND = ['node', 'dist/src/server/healthcheck.js'] as const;

/** A server running as a child process (`npm run build` output), for tests that kill it. */
export interface ServerProcess {
  readonly address: string;
  readonly port: number;
  /** The server's own pid, from its start-up log line (not the child's when npm runs it). */
  readonly pid: number;
  readonly child: ChildProcess;
  /** Which of the test keys the server uses (test/support/security.ts), for the clients a test makes. */
  readonly keys: TestKeys;
  /** Every JSON log line the server printed so far. */
  readonly logs: Record<string, unknown>[];
  /** What the process wrote to stderr so far (V8's fatal errors land here). */
  stderr(): string;
  /** Resolves with the first log line (already printed or to come) `match` accepts; rejects after `timeoutMs` or at exit. */
  waitForLog(match: string | ((entry: Record<string, unknown>) => boolean), timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Resolves with the exit code (null when a signal ended it) once the child has exited. */
  readonly exited: Promise<number | null>;
  /** Sends SIGKILL and waits until the process is gone. */
  kill(): Promise<void>;
  /** Sends SIGTERM and resolves with the exit code. */
  terminate(): Promise<number | null>;
}

/** How to run the server's node process. */
export interface SpawnOptions {
  /** Arguments for node itself, before the script (e.g. `--max-old-space-size=96`). */
  readonly nodeArgs?: readonly string[];
  /** The process's open-file limit (`ulimit -n`, soft and hard), set by bash before it execs node. */
  readonly openFilesLimit?: number;
}

/** How long a spawned server may take to log that it is listening (tsx and a loaded machine are slow). */
const LISTENING_TIMEOUT_MS = 30_000;

/**
 * Spawns the production command (`node dist/src/server/main.js`, in the repository) on
 * 127.0.0.1 (port 0 unless given) and resolves once it logs that it is listening.
 */
export async function spawnServer(env: Record<string, string> = {}, options: SpawnOptions = {}): Promise<ServerProcess> {
  const [, script] = PRODUCTION_COMMAND;
  const nodeArgs = [...(options.nodeArgs ?? []), script];
  if (options.openFilesLimit === undefined) return spawnLogging(process.execPath, nodeArgs, env);
  // bash's "$0" "$@" are node and its arguments, so nothing is quoted into the script.
  return spawnLogging('bash', ['-c', `ulimit -n ${options.openFilesLimit} && exec "$0" "$@"`, process.execPath, ...nodeArgs], env);
}

/**
 * Spawns `command` in the repository, on 127.0.0.1 (port 0 unless given; secure with the test
 * keys unless `env` says INSECURE, even empty, or gives keys of its own), and resolves once the server logs that it is listening. Lines that are not JSON (npm's banner, a build's
 * output) are skipped. With `detached`, the child leads a process group of its own, so a test
 * can kill whatever it leaves behind (`process.kill(-pid)`).
 */
export async function spawnLogging(
  command: string,
  args: readonly string[],
  env: Record<string, string> = {},
  { detached = false }: { readonly detached?: boolean } = {},
): Promise<ServerProcess> {
  const { env: secured, ...keys } = testSecurityEnv(env);
  const child = spawn(command, args, {
    cwd: REPO,
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', ...secured },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached,
  });
  const logs: Record<string, unknown>[] = [];
  const waiters = new Set<(entry: Record<string, unknown>) => void>();
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const entry = parseJsonLine(line);
    if (entry === undefined) return;
    logs.push(entry);
    for (const waiter of waiters) waiter(entry);
  });
  const waitForLog: ServerProcess['waitForLog'] = (match, timeoutMs = LISTENING_TIMEOUT_MS) => {
    const accepts = typeof match === 'string' ? (entry: Record<string, unknown>) => entry.msg === match : match;
    const seen = logs.find(accepts);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const done = () => {
        waiters.delete(waiter);
        clearTimeout(timer);
      };
      const waiter = (entry: Record<string, unknown>) => {
        if (!accepts(entry)) return;
        done();
        resolve(entry);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no log line ${String(match)} within ${timeoutMs} ms; stderr: ${stderr}`));
      }, timeoutMs);
      waiters.add(waiter);
      void exited.then((code) => {
        if (!waiters.has(waiter)) return;
        done();
        reject(new Error(`server exited with ${code} before logging ${String(match)}: ${stderr}`));
      });
    });
  };
  const listening = await waitForLog('chat server listening');
  const port = listening.port as number;
  return {
    address: `127.0.0.1:${port}`,
    port,
    pid: listening.pid as number,
    keys,
    child,
    logs,
    stderr: () => stderr,
    waitForLog,
    exited,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async terminate() {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

function parseJsonLine(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** SIGKILLs every child still running and waits until each is gone. */
export async function killChildren(children: Iterable<ChildProcess>): Promise<void> {
  await Promise.all(
    [...children].map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }),
  );
}
