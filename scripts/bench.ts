/**
 * `npm run bench`: end-to-end latency from a visitor's send (AddVisitorMessage) to the agent's
 * receipt, with many concurrent chats, for push (WatchChat) and for polling (GetNewMessage at a
 * fixed interval), in one run, beside a baseline (a cheap unary call at the same load). It
 * starts the real server binary and the load generator (scripts/bench-load.ts) as two child
 * processes on 127.0.0.1, prints a table, and ends with the figures as one JSON line.
 *
 * Settings (environment): BENCH_CHATS (1000), BENCH_SECONDS measured per mode (8),
 * BENCH_WARMUP_SECONDS per mode (2), BENCH_SEND_EVERY_MS per chat (2000), BENCH_POLL_MS, a
 * comma-separated list with one polling mode per interval (DEFAULT_POLL_MS), BENCH_CHANNELS (4),
 * BENCH_BASELINE_PER_S (100).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { DRAIN_MS, type LoadMessage, type LoadReport, type LoadSettings, noTarget, repoRoot, runAndExit, setting, type TargetCheck } from './bench-measure.js';
import { formatReport } from './bench-report.js';

const STARTUP_TIMEOUT_MS = 20_000;
const CALL_TIMEOUT_MS = 5_000;
/** Most chats a run may ask for: the bench stays bounded (the server's default watcher limit is 10,000). */
const MAX_CHATS = 5_000;
const MAX_SECONDS = 120;
/**
 * One polling mode per interval: the SDK's default (1 s), the README's agent example (250 ms),
 * and 100 ms. For 1,000 chats that is 1,000, 4,000 and 10,000 calls/s; the last is beyond what
 * one load process makes on this machine (grpc-js tops out near 6-7k unary calls/s a core),
 * so that row shows polling under overload, which the output says.
 */
const DEFAULT_POLL_MS = [1_000, 250, 100];
const HERE = path.dirname(fileURLToPath(import.meta.url));
const LOAD_MAIN = path.join(HERE, 'bench-load.js');

const children = new Set<ChildProcess>();
const startedAt = performance.now();
const elapsed = () => `${((performance.now() - startedAt) / 1000).toFixed(1).padStart(5)} s`;
/** Set once the run is over: a child's exit is then expected. */
let stopping = false;
let failed: ((error: Error) => void) | undefined;

/** Fails the run from outside its chain of awaits (the watchdog, a server that died). */
function fail(message: string): void {
  failed?.(new Error(message));
}

/** A comma-separated list of whole numbers from the environment, each within bounds. */
function settingList(name: string, fallback: readonly number[], min: number, max: number): number[] {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return [...fallback];
  return raw.split(',').map((part, i) => {
    const value = Number(part);
    if (!/^\d+$/.test(part.trim()) || value < min || value > max) throw new Error(`${name} must list whole numbers from ${min} to ${max}; item ${i + 1} is "${part}"`);
    return value;
  });
}

function readSettings(): Omit<LoadSettings, 'address' | 'serverPid'> {
  return {
    chats: setting('BENCH_CHATS', 1_000, 1, MAX_CHATS),
    measureSeconds: setting('BENCH_SECONDS', 8, 1, MAX_SECONDS),
    warmupSeconds: setting('BENCH_WARMUP_SECONDS', 2, 0, MAX_SECONDS),
    sendEveryMs: setting('BENCH_SEND_EVERY_MS', 2_000, 10, 600_000),
    pollIntervalsMs: settingList('BENCH_POLL_MS', DEFAULT_POLL_MS, 1, 60_000),
    channels: setting('BENCH_CHANNELS', 4, 2, 64),
    baselinePerSecond: setting('BENCH_BASELINE_PER_S', 100, 1, 10_000),
    callTimeoutMs: CALL_TIMEOUT_MS,
  };
}

function track(child: ChildProcess): Promise<unknown[]> {
  children.add(child);
  return once(child, 'exit');
}

