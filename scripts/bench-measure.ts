/**
 * What `npm run bench` measures and how: the settings and report it passes between processes,
 * a window of latencies, a pacer for open-loop calls at a fixed rate, percentiles, CPU time
 * from /proc, the C++ load client, server processes, and the targets each part reports.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** What the parent asks for (see scripts/bench.ts for the defaults). */
export interface LoadSettings {
  readonly address: string;
  /** The server's pid, to read its CPU time from /proc. */
  readonly serverPid: number;
  readonly chats: number;
  readonly measureSeconds: number;
  readonly warmupSeconds: number;
  /** Each visitor sends one message this often, the chats staggered evenly. */
  readonly sendEveryMs: number;
  /** One polling mode per entry: each agent calls GetNewMessage this often, staggered evenly. */
  readonly pollIntervalsMs: readonly number[];
  /** gRPC channels (each its own HTTP/2 connection) shared by all chats. */
  readonly channels: number;
  /** Baseline calls per second, spread over a few empty chats. */
  readonly baselinePerSecond: number;
  readonly callTimeoutMs: number;
}

/** Percentiles of one set of latencies. */
export interface Figures {
  readonly samples: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

export type Mode = 'push' | 'polling';

/** One mode's measured window. */
export interface PhaseReport {
  readonly mode: Mode;
  /** Polling mode: how often each agent polled. */
  readonly pollIntervalMs: number | undefined;
  readonly seconds: number;
  readonly sends: number;
  readonly sendsPerSecond: number;
  /** Send start to the agent's receipt, for messages sent in the window. */
  readonly delivery: Figures;
  /** Sent in the window but not received by the end of the drain (or whose send failed). */
  readonly undelivered: number;
  /** AddVisitorMessage round trip (send start to the visitor's acknowledgement). */
  readonly sendAck: Figures;
  /** GetNewMessage on an empty chat, round trip. */
  readonly baseline: Figures;
  readonly pollsPerSecond: number;
  /** Poll ticks skipped because that agent's previous poll had not come back. */
  readonly pollsSkipped: number;
  readonly errors: number;
  readonly loadCpuPercent: number;
  /** undefined where /proc/<pid>/stat cannot be read. */
  readonly serverCpuPercent: number | undefined;
  /** Every process on the machine (all cores; undefined where /proc/stat cannot be read). */
  readonly machineCpuPercent: number | undefined;
  readonly loadLoopDelayP99Ms: number;
}

export interface LoadReport {
  readonly setupMs: number;
  readonly phases: readonly PhaseReport[];
}

/** What this process tells its parent. */
export type LoadMessage = { kind: 'progress'; text: string } | { kind: 'report'; report: LoadReport };

/** The event-loop delay histogram's sampling period. */
export const LOOP_DELAY_RESOLUTION_MS = 10;
/** After a window, how long messages sent in it may still take to arrive (plus one poll interval). */
export const DRAIN_MS = 5_000;

/** Linux reports /proc CPU times in USER_HZ, which is 100 on every mainstream architecture. */
const USER_HZ = 100;

/** The latencies and counts of one measured window. */
export class Window {
  recording = false;
  readonly delivery: number[] = [];
  readonly sendAck: number[] = [];
  readonly baseline: number[] = [];
  /** Send start time of each message sent in the window and not yet received, by id. */
  readonly inFlight = new Map<string, number>();
  sends = 0;
  polls = 0;
  pollsSkipped = 0;
  errors = 0;

  /** The agent received `id`. */
  received(id: string, at: number): void {
    const sentAt = this.inFlight.get(id);
    if (sentAt === undefined) return; // sent outside the window
    this.inFlight.delete(id);
    this.delivery.push(at - sentAt);
  }
}

/** Calls `action(0)`, `action(1)`, ... at `perSecond` from `start()`, evenly spaced. */
export class Pacer {
  private startedAt = 0;
  private next = 0;
  private running = false;

  constructor(
    private readonly perSecond: number,
    private readonly action: (n: number) => void,
  ) {}

  start(): void {
    this.startedAt = performance.now();
    this.running = true;
  }

  stop(): void {
    this.running = false;
  }

  tick(now: number): void {
    if (!this.running) return;
    const due = Math.floor(((now - this.startedAt) * this.perSecond) / 1000);
    while (this.next < due) this.action(this.next++);
  }
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** p50 and p99 by nearest rank, and the largest. */
export function figures(latencies: readonly number[]): Figures {
  const sorted = Float64Array.from(latencies).sort();
  const values = Array.from(sorted);
  return { samples: values.length, p50Ms: percentile(values, 50), p99Ms: percentile(values, 99), maxMs: values.at(-1) ?? NaN };
}

/** A process's CPU time so far, in ms (undefined where /proc is not readable). */
export function processCpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / USER_HZ; // utime and stime
  } catch {
    return undefined;
  }
}

/** CPU time every process on the machine has used so far (all cores), in ms (undefined where /proc is not readable). */
export function machineBusyMs(): number | undefined {
  try {
    const [, ...ticks] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
    const [user, nice, system, , , irq, softirq, steal] = ticks.map(Number) as number[];
    return ((user! + nice! + system! + irq! + softirq! + steal!) * 1000) / USER_HZ; // all but idle and iowait; steal is time other virtual machines took
  } catch {
    return undefined;
  }
}


