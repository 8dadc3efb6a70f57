/**
 * The throughput figures of `npm run bench`: calls/s and p50/p99 of the chat RPCs on the real
 * server, each beside a baseline measured in the same run, with a load client that is not the
 * bottleneck (scripts/load/grpc-load.cc on Google's C++ gRPC core, compiled here; a Node client
 * tops out near 6k calls/s). Server, floor and load run as separate processes:
 * - the health check on the real server (the transport's cost of a call);
 * - the floor: the same generated service with handlers that do no chat work
 *   (scripts/bench-noop-server.ts), for each message shape;
 * - AddVisitorMessage and AddAgentMessage into 1,000 chats, GetNewMessage of 10 new messages;
 * - GetNewMessage of 10 new messages against history size.
 * It prints a table with each figure beside its target and ends with the figures as one JSON
 * line. Needs g++, pkg-config and libgrpc++-dev (apt-get install -y g++ pkg-config libgrpc++-dev).
 * Settings (environment): BENCH_THROUGHPUT_SECONDS per figure (5), BENCH_CONCURRENCY (64),
 * BENCH_HISTORIES (comma-separated history sizes, 100,10000,100000).
 */
import { type ChildProcess, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { repoRoot, runAndExit, setting, spawnServerProcess } from './bench-measure.js';

const CHATS = 1_000;
const CHANNELS = 4;
const READ_SIZE = 10;
const seconds = setting('BENCH_THROUGHPUT_SECONDS', 5, 1, 60);
const concurrency = setting('BENCH_CONCURRENCY', 64, 1, 1_000);
const histories = (process.env.BENCH_HISTORIES ?? '100,10000,100000').split(',').map(Number);

const children = new Set<ChildProcess>();
const progress = (text: string) => console.error(`  ${text}`);

/** grpc-load, compiled into dist/load when missing or older than its source. */
function loadClient(): string {
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
  execFileSync('g++', ['-O2', '-std=c++17', source, '-o', binary, ...flags], { stdio: 'inherit' });
  return binary;
}

/** A server process on 127.0.0.1 (bench-measure.ts, spawnServerProcess), killed at the end; its address. */
async function start(args: readonly string[], env: Record<string, string> = {}): Promise<string> {
  return (await spawnServerProcess(path.basename(args[0]!), args, env, (child) => children.add(child))).address;
}

interface Figure {
  readonly perSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly calls: number;
  readonly codes: Record<string, number>;
}

async function main(): Promise<void> {
  const load = loadClient();
  const run = (address: string, kind: string, { chats = CHATS, offset = 0, count = 0, prefix = 'bench-', secs = seconds } = {}): Figure => {
    const out = execFileSync(load, [address, kind, String(concurrency), String(secs), String(chats), String(CHANNELS), String(offset), String(count), prefix], { encoding: 'utf8', maxBuffer: 1 << 20 });
    const figure = JSON.parse(out) as Figure;
    const failed = Object.entries(figure.codes).filter(([code]) => code !== '0');
    if (failed.length > 0) throw new Error(`${kind} on ${address}: calls failed with status ${JSON.stringify(Object.fromEntries(failed))}`);
    return figure;
  };
  const main = path.join(repoRoot(), 'dist/src/server/main.js');
  // The real server as `npm start` runs it (the floor checks no tokens either), with room for
  // the histories below.
  const real = await start([main, '--insecure'], { MAX_CHAT_BYTES: String(1024 ** 3), MAX_MESSAGES_PER_CHAT: String(2_000_000) });
  const floor = await start([path.join(repoRoot(), 'dist/scripts/bench-noop-server.js')], { NOOP_READ_MESSAGES: String(READ_SIZE) });

  progress(`each figure: ${seconds} s, ${concurrency} calls in flight over ${CHANNELS} connections`);
  const health = run(real, 'health');
  const floors = { visitor: run(floor, 'visitor'), agent: run(floor, 'agent'), read: run(floor, 'read') };
  run(real, 'prepare');
  const visitor = run(real, 'visitor');
  const agent = run(real, 'agent');
  // Chats of exactly READ_SIZE messages, read whole: 10 new messages a read.
  run(real, 'prepare', { prefix: 'read-' });
  run(real, 'visitor', { prefix: 'read-', count: CHATS * READ_SIZE });
  const read = run(real, 'read', { prefix: 'read-' });

  const byHistory: { size: number; figure: Figure }[] = [];
  for (const size of histories) {
    const prefix = `history-${size}-`;
    progress(`a chat of ${size} messages`);
    run(real, 'prepare', { prefix, chats: 1 });
    run(real, 'visitor', { prefix, chats: 1, count: size });
    byHistory.push({ size, figure: run(real, 'read', { prefix, chats: 1, offset: size - READ_SIZE }) });
  }

  const rows: [string, Figure, string, string][] = [
    ['health check (baseline)', health, '1.00x of itself', ''],
    ['floor: AddVisitorMessage', floors.visitor, `${(floors.visitor.perSecond / health.perSecond).toFixed(2)}x of the health check`, ''],
    ['floor: AddAgentMessage', floors.agent, `${(floors.agent.perSecond / health.perSecond).toFixed(2)}x of the health check`, ''],
    ['floor: GetNewMessage (10)', floors.read, `${(floors.read.perSecond / health.perSecond).toFixed(2)}x of the health check`, ''],
    ['AddVisitorMessage', visitor, `${(visitor.perSecond / floors.visitor.perSecond).toFixed(2)}x of its floor`, 'target >= 0.85x'],
    ['AddAgentMessage', agent, `${(agent.perSecond / floors.agent.perSecond).toFixed(2)}x of its floor`, 'target >= 0.85x'],
    ['GetNewMessage (10 new)', read, `${(read.perSecond / floors.read.perSecond).toFixed(2)}x of its floor`, 'target >= 0.85x'],
    ...byHistory.map(({ size, figure }): [string, Figure, string, string] => [
      `GetNewMessage, history ${size}`,
      figure,
      `${(byHistory[0]!.figure.perSecond / figure.perSecond).toFixed(2)}x the time of history ${byHistory[0]!.size}`,
      'target <= 1.3x',
    ]),
  ];
  console.log(`\nThroughput (C++ load client, ${concurrency} in flight, ${seconds} s each)`);
  console.log(`${'figure'.padEnd(30)} ${'calls/s'.padStart(9)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)}  ratio`);
  for (const [what, f, ratio, target] of rows) {
    console.log(`${what.padEnd(30)} ${f.perSecond.toFixed(0).padStart(9)} ${f.p50Ms.toFixed(2).padStart(8)} ${f.p99Ms.toFixed(2).padStart(8)}  ${ratio}${target ? `  (${target})` : ''}`);
  }
  console.log(JSON.stringify({ throughput: { seconds, concurrency, health, floors, visitor, agent, read, byHistory } }));
}

process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});
await runAndExit('throughput bench', main, () => {
  for (const child of children) child.kill('SIGKILL');
});
