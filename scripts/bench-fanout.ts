/**
 * The fan-out figure of `npm run bench`: one chat with BENCH_FANOUT_WATCHERS (1,000) WatchChat
 * streams, a visitor sending BENCH_FANOUT_SENDS_PER_S (20) messages a second into it for
 * BENCH_FANOUT_SECONDS (5), and the delivery latency from the start of each send to each
 * watcher's receipt: p50, p99 and max over all receipts, and per message the time until the
 * last watcher had it. Its baseline, measured in the same run by the same process at the same
 * rate: one watcher on a chat of its own. The load is the C++ client's fanout kind
 * (scripts/load/grpc-load.cc says why C++), in a process of its own beside the real server
 * (`--insecure`, its default limits: 10,000 watchers, 1,000 streams a connection, and the
 * watchers spread over connections of 250 streams). Issue 13 sets no target for fan-out: the
 * figure prints beside its single-watcher baseline. Ends with the figures as one JSON line.
 */
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { loadClient, noTarget, repoRoot, runAndExit, runLoadClient, setting, spawnServerProcess, type TargetCheck } from './bench-measure.js';

const watchers = setting('BENCH_FANOUT_WATCHERS', 1_000, 1, 5_000);
const seconds = setting('BENCH_FANOUT_SECONDS', 5, 1, 60);
const sendsPerSecond = setting('BENCH_FANOUT_SENDS_PER_S', 20, 1, 1_000);
/** Streams a connection carries: a quarter of the server's default limit. */
const STREAMS_PER_CONNECTION = 250;

/** One phase of the load client's fanout report. */
interface Phase {
  readonly watchers: number;
  readonly established: number;
  readonly setupMs: number;
  readonly sends: number;
  readonly failedSends: number;
  readonly receipts: number;
  readonly expected: number;
  readonly watchErrors: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly lastP50Ms: number;
  readonly lastP99Ms: number;
  readonly lastMaxMs: number;
}

const children: ChildProcess[] = [];

async function main(): Promise<void> {
  const load = loadClient();
  const { address } = await spawnServerProcess('the server', [path.join(repoRoot(), 'dist/src/server/main.js'), '--insecure'], {}, (child) => children.push(child));
  const channels = Math.max(4, Math.ceil(watchers / STREAMS_PER_CONNECTION));
  console.error(`  fan-out: 1 watcher, then ${watchers} over ${channels} connections; ${sendsPerSecond} sends/s for ${seconds} s each`);
  const report = runLoadClient<{ single: Phase; fanout: Phase; codes: Record<string, number> }>(load, [address, 'fanout', watchers, seconds, sendsPerSecond, channels]);
  const { single, fanout } = report;
  for (const [name, phase] of [['single watcher', single], ['fan-out', fanout]] as const) {
    if (phase.failedSends > 0 || phase.watchErrors > 0) {
      throw new Error(`${name}: ${phase.failedSends} sends failed, ${phase.watchErrors} watches broke (status codes ${JSON.stringify(report.codes)})`);
    }
  }

  const ms = (value: number) => value.toFixed(2).padStart(8);
  const ratio = (value: number, base: number) => `${(value / base).toFixed(1)}x`;
  console.log(`\nFan-out (C++ load client: one chat watched by ${watchers} WatchChat streams over ${channels} connections; a sender on its own connection, ${sendsPerSecond} messages/s for ${seconds} s; from each send's start to each receipt)`);
  console.log(`${'watchers'.padEnd(26)} ${'receipts'.padStart(15)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'max ms'.padStart(8)}  until the last watcher had it: p50 / p99 / max ms`);
  for (const [name, p] of [['1 (baseline)', single], [String(watchers), fanout]] as const) {
    console.log(`${name.padEnd(26)} ${`${p.receipts}/${p.expected}`.padStart(15)} ${ms(p.p50Ms)} ${ms(p.p99Ms)} ${ms(p.maxMs)}  ${p.lastP50Ms.toFixed(2)} / ${p.lastP99Ms.toFixed(2)} / ${p.lastMaxMs.toFixed(2)}`);
  }
  const reading = `p50 ${ratio(fanout.p50Ms, single.p50Ms)}, p99 ${ratio(fanout.p99Ms, single.p99Ms)}; the last of the ${watchers}, median message, ${ratio(fanout.lastP50Ms, single.p50Ms)} its p50`;
  console.log(`${watchers} watchers against the single watcher: ${reading}  (no target: figure)`);
  const targets: TargetCheck[] = [
    noTarget(`fan-out to ${watchers} watchers, p50 / p99 (1 watcher)`, `${fanout.p50Ms.toFixed(2)} / ${fanout.p99Ms.toFixed(2)} ms (${single.p50Ms.toFixed(2)} / ${single.p99Ms.toFixed(2)} ms)`),
    noTarget(`fan-out to ${watchers} watchers, the last one, p50 / max`, `${fanout.lastP50Ms.toFixed(2)} / ${fanout.lastMaxMs.toFixed(2)} ms`),
  ];
  console.log(JSON.stringify({ fanout: { watchers, seconds, sendsPerSecond, channels, single, fanout }, targets }));
}

await runAndExit('fan-out bench', main, () => {
  for (const child of children) child.kill('SIGKILL');
});