/** One figure beside its target, as each bench part lists them in its JSON line (`targets`) for the summary `npm run bench` ends with. */
export interface TargetCheck {
  /** What was measured, e.g. "AddVisitorMessage, x of its floor". */
  readonly figure: string;
  /** The figure as the part printed it. */
  readonly measured: string;
  /** The target issue 13 sets, or NO_TARGET where it sets none. */
  readonly target: string;
  /** Whether the figure met its target; null where there is none. */
  readonly met: boolean | null;
}

export const NO_TARGET = 'no target: figure';

/** A figure with no target, for the summary. */
export function noTarget(figure: string, measured: string): TargetCheck {
  return { figure, measured, target: NO_TARGET, met: null };
}

/** grpc-load (scripts/load/grpc-load.cc), compiled into dist/load when missing or older than its source; its path. */
export function loadClient(progress: (text: string) => void = (text) => console.error(`  ${text}`)): string {
  const source = path.join(repoRoot(), 'scripts/load/grpc-load.cc');
  const binary = path.join(repoRoot(), 'dist/load/grpc-load');
  if (existsSync(binary) && statSync(binary).mtimeMs >= statSync(source).mtimeMs) return binary;
  let flags: string[];
  try {
    flags = execFileSync('pkg-config', ['--cflags', '--libs', 'grpc++'], { encoding: 'utf8' }).trim().split(/\s+/);
  } catch {
    throw new Error('the load client needs gRPC C++: apt-get install -y g++ pkg-config libgrpc++-dev');
  }
  mkdirSync(path.dirname(binary), { recursive: true });
  progress('compiling the C++ load client (scripts/load/grpc-load.cc)');
  // Into a file of its own first: a compile that fails or is stopped leaves no binary that looks current.
  execFileSync('g++', ['-O2', '-std=c++17', source, '-o', `${binary}.tmp`, ...flags], { stdio: 'inherit' });
  renameSync(`${binary}.tmp`, binary);
  return binary;
}

/** Runs grpc-load with `args` (and `env` beside this process's) to its end and returns the JSON line it printed. */
export function runLoadClient<T>(binary: string, args: readonly (string | number)[], env: Record<string, string> = {}): T {
  return JSON.parse(execFileSync(binary, args.map(String), { encoding: 'utf8', maxBuffer: 1 << 20, env: { ...process.env, ...env } })) as T;
}

/** The folder holding package.json, whether the bench runs compiled (dist/scripts) or not. */
export function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
}

/** A whole number from the environment, within bounds. */
export function setting(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || value < min || value > max) throw new Error(`${name} must be a whole number from ${min} to ${max}; got "${raw}"`);
  return value;
}

/**
 * Runs a bench's `main` and exits: 0 once it finished, 1 (saying why) when it failed or was
 * stopped by SIGINT or SIGTERM; `cleanUp` stops what it started, in every case.
 */
export async function runAndExit(name: string, main: () => Promise<void>, cleanUp: () => unknown): Promise<never> {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.error(`${name} stopped by ${signal}`);
      void Promise.resolve(cleanUp()).finally(() => process.exit(1));
    });
  }
  let exitCode = 1;
  try {
    await main();
    exitCode = 0;
  } catch (error) {
    console.error(`${name} failed: ${(error as Error).message}`);
  } finally {
    await cleanUp();
  }
  process.exit(exitCode);
}

/** How long a bench's server process may take to say it is listening. */
const SERVER_STARTUP_TIMEOUT_MS = 20_000;

/**
 * Spawns a server process (`node ...args`) on 127.0.0.1, port 0, and resolves with its address
 * once it prints its port: the chat server's "chat server listening" log line, or another
 * server's line `{"port": N}`. Its stdout is drained to the end, so the pipe never fills up and
 * blocks it (the chat server logs a line per rebuild); lines after the port are not parsed. `started` hears of the child at once, so
 * a caller can kill it whatever happens next.
 */
export async function spawnServerProcess(
  name: string,
  args: readonly string[],
  env: Record<string, string>,
  started: (child: ChildProcess) => void,
): Promise<{ readonly address: string; readonly child: ChildProcess }> {
  const child = spawn(process.execPath, args, { env: { ...process.env, HOST: '127.0.0.1', PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  started(child);
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start within ${SERVER_STARTUP_TIMEOUT_MS} ms`)), SERVER_STARTUP_TIMEOUT_MS);
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      if (!line.startsWith('{')) return;
      const entry = JSON.parse(line) as { port?: unknown; msg?: unknown };
      if (typeof entry.port !== 'number' || (entry.msg !== undefined && entry.msg !== 'chat server listening')) return;
      clearTimeout(timer);
      resolve(entry.port);
      // From here on its output is drained unread: parsing a log line per call would take CPU the figures need.
      lines.close();
      child.stdout!.resume();
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${signal ?? code}) before listening`));
    });
  });
  return { address: `127.0.0.1:${port}`, child };
}
