import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { chartSvg } from '../scripts/bench-chart.js';
import { loadClient, type TargetCheck } from '../scripts/bench-measure.js';
import { type Finished, finished } from './support/child-output.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const BENCH = path.join(REPO, 'dist/scripts/bench.js');
const SOURCES = [
  'scripts/bench.ts',
  'scripts/bench-load.ts',
  'scripts/bench-measure.ts',
  'scripts/bench-report.ts',
  'scripts/bench-cluster.ts',
  'scripts/bench-cluster-load.ts',
  'scripts/bench-memory.ts',
  'scripts/bench-rebuild.ts',
  'scripts/bench-throughput.ts',
  'scripts/bench-noop-server.ts',
  'scripts/bench-fanout.ts',
  'scripts/bench-all.ts',
  'scripts/bench-chart.ts',
];
const CLUSTER_BENCH = path.join(REPO, 'dist/scripts/bench-cluster.js');
/** A cluster bench small enough for `npm test`. */
const SMALL_CLUSTER = { BENCH_CLUSTER_CHATS: '30', BENCH_PROXY_SECONDS: '1' };
const BUILD_TIMEOUT_MS = 120_000;
const BENCH_TIMEOUT_MS = 30_000;
/** The throughput bench runs 11 figures of a second each, and starts three servers. */
const THROUGHPUT_TIMEOUT_MS = 90_000;
/** Compiling the C++ load client (g++ -O2 against gRPC's headers). */
const COMPILE_TIMEOUT_MS = 120_000;
/** A bench small enough for `npm test`: it checks the bench runs, not how fast anything is. */
const SMALL = { BENCH_CHATS: '20', BENCH_SECONDS: '2', BENCH_WARMUP_SECONDS: '1', BENCH_POLL_MS: '100' };

/** Whether dist/ lacks the bench or is older than its sources (`npm test` builds first; `mocha FILE` may not). */
async function buildIsStale(): Promise<boolean> {
  const built = await stat(BENCH).then((s) => s.mtimeMs, () => 0);
  const sources = await Promise.all(SOURCES.map(async (file) => (await stat(path.join(REPO, file))).mtimeMs));
  return built < Math.max(...sources);
}

/** Runs a bench script with `env` to its end; SIGTERM on timeout lets it kill its servers and load processes before it exits. */
function runBench(script: string, env: Record<string, string>, nodeArgs: readonly string[] = [], timeout = BENCH_TIMEOUT_MS): Promise<Finished> {
  return finished(spawn(process.execPath, [...nodeArgs, script], { cwd: REPO, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], timeout, killSignal: 'SIGTERM' }));
}

/** The JSON line a bench part ends with. */
function lastJson<T>(stdout: string): T {
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as T;
}

