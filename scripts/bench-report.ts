/**
 * The text of `npm run bench`'s result: a header saying what was measured and how, the latency
 * table, a table of the load each mode ran under, and a one-line reading.
 */
import { availableParallelism } from 'node:os';
import type { Figures, LoadReport, LoadSettings, PhaseReport } from './bench-measure.js';

/** A polling mode that made fewer than this share of its polls was overloaded. */
const KEPT_UP_SHARE = 0.9;
/** Other processes using more than this (% of one core) during a mode disturb its figures. */
const DISTURBED_PERCENT = 20;

const ms = (value: number) => (Number.isFinite(value) ? value.toFixed(value < 10 ? 2 : 1) : '-');
const ratio = (value: number, base: number) => (base > 0 && Number.isFinite(value) ? `${(value / base).toFixed(1)}×` : '-');
const percent = (value: number | undefined) => (value === undefined ? 'n/a' : `${value.toFixed(0)}%`);
const perSecond = (count: number, everyMs: number) => Math.round((count * 1000) / everyMs);

/** The mode's name in the tables. */
function modeName(phase: PhaseReport): string {
  return phase.pollIntervalMs === undefined ? 'push (WatchChat)' : `polling every ${phase.pollIntervalMs} ms`;
}

/** Whether a polling mode made (nearly) every poll it was meant to. */
function keptUp(phase: PhaseReport, chats: number): boolean {
  return phase.pollIntervalMs === undefined || phase.pollsPerSecond >= KEPT_UP_SHARE * perSecond(chats, phase.pollIntervalMs);
}

/** Rows of cells as a Markdown-style table with padded columns (numbers right-aligned). */
function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((cell, i) => Math.max(cell.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]) => cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join(' | ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('-|-'), ...rows.map(line)].join('\n');
}

function header(settings: LoadSettings, report: LoadReport, pids: Pids): string {
  const { chats, sendEveryMs, pollIntervalsMs, channels, measureSeconds, warmupSeconds, baselinePerSecond } = settings;
  const polls = pollIntervalsMs.map((every) => `every ${every} ms (target ${perSecond(chats, every)} calls/s)`).join(', then ');
  return [
    "chat-rebuild bench: end-to-end latency of a visitor's message, from the start of its AddVisitorMessage call to the agent's receipt",
    `  ${chats} concurrent chats; each visitor sends one message every ${sendEveryMs} ms, staggered (target ${perSecond(chats, sendEveryMs)} messages/s)`,
    '  push:     each agent holds a WatchChat stream',
    `  polling:  each agent calls GetNewMessage ${polls}, staggered; an agent whose last poll is still out skips a tick`,
    `  baseline: round trip of GetNewMessage on an empty chat, ${baselinePerSecond} calls/s, during each mode (same load); ratios are to the baseline of the same mode`,
    `  per mode: ${warmupSeconds} s warm-up (not counted), then ${measureSeconds} s measured; before that, setup took ${(report.setupMs / 1000).toFixed(1)} s (${chats} chats created and rebuilt, ${chats} watches open)`,
    `  processes: server node dist/src/server/main.js (pid ${pids.server}) on ${settings.address}; load node dist/scripts/bench-load.js (pid ${pids.load}); ${availableParallelism()} cores`,
    `  channels: ${channels} gRPC channels (one HTTP/2 connection each) shared by all chats: visitors on ${Math.ceil(channels / 2)}, agents on ${Math.floor(channels / 2)}, baseline calls on all`,
  ].join('\n');
}

function latencyTable(phases: readonly PhaseReport[]): string {
  const row = (name: string, f: Figures, base: Figures) => [name, String(f.samples), ms(f.p50Ms), ms(f.p99Ms), ratio(f.p50Ms, base.p50Ms)];
  return table(
    ['mode', 'samples', 'p50 ms', 'p99 ms', 'vs baseline p50'],
    [
      ...phases.map((p) => row(modeName(p), p.delivery, p.baseline)),
      ...phases.map((p) => row(`baseline during ${modeName(p)}`, p.baseline, p.baseline)),
    ],
  );
}

/** CPU of every other process on the machine in the window (work competing for the cores), in % of one core. */
function othersPercent(phase: PhaseReport): number | undefined {
  if (phase.machineCpuPercent === undefined || phase.serverCpuPercent === undefined) return undefined;
  return Math.max(0, phase.machineCpuPercent - phase.serverCpuPercent - phase.loadCpuPercent);
}

function loadTable(phases: readonly PhaseReport[]): string {
  return table(
    ['load during', 'sends/s', 'send ack p50 / p99 ms', 'polls/s (skipped)', 'CPU server / load / others', 'load event-loop delay p99 ms', 'undelivered', 'errors'],
    phases.map((p) => [
      modeName(p),
      p.sendsPerSecond.toFixed(1),
      `${ms(p.sendAck.p50Ms)} / ${ms(p.sendAck.p99Ms)}`,
      p.mode === 'polling' ? `${p.pollsPerSecond.toFixed(0)} (${p.pollsSkipped})` : '-',
      `${percent(p.serverCpuPercent)} / ${percent(p.loadCpuPercent)} / ${percent(othersPercent(p))}`,
      ms(p.loadLoopDelayP99Ms),
      String(p.undelivered),
      String(p.errors),
    ]),
  );
}

/** "push p50 is X ms, polling p50 Y ms (Z× of push)", with every polling interval. */
function reading(phases: readonly PhaseReport[], chats: number): string {
  const [push, ...polling] = phases as [PhaseReport, ...PhaseReport[]];
  const polled = polling.map((p) => {
    const overload = keptUp(p, chats) ? '' : `; overloaded: ${p.pollsPerSecond.toFixed(0)} of ${perSecond(chats, p.pollIntervalMs!)} polls/s made`;
    return `${ms(p.delivery.p50Ms)} ms every ${p.pollIntervalMs} ms (${ratio(p.delivery.p50Ms, push.delivery.p50Ms)} of push${overload})`;
  });
  return `push p50 is ${ms(push.delivery.p50Ms)} ms, polling p50 ${polled.join(', ')}`;
}

/** A warning naming the modes during which other processes took a large share of the machine, if any. */
function disturbances(phases: readonly PhaseReport[]): string[] {
  const disturbed = phases.filter((p) => (othersPercent(p) ?? 0) > DISTURBED_PERCENT);
  if (disturbed.length === 0) return [];
  const which = disturbed.map((p) => `${modeName(p)} (${percent(othersPercent(p))} of a core)`).join(', ');
  return [`caution: other processes competed for the CPU during ${which}; run again on a quiet machine to trust those rows`];
}

/** The process ids shown in the header. */
export interface Pids {
  readonly server: number;
  readonly load: number;
}

/** The whole result as text (without the JSON line). */
export function formatReport(settings: LoadSettings, report: LoadReport, pids: Pids): string {
  const note = '(CPU: share of one core over the measured window, 100% = one core busy; others: every other process on the machine. Undelivered: sent in the window, not received within the drain.)';
  const last = [reading(report.phases, settings.chats), ...disturbances(report.phases)].join('\n');
  return [header(settings, report, pids), latencyTable(report.phases), `${loadTable(report.phases)}\n${note}`, last].join('\n\n');
}
