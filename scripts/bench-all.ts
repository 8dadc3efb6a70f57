/**
 * `npm run bench`: every part of the bench in order, each a process of its own (and each
 * starting its own servers and load processes), one after another so none disturbs another's
 * figures. It prints each part's table as the part prints it, and collects the JSON line each
 * part ends with (its figures, and its `targets`: each figure beside issue 13's target, or none)
 * into one file, BENCH_RESULTS_DIR/latest.json (bench-results/, git-ignored), with a chart
 * beside it, latest.svg (scripts/bench-chart.ts: GetNewMessage against history size, Rebuild
 * CPU against copy size). It ends with a summary: every figure beside its target and whether it
 * was met, and where the files are. A part that fails is reported and the rest still run; the
 * exit status is then 1.
 * Settings (environment): BENCH_PARTS, the parts to run (comma-separated, of push, fanout,
 * cluster, throughput, rebuild, memory; all by default), BENCH_RESULTS_DIR; and each part's own
 * (see its header).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { type ChartData, chartSvg } from './bench-chart.js';
import { repoRoot, type TargetCheck } from './bench-measure.js';

interface Part {
  readonly name: string;
  readonly script: string;
  readonly nodeArgs?: readonly string[];
}

const PARTS: readonly Part[] = [
  { name: 'push', script: 'bench.js' },
  { name: 'fanout', script: 'bench-fanout.js' },
  { name: 'cluster', script: 'bench-cluster.js' },
  { name: 'throughput', script: 'bench-throughput.js' },
  { name: 'rebuild', script: 'bench-rebuild.js' },
  { name: 'memory', script: 'bench-memory.js', nodeArgs: ['--expose-gc'] },
];

interface PartResult {
  readonly seconds: number;
  readonly exitCode: number | null;
  /** The part's JSON line, undefined when it printed none. */
  readonly figures: Record<string, unknown> | undefined;
}

/** The parts BENCH_PARTS names, in the bench's order. */
function chosenParts(): Part[] {
  const raw = process.env.BENCH_PARTS;
  if (raw === undefined || raw.trim() === '') return [...PARTS];
  const names = raw.split(',').map((name) => name.trim());
  const unknown = names.filter((name) => !PARTS.some((p) => p.name === name));
  if (unknown.length > 0) throw new Error(`BENCH_PARTS names unknown parts (${unknown.join(', ')}); the parts are ${PARTS.map((p) => p.name).join(', ')}`);
  return PARTS.filter((p) => names.includes(p.name));
}

let running: ReturnType<typeof spawn> | undefined;

/** Runs one part to its end: its text goes to this process's stdout and stderr, its JSON line is kept. */
async function runPart(part: Part): Promise<PartResult> {
  const started = performance.now();
  const child = spawn(process.execPath, [...(part.nodeArgs ?? []), path.join(repoRoot(), 'dist/scripts', part.script)], { stdio: ['ignore', 'pipe', 'inherit'] });
  running = child;
  let figures: Record<string, unknown> | undefined;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (line.startsWith('{')) {
      try {
        figures = JSON.parse(line) as Record<string, unknown>;
        return;
      } catch {
        // not the JSON line: printed as it is
      }
    }
    console.log(line);
  });
  const [exitCode] = (await once(child, 'close')) as [number | null];
  running = undefined;
  return { seconds: (performance.now() - started) / 1000, exitCode, figures };
}

/** What the chart draws, from the parts that measured it. */
function chartData(results: Record<string, PartResult>): ChartData {
  const throughput = results.throughput?.figures?.throughput as { byHistory?: { size: number; figure: { perSecond: number } }[] } | undefined;
  const rebuild = results.rebuild?.figures?.rebuild as { figures?: { size: number; cpuMs: number }[] } | undefined;
  return {
    histories: throughput?.byHistory?.map((h) => ({ size: h.size, perSecond: h.figure.perSecond })),
    rebuild: rebuild?.figures,
  };
}

/** Rows of cells as a table with padded columns. */
function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((cell, i) => Math.max(cell.length, ...rows.map((row) => row[i]!.length)));
  const format = (cells: readonly string[]) => cells.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd();
  return [format(header), ...rows.map(format)].join('\n');
}

function summary(targets: readonly (TargetCheck & { part: string })[]): string {
  const met = targets.filter((t) => t.met === true).length;
  const missed = targets.filter((t) => t.met === false).length;
  const none = targets.length - met - missed;
  const rows = targets.map((t) => [t.part, t.figure, t.measured, t.target, t.met === null ? '-' : t.met ? 'yes' : 'NO']);
  return [`Summary: ${met} of ${met + missed} targets met, ${missed} not; ${none} figure${none === 1 ? '' : 's'} without a target (issue 13 sets none)`, table(['part', 'figure', 'measured', 'target', 'met'], rows)].join('\n');
}

async function main(): Promise<number> {
  const parts = chosenParts();
  const startedAt = new Date();
  const started = performance.now();
  const loadBefore = loadavg();
  const results: Record<string, PartResult> = {};
  for (const part of parts) {
    console.error(`\n[bench] ${part.name} (dist/scripts/${part.script}), ${((performance.now() - started) / 1000).toFixed(0)} s into the run`);
    results[part.name] = await runPart(part);
    const { exitCode, seconds } = results[part.name]!;
    console.error(`[bench] ${part.name}: ${exitCode === 0 ? 'done' : `FAILED (exit ${exitCode})`} in ${seconds.toFixed(1)} s`);
  }
  const wallSeconds = (performance.now() - started) / 1000;
  const targets = parts.flatMap((part) => ((results[part.name]!.figures?.targets ?? []) as TargetCheck[]).map((t) => ({ part: part.name, ...t })));
  const failed = parts.filter((part) => results[part.name]!.exitCode !== 0 || results[part.name]!.figures === undefined).map((p) => p.name);

  const dir = path.resolve(repoRoot(), process.env.BENCH_RESULTS_DIR ?? 'bench-results');
  mkdirSync(dir, { recursive: true });
  const jsonFile = path.join(dir, 'latest.json');
  const machine = { cores: availableParallelism(), node: process.version, loadAverageBefore: loadBefore, loadAverageAfter: loadavg() };
  writeFileSync(jsonFile, `${JSON.stringify({ startedAt: startedAt.toISOString(), wallSeconds, machine, failed, targets, parts: results }, null, 2)}\n`);
  const svg = chartSvg(chartData(results), `npm run bench, ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC, ${machine.cores} cores (figures in latest.json)`);
  const chartFile = path.join(dir, 'latest.svg');
  if (svg) writeFileSync(chartFile, svg);

  console.log(`\n${summary(targets)}`);
  if (failed.length > 0) console.log(`\nfailed: ${failed.join(', ')} (their figures are missing above)`);
  const relative = (file: string) => (path.relative(process.cwd(), file).startsWith('..') ? file : path.relative(process.cwd(), file));
  console.log(`\nfigures: ${relative(jsonFile)}${svg ? `; chart: ${relative(chartFile)}` : ''}`);
  console.log(`npm run bench: ${parts.length} parts in ${wallSeconds.toFixed(0)} s (${parts.map((p) => `${p.name} ${results[p.name]!.seconds.toFixed(0)} s`).join(', ')})`);
  return failed.length > 0 ? 1 : 0;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    // The part stops its own servers and load processes on the signal.
    running?.kill(signal);
    process.exit(1);
  });
}

try {
  process.exitCode = await main();
} catch (error) {
  console.error(`bench failed: ${(error as Error).message}`);
  process.exitCode = 1;
}