function killAll(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

/** Spawns the server binary on 127.0.0.1, port 0, and resolves once it logs its port. */
async function startServer(): Promise<{ address: string; child: ChildProcess }> {
  const main = path.join(repoRoot(), 'dist/src/server/main.js');
  if (!existsSync(main)) throw new Error(`${main} is missing: run \`npm run build\` first`);
  const child = spawn(process.execPath, [main, '--insecure'], { env: { ...process.env, HOST: '127.0.0.1', PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = track(child);
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  let timer: NodeJS.Timeout | undefined;
  const port = await new Promise<number>((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`the server did not log "chat server listening" within ${STARTUP_TIMEOUT_MS} ms`)), STARTUP_TIMEOUT_MS);
    // Every line is read (one per rebuild at setup), so the pipe never fills up and blocks the server.
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const entry = parseJson(line);
      if (entry?.msg === 'chat server listening' && typeof entry.port === 'number') resolve(entry.port);
    });
    child.on('error', reject);
    void exited.then(([code, signal]) => reject(new Error(`the server exited (${signal ?? code}) before listening: ${stderr.trim()}`)));
  }).finally(() => clearTimeout(timer));
  void exited.then(([code, signal]) => {
    if (!stopping) fail(`the server exited (${signal ?? code}) during the run: ${stderr.trim()}`);
  });
  return { address: `127.0.0.1:${port}`, child };
}

function parseJson(line: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** Runs the load process to completion and resolves with its report; its progress goes to stderr. */
async function runLoad(settings: LoadSettings): Promise<{ report: LoadReport; pid: number }> {
  const child = spawn(process.execPath, [LOAD_MAIN, JSON.stringify(settings)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = track(child);
  let report: LoadReport | undefined;
  child.on('message', (message: LoadMessage) => {
    if (message.kind === 'progress') console.error(`  [${elapsed()}] ${message.text}`);
    else report = message.report;
  });
  const [code, signal] = await exited;
  if (code !== 0 || report === undefined) throw new Error(`the load process exited (${signal ?? code}) without a report`);
  return { report, pid: child.pid! };
}

async function main(): Promise<void> {
  const partial = readSettings();
  const phases = 1 + partial.pollIntervalsMs.length;
  const drainSeconds = (DRAIN_MS + Math.max(...partial.pollIntervalsMs)) / 1000;
  // Generous: a run that overshoots this is stuck, not slow.
  const budgetMs = Math.round(STARTUP_TIMEOUT_MS + 30_000 + phases * (partial.warmupSeconds + partial.measureSeconds + drainSeconds) * 1500);
  const watchdog = setTimeout(() => fail(`no result within ${(budgetMs / 1000).toFixed(0)} s`), budgetMs);
  try {
    const aborted = new Promise<never>((_, reject) => (failed = reject));
    console.error(`  [${elapsed()}] starting the server`);
    const server = await Promise.race([startServer(), aborted]);
    const settings: LoadSettings = { ...partial, address: server.address, serverPid: server.child.pid! };
    const { report, pid } = await Promise.race([runLoad(settings), aborted]);
    console.log(formatReport(settings, report, { server: server.child.pid!, load: pid }));
    const targets: TargetCheck[] = report.phases.map((p) =>
      noTarget(
        `${p.pollIntervalMs === undefined ? 'push (WatchChat)' : `polling every ${p.pollIntervalMs} ms`}, ${settings.chats} chats, p50 / p99`,
        `${p.delivery.p50Ms.toFixed(2)} / ${p.delivery.p99Ms.toFixed(2)} ms`,
      ),
    );
    console.log(JSON.stringify({ settings, report, targets }));
  } finally {
    clearTimeout(watchdog);
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`bench stopped by ${signal}`);
    killAll();
    process.exit(1);
  });
}
process.once('exit', killAll);
await runAndExit('bench', main, async () => {
  stopping = true;
  killAll();
  await Promise.all([...children].map((child) => (child.exitCode === null && child.signalCode === null ? once(child, 'exit') : undefined)));
});
