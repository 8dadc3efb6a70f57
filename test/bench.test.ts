import { execFile, spawn } from 'node:child_process';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { type Finished, finished } from './support/child-output.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const BENCH = path.join(REPO, 'dist/scripts/bench.js');
const SOURCES = ['scripts/bench.ts', 'scripts/bench-load.ts', 'scripts/bench-measure.ts', 'scripts/bench-report.ts', 'scripts/bench-cluster.ts', 'scripts/bench-cluster-load.ts', 'scripts/bench-memory.ts', 'scripts/bench-rebuild.ts'];
const CLUSTER_BENCH = path.join(REPO, 'dist/scripts/bench-cluster.js');
/** A cluster bench small enough for `npm test`. */
const SMALL_CLUSTER = { BENCH_CLUSTER_CHATS: '30', BENCH_PROXY_SECONDS: '1' };
const BUILD_TIMEOUT_MS = 120_000;
const BENCH_TIMEOUT_MS = 30_000;
/** A bench small enough for `npm test`: it checks the bench runs, not how fast anything is. */
const SMALL = { BENCH_CHATS: '20', BENCH_SECONDS: '2', BENCH_WARMUP_SECONDS: '1', BENCH_POLL_MS: '100' };

/** Whether dist/ lacks the bench or is older than its sources (`npm test` builds first; `mocha FILE` may not). */
async function buildIsStale(): Promise<boolean> {
  const built = await stat(BENCH).then((s) => s.mtimeMs, () => 0);
  const sources = await Promise.all(SOURCES.map(async (file) => (await stat(path.join(REPO, file))).mtimeMs));
  return built < Math.max(...sources);
}

/** Runs a bench script with `env` to its end; SIGTERM on timeout lets it kill its servers and load processes before it exits. */
function runBench(script: string, env: Record<string, string>, nodeArgs: readonly string[] = []): Promise<Finished> {
  return finished(spawn(process.execPath, [...nodeArgs, script], { cwd: REPO, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], timeout: BENCH_TIMEOUT_MS, killSignal: 'SIGTERM' }));
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
    expect(stdout).to.match(/^ +3000 +2 +\d+ +\d+ {2}[\d.]+x the CPU for 3x the data/m);
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
});