describe('npm run bench (a small run)', function () {
  this.timeout(BUILD_TIMEOUT_MS + BENCH_TIMEOUT_MS);

  before(async () => {
    if (await buildIsStale()) await promisify(execFile)('npm', ['run', 'build', '--silent'], { cwd: REPO, timeout: BUILD_TIMEOUT_MS });
  });

  it('exits 0 and prints a push row, a polling row and the reading, with every message delivered', async () => {
    const { code, stdout, stderr } = await runBench(BENCH, SMALL);

    expect(code, `${stdout}\n${stderr}`).to.equal(0);
    expect(stdout).to.match(/^push \(WatchChat\) +\| +\d+ \| +[\d.]+ \| +[\d.]+ \| +[\d.]+×$/m);
    expect(stdout).to.match(/^polling every 100 ms +\| +\d+ \| +[\d.]+ \| +[\d.]+ \| +[\d.]+×$/m);
    expect(stdout).to.match(/^push p50 is [\d.]+ ms, polling p50 [\d.]+ ms every 100 ms \([\d.]+× of push/m);
    const { report } = JSON.parse(stdout.trim().split('\n').at(-1)!) as { report: { phases: { mode: string; sends: number; delivery: { samples: number }; undelivered: number; errors: number }[] } };
    expect(report.phases.map((p) => p.mode)).to.deep.equal(['push', 'polling']);
    for (const phase of report.phases) {
      expect(phase.sends, phase.mode).to.be.greaterThan(0);
      expect(phase.delivery.samples, phase.mode).to.equal(phase.sends);
      expect([phase.undelivered, phase.errors], phase.mode).to.deep.equal([0, 0]);
    }
  });

  it('the memory figures: exits 0 with the heap bytes per empty chat and per stored message', async () => {
    const { code, stdout, stderr } = await runBench(path.join(REPO, 'dist/scripts/bench-memory.js'), { BENCH_MEMORY_CHATS: '1000', BENCH_MEMORY_MESSAGES: '20000' }, ['--expose-gc']);
    expect(code, `${stdout}\n${stderr}`).to.equal(0);
    expect(stdout).to.match(/^ {2}per empty chat +\d+ bytes beyond its id {2}\(target <= 400\)$/m);
    const { memory } = JSON.parse(stdout.trim().split('\n').at(-1)!) as { memory: { bytesPerEmptyChat: number; bytesPerMessage: number } };
    // Not a speed or size check (the bench reports those): only that the figures are measured, not noise.
    expect(memory.bytesPerMessage).to.be.greaterThan(0);
    expect(memory.bytesPerEmptyChat).to.be.greaterThan(0);
  });

  it('the Rebuild figures: exits 0 with the server CPU of whole copies against their size', async () => {
    const { code, stdout, stderr } = await runBench(path.join(REPO, 'dist/scripts/bench-rebuild.js'), { BENCH_REBUILD_SIZES: '1000,3000' });
    expect(code, `${stdout}\n${stderr}`).to.equal(0);
    expect(stdout).to.match(/^ +3000 +2 +\d+ +\d+ {2}\S+x the CPU for 3x the data/m); // CPU is read in 10 ms steps: a copy of 1,000 may read 0
    const { rebuild } = JSON.parse(stdout.trim().split('\n').at(-1)!) as { rebuild: { figures: { size: number; uploads: number }[] } };
    expect(rebuild.figures.map((f) => [f.size, f.uploads])).to.deep.equal([
      [1000, 1],
      [3000, 2],
    ]);
  });

  it('the cluster figure: exits 0 with the recovery time after a kill and the proxy ratio, every chat delivering again', async () => {
    const { code, stdout, stderr } = await runBench(CLUSTER_BENCH, SMALL_CLUSTER);

    expect(code, `${stdout}\n${stderr}`).to.equal(0);
    expect(stdout).to.match(/^ {2}proxy ratio +[\d.]+x the calls\/s of direct/m);
    expect(stdout).to.match(/^ {2}recovery +(\d+)\/\1 of the dead server's chats delivering again; \d+ rebuilds; from the kill: p50 [\d.]+ ms, p99 [\d.]+ ms, all within [\d.]+ ms$/m);
    const { cluster } = JSON.parse(stdout.trim().split('\n').at(-1)!) as { cluster: { recovery: { delivered: number; of: number; rebuilds: number }; direct: { errors: number }; proxied: { errors: number } } };
    expect(cluster.recovery.of, 'chats the killed server held').to.be.greaterThan(0);
    expect(cluster.recovery.delivered).to.equal(cluster.recovery.of);
    expect(cluster.recovery.rebuilds, 'the dead server\'s chats rebuilt elsewhere').to.be.greaterThan(0);
    expect([cluster.direct.errors, cluster.proxied.errors]).to.deep.equal([0, 0]);
  });
  describe('with the C++ load client', function () {
    this.timeout(COMPILE_TIMEOUT_MS + THROUGHPUT_TIMEOUT_MS);

    before(function () {
      this.timeout(COMPILE_TIMEOUT_MS);
      loadClient(() => undefined);
    });

    it('the throughput figures: exits 0 with Rebuild beside its floor and GetNewMessage against each history, every call answered OK', async () => {
      const env = { BENCH_THROUGHPUT_SECONDS: '1', BENCH_ROUNDS: '2', BENCH_HISTORY_ROUNDS: '2', BENCH_CONCURRENCY: '8', BENCH_HISTORIES: '100,3000' };
      const { code, stdout, stderr } = await runBench(path.join(REPO, 'dist/scripts/bench-throughput.js'), env, [], THROUGHPUT_TIMEOUT_MS);

      expect(code, `${stdout}\n${stderr}`).to.equal(0);
      expect(stdout).to.match(/^floor: Rebuild \(copy of 20\) +\d+ +[\d.]+ +[\d.]+ {2}[\d.]+x of the health check$/m);
      expect(stdout).to.match(/^AddAgentMessage, tokens +\d+ +[\d.]+ +[\d.]+ {2}[\d.]+x of its floor {2}\(no target: figure\)$/m);
      expect(stdout).to.match(/^GetNewMessage \(10 new\), tokens +\d+ +[\d.]+ +[\d.]+ {2}[\d.]+x of its floor {2}\(no target: figure\)$/m);
      expect(stdout).to.match(/^Rebuild \(copy of 20, new chat\) +\d+ +[\d.]+ +[\d.]+ {2}[\d.]+x of its floor {2}\(no target: figure\)$/m);
      expect(stdout).to.match(/^GetNewMessage, history 3000 +\d+ +[\d.]+ +[\d.]+ {2}[\d.]+x the time of history 100 {2}\(target <= 1\.3x\)$/m);
      expect(stdout).to.match(/^Rebuild: a whole copy of 20 messages \(10 visitor, 10 agent\) a call, each into a fresh chat id of 50000: \d+ calls, every one into a chat the server lacked/m);
      const { throughput, targets } = lastJson<{
        throughput: { rebuild: { calls: number; codes: Record<string, number> }; floors: { rebuild: { calls: number } }; byHistory: { size: number; figure: { calls: number } }[] };
        targets: TargetCheck[];
      }>(stdout);
      expect(throughput.rebuild.calls).to.be.greaterThan(0);
      expect(throughput.floors.rebuild.calls).to.be.greaterThan(0);
      expect(Object.keys(throughput.rebuild.codes)).to.deep.equal(['0']);
      expect(throughput.byHistory.map((h) => h.size)).to.deep.equal([100, 3000]);
      for (const h of throughput.byHistory) expect(h.figure.calls, `history ${h.size}`).to.be.greaterThan(0);
      expect(targets.map((t) => [t.figure, t.target])).to.deep.equal([
        ['AddVisitorMessage, x of its floor', '>= 0.85x'],
        ['AddAgentMessage, x of its floor', '>= 0.85x'],
        ['GetNewMessage (10 new), x of its floor', '>= 0.85x'],
        ['AddAgentMessage with tokens, x of its floor', 'no target: figure'],
        ['GetNewMessage (10 new) with tokens, x of its floor', 'no target: figure'],
        ['Rebuild (copy of 20, new chat), x of its floor', 'no target: figure'],
        ['GetNewMessage time, history 3000 vs 100', '<= 1.3x'],
      ]);
      for (const t of targets) expect(t.met, t.figure).to.be.a(t.target === 'no target: figure' ? 'null' : 'boolean');
    });

    it('the fan-out figure: exits 0 with every watcher receiving every message, beside the single watcher', async () => {
      const env = { BENCH_FANOUT_WATCHERS: '20', BENCH_FANOUT_SECONDS: '1', BENCH_FANOUT_SENDS_PER_S: '20' };
      const { code, stdout, stderr } = await runBench(path.join(REPO, 'dist/scripts/bench-fanout.js'), env);

      expect(code, `${stdout}\n${stderr}`).to.equal(0);
      expect(stdout).to.match(/^1 \(baseline\) +20\/20 +[\d.]+ +[\d.]+ +[\d.]+ {2}[\d.]+ \/ [\d.]+ \/ [\d.]+$/m);
      expect(stdout).to.match(/^20 +400\/400 +[\d.]+ +[\d.]+ +[\d.]+ {2}[\d.]+ \/ [\d.]+ \/ [\d.]+$/m);
      expect(stdout).to.match(/^20 watchers against the single watcher: p50 [\d.]+x, p99 [\d.]+x; .* {2}\(no target: figure\)$/m);
      type Phase = { sends: number; receipts: number; expected: number; established: number; watchErrors: number; failedSends: number };
      const { fanout, targets } = lastJson<{ fanout: { single: Phase; fanout: Phase }; targets: TargetCheck[] }>(stdout);
      expect([fanout.single.sends, fanout.single.receipts, fanout.single.established]).to.deep.equal([20, 20, 1]);
      expect([fanout.fanout.sends, fanout.fanout.receipts, fanout.fanout.expected, fanout.fanout.established]).to.deep.equal([20, 400, 400, 20]);
      expect([fanout.fanout.watchErrors, fanout.fanout.failedSends]).to.deep.equal([0, 0]);
      expect(targets.map((t) => t.met)).to.deep.equal([null, null]);
    });
  });

  it('npm run bench (scripts/bench-all.ts): runs the parts asked for, writes their figures and a chart, and ends with every target', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'bench-results-'));
    try {
      const env = { BENCH_PARTS: 'rebuild,memory', BENCH_REBUILD_SIZES: '2000,4000', BENCH_MEMORY_CHATS: '1000', BENCH_MEMORY_MESSAGES: '20000', BENCH_RESULTS_DIR: dir };
      const { code, stdout, stderr } = await runBench(path.join(REPO, 'dist/scripts/bench-all.js'), env);

      expect(code, `${stdout}\n${stderr}`).to.equal(0);
      // Each part's table as it prints it; its JSON line goes to the file instead.
      expect(stdout).to.match(/^ +4000 +3 +\d+ +\d+ {2}\S+x the CPU for 2x the data \(target <= 2\.4x\)$/m);
      expect(stdout).to.match(/^ {2}per empty chat +\d+ bytes beyond its id {2}\(target <= 400\)$/m);
      expect(stdout).not.to.match(/^\{/m);
      expect(stdout).to.match(/^Summary: \d+ of 3 targets met, \d+ not; 1 figure without a target/m);
      expect(stdout).to.match(/^rebuild +Rebuild server CPU, 4000 vs 2000 messages +\S+x +<= 2\.4x +(yes|NO)$/m);
      expect(stdout).to.match(/^memory +heap per stored message beyond content and id +\d+ bytes +<= 120 bytes +(yes|NO)$/m);
      expect(stdout).to.include(`figures: ${path.join(dir, 'latest.json')}; chart: ${path.join(dir, 'latest.svg')}`);
      expect(stdout).to.match(/^npm run bench: 2 parts in \d+ s \(rebuild \d+ s, memory \d+ s\)$/m);

      const results = JSON.parse(await readFile(path.join(dir, 'latest.json'), 'utf8')) as {
        failed: string[];
        targets: (TargetCheck & { part: string })[];
        parts: Record<string, { exitCode: number; figures: Record<string, unknown> }>;
      };
      expect(results.failed).to.deep.equal([]);
      expect(Object.keys(results.parts)).to.deep.equal(['rebuild', 'memory']);
      expect(results.parts.rebuild!.figures).to.have.property('rebuild');
      expect(results.parts.memory!.figures).to.have.property('memory');
      expect(results.targets.map((t) => t.part)).to.deep.equal(['rebuild', 'memory', 'memory', 'memory']);
      const svg = await readFile(path.join(dir, 'latest.svg'), 'utf8');
      expect(svg).to.match(/^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
      expect(svg).to.include('Rebuild: server CPU against copy size');
      expect(svg.trim()).to.match(/<\/svg>$/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('the chart: a panel for each curve measured, its target drawn in; none when neither was', () => {
    const svg = chartSvg(
      {
        histories: [
          { size: 100, perSecond: 1000 },
          { size: 10_000, perSecond: 900 },
          { size: 1_000_000, perSecond: 800 },
        ],
        rebuild: [
          { size: 1000, cpuMs: 0 },
          { size: 10_000, cpuMs: 100 },
          { size: 100_000, cpuMs: 1100 },
        ],
      },
      'a caption & more',
    )!;
    expect(svg).to.include('GetNewMessage against history size');
    expect(svg).to.include('target: at most 1.3x');
    expect(svg).to.include('>1.25x<'); // 1000 / 800
    expect(svg).to.include('Rebuild: server CPU against copy size');
    expect(svg).to.include('1 under the 10 ms resolution not drawn');
    expect(svg).to.include('a caption &amp; more');
    expect(svg.match(/<g /g)?.length).to.equal(2);
    expect(svg).not.to.match(/NaN|Infinity/);
    expect(chartSvg({ histories: [{ size: 100, perSecond: 1 }] }, '')).to.equal(undefined);
  });
});
