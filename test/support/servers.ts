import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { credentials } from '@grpc/grpc-js';
import { pino } from 'pino';
import { ChatServiceClient } from '../../generated/chat/v1/chat.js';
import { type Config, DEFAULT_CONFIG } from '../../src/server/config.js';
import { type ChatServer, startServer } from '../../src/server/server.js';

const MAIN = fileURLToPath(new URL('../../dist/src/server/main.js', import.meta.url));

/** A server under test and a client connected to it. */
export interface TestServer {
  readonly address: string;
  readonly server: ChatServer;
  readonly client: ChatServiceClient;
  close(): Promise<void>;
}

/** Starts a real server in this process on 127.0.0.1:0, with a generated client. */
export async function startTestServer(overrides: Partial<Config> = {}): Promise<TestServer> {
  const server = await startServer(
    { ...DEFAULT_CONFIG, host: '127.0.0.1', port: 0, ...overrides },
    pino({ level: 'silent' }),
  );
  const address = `127.0.0.1:${server.port}`;
  const client = new ChatServiceClient(address, credentials.createInsecure());
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

/** A server running as a child process (`npm run build` output), for tests that kill it. */
export interface ServerProcess {
  readonly address: string;
  readonly port: number;
  readonly child: ChildProcess;
  /** Every JSON log line the server printed so far. */
  readonly logs: Record<string, unknown>[];
  /** What the process wrote to stderr so far (V8's fatal errors land here). */
  stderr(): string;
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

/**
 * Spawns `node dist/src/server/main.js` on 127.0.0.1 (port 0 unless given) and resolves once
 * it logs that it is listening.
 */
export async function spawnServer(env: Record<string, string> = {}, options: SpawnOptions = {}): Promise<ServerProcess> {
  const nodeArgs = [...(options.nodeArgs ?? []), MAIN];
  // bash's "$0" "$@" are node and its arguments, so nothing is quoted into the script.
  const child = spawn(
    options.openFilesLimit === undefined ? process.execPath : 'bash',
    options.openFilesLimit === undefined ? nodeArgs : ['-c', `ulimit -n ${options.openFilesLimit} && exec "$0" "$@"`, process.execPath, ...nodeArgs],
    {
      env: { ...process.env, HOST: '127.0.0.1', PORT: '0', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = once(child, 'exit');
  const listening = new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const entry = JSON.parse(line) as Record<string, unknown>;
      logs.push(entry);
      if (entry.msg === 'chat server listening') resolve(entry.port as number);
    });
    void exited.then(([code]) => reject(new Error(`server exited with ${code} before listening: ${stderr}`)));
  });
  const port = await listening;
  return {
    address: `127.0.0.1:${port}`,
    port,
    child,
    logs,
    stderr: () => stderr,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async terminate() {
      child.kill('SIGTERM');
      const [code] = await exited;
      return code as number | null;
    },
  };
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
