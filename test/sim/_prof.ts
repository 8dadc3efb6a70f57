process.on("unhandledRejection", () => {});
import fc from 'fast-check';
import { runSchedule } from './run.js';
import { schedules } from './schedule.js';
const samples = fc.sample(schedules(60, process.env.R as 'watch' | undefined), { numRuns: Number(process.env.N ?? 100), seed: 7 });
const times: [number, number, number, string][] = [];
for (const [i, s] of samples.entries()) {
  const t = performance.now();
  let err = '';
  let calls = 0;
  try { calls = (await runSchedule(s, { finalMove: 'drop' })).calls; } catch (e) { err = String(e).slice(0, 80); }
  times.push([performance.now() - t, i, calls, err]);
}
times.sort((a, b) => b[0] - a[0]);
console.log(times.slice(0, 8).map((t) => t.map(String).join(' ')).join('\n'));
console.log('total', times.reduce((n, t) => n + t[0], 0));
