/**
 * The chart `npm run bench` writes beside its JSON (scripts/bench-all.ts): the two figures that
 * are curves rather than rows, each on log axes with its target drawn in. Left, GetNewMessage's
 * time per call against history size, as a ratio to the smallest history (flat is the aim;
 * issue 13's bound is 1.3x). Right, the server CPU of a whole-copy Rebuild against its size,
 * log-log, with a linear line and the bound of 12x the time for 10x the data, both from the
 * smallest copy whose CPU time /proc reads to within a tenth. A small hand-written SVG: no chart library.
 */

export interface ChartData {
  /** GetNewMessage of 10 new messages against one chat of each size. */
  readonly histories?: readonly { readonly size: number; readonly perSecond: number }[];
  /** Whole copies into a chat the server lacks: the server's CPU time per copy. */
  readonly rebuild?: readonly { readonly size: number; readonly cpuMs: number }[];
}

const PANEL = { width: 480, height: 380, left: 64, right: 20, top: 56, bottom: 56 };
const COLOURS = { figure: '#1f6feb', target: '#cf222e', reference: '#8c959f', grid: '#d0d7de', text: '#24292f' };

const escape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const round = (value: number) => Math.round(value * 10) / 10;

function text(x: number, y: number, content: string, attributes = ''): string {
  return `<text x="${round(x)}" y="${round(y)}" ${attributes}>${escape(content)}</text>`;
}

function line(points: readonly (readonly [number, number])[], attributes: string): string {
  return `<polyline fill="none" points="${points.map(([x, y]) => `${round(x)},${round(y)}`).join(' ')}" ${attributes}/>`;
}

/** Powers of ten from below `min` to above `max`. */
function decades(min: number, max: number): number[] {
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e += 1) out.push(10 ** e);
  return out;
}

/** "10^4" as the axis writes it: 100, 1k, 10k, 100k, 1M. */
function count(value: number): string {
  if (value >= 1e6) return `${value / 1e6}M`;
  if (value >= 1e3) return `${value / 1e3}k`;
  return String(value);
}

interface Axis {
  readonly at: (value: number) => number;
  readonly ticks: readonly number[];
  readonly label: (value: number) => string;
}

function logAxis(min: number, max: number, from: number, to: number, label: (value: number) => string): Axis {
  const ticks = decades(min, max);
  const lo = Math.log10(ticks[0]!);
  const hi = Math.log10(ticks.at(-1)!);
  return { at: (value) => from + ((Math.log10(value) - lo) / (hi - lo || 1)) * (to - from), ticks, label };
}

function linearAxis(max: number, step: number, from: number, to: number, label: (value: number) => string): Axis {
  const top = Math.ceil(max / step) * step;
  const ticks = Array.from({ length: Math.round(top / step) + 1 }, (_, i) => i * step);
  return { at: (value) => from + (value / top) * (to - from), ticks, label };
}

/** A panel's frame: title, grid, ticks and axis names, with `x` and `y` in the panel's pixels. */
function frame(title: string, subtitle: string, x: Axis, y: Axis, xName: string, yName: string): string[] {
  const { width, height, left, right, top, bottom } = PANEL;
  const parts = [text(width / 2, 22, title, 'text-anchor="middle" font-size="14" font-weight="bold"'), text(width / 2, 40, subtitle, 'text-anchor="middle" font-size="11"')];
  for (const tick of x.ticks) {
    parts.push(line([[x.at(tick), top], [x.at(tick), height - bottom]], `stroke="${COLOURS.grid}"`));
    parts.push(text(x.at(tick), height - bottom + 16, x.label(tick), 'text-anchor="middle"'));
  }
  for (const tick of y.ticks) {
    parts.push(line([[left, y.at(tick)], [width - right, y.at(tick)]], `stroke="${COLOURS.grid}"`));
    parts.push(text(left - 6, y.at(tick) + 4, y.label(tick), 'text-anchor="end"'));
  }
  parts.push(text((left + width - right) / 2, height - 14, xName, 'text-anchor="middle"'));
  parts.push(text(16, (top + height - bottom) / 2, yName, `text-anchor="middle" transform="rotate(-90 16 ${(top + height - bottom) / 2})"`));
  return parts;
}

/** The figure itself: a line through its points, each marked and labelled. */
function series(points: readonly (readonly [number, number, string])[]): string[] {
  return [
    line(points.map(([x, y]) => [x, y]), `stroke="${COLOURS.figure}" stroke-width="2"`),
    ...points.flatMap(([x, y, label], i) => [
      `<circle cx="${round(x)}" cy="${round(y)}" r="4" fill="${COLOURS.figure}"/>`,
      // The last point's label to its left, inside the panel.
      i === points.length - 1 && points.length > 1 ? text(x - 8, y - 8, label, `text-anchor="end" fill="${COLOURS.figure}"`) : text(x + 6, y - 8, label, `fill="${COLOURS.figure}"`),
    ]),
  ];
}

function historyPanel(histories: NonNullable<ChartData['histories']>): string[] {
  const { width, height, left, right, top, bottom } = PANEL;
  const base = histories[0]!;
  const ratios = histories.map((h) => base.perSecond / h.perSecond);
  const x = logAxis(Math.min(...histories.map((h) => h.size)), Math.max(...histories.map((h) => h.size)), left, width - right, count);
  const y = linearAxis(Math.max(1.5, ...ratios) * 1.05, 0.25, height - bottom, top, (v) => `${v.toFixed(2)}x`);
  const target = y.at(1.3);
  return [
    ...frame('GetNewMessage against history size', `time per call (64 in flight) as a ratio to history ${base.size}; 10 new messages a read`, x, y, 'messages in the chat (log)', `time per call, x of history ${base.size}`),
    line([[left, target], [width - right, target]], `stroke="${COLOURS.target}" stroke-dasharray="6 4"`),
    text(width - right - 4, target - 6, 'target: at most 1.3x', `text-anchor="end" fill="${COLOURS.target}"`),
    ...series(histories.map((h, i) => [x.at(h.size), y.at(ratios[i]!), `${ratios[i]!.toFixed(2)}x`])),
  ];
}

function rebuildPanel(rebuild: NonNullable<ChartData['rebuild']>): string[] {
  const { width, height, left, right, top, bottom } = PANEL;
  // CPU is read from /proc in 10 ms steps: a copy that took less shows as 0, which a log axis cannot place.
  const drawn = rebuild.filter((r) => r.cpuMs > 0);
  const skipped = rebuild.length - drawn.length;
  if (drawn.length === 0) return frame('Rebuild: server CPU against copy size', 'every copy took under the 10 ms resolution', linearAxis(1, 1, left, width - right, String), linearAxis(1, 1, height - bottom, top, String), '', '');
  // The lines start from the smallest copy read to within a tenth (10 of the 10 ms steps), or the smallest drawn.
  const anchor = drawn.find((r) => r.cpuMs >= 100) ?? drawn[0]!;
  const smallest = drawn[0]!.size;
  const largest = Math.max(...drawn.map((r) => r.size));
  const linear = (size: number) => anchor.cpuMs * (size / anchor.size);
  const bound = (size: number) => anchor.cpuMs * (size / anchor.size) ** Math.log10(12);
  const ends = [anchor.size, largest];
  const ys = [...drawn.map((r) => r.cpuMs), bound(largest)];
  const x = logAxis(smallest, largest, left, width - right, count);
  const y = logAxis(Math.min(...ys), Math.max(...ys), height - bottom, top, (v) => (v >= 1000 ? `${v / 1000} s` : `${v} ms`));
  const note = skipped > 0 ? `; ${skipped} under the 10 ms resolution not drawn` : '';
  return [
    ...frame('Rebuild: server CPU against copy size', `whole copies into a chat the server lacks; lines from the ${count(anchor.size)} copy${note}`, x, y, 'messages in the copy (log)', 'server CPU (log)'),
    line(ends.map((s) => [x.at(s), y.at(linear(s))]), `stroke="${COLOURS.reference}" stroke-dasharray="2 3"`),
    line(ends.map((s) => [x.at(s), y.at(bound(s))]), `stroke="${COLOURS.target}" stroke-dasharray="6 4"`),
    // The legend, top left, where the curve (rising to the right) is not.
    line([[left + 8, top + 12], [left + 32, top + 12]], `stroke="${COLOURS.target}" stroke-dasharray="6 4"`),
    text(left + 38, top + 16, 'target: at most 12x the time for 10x the data', `fill="${COLOURS.target}"`),
    line([[left + 8, top + 28], [left + 32, top + 28]], `stroke="${COLOURS.reference}" stroke-dasharray="2 3"`),
    text(left + 38, top + 32, 'linear: 10x the time for 10x the data', `fill="${COLOURS.reference}"`),
    ...series(drawn.map((r) => [x.at(r.size), y.at(r.cpuMs), r.cpuMs >= 1000 ? `${(r.cpuMs / 1000).toFixed(1)} s` : `${r.cpuMs.toFixed(0)} ms`])),
  ];
}

/** The chart as an SVG document, one panel for each figure the run measured; undefined when it measured neither. */
export function chartSvg(data: ChartData, caption: string): string | undefined {
  const panels = [
    ...(data.histories && data.histories.length > 1 ? [historyPanel(data.histories)] : []),
    ...(data.rebuild && data.rebuild.length > 0 ? [rebuildPanel(data.rebuild)] : []),
  ];
  if (panels.length === 0) return undefined;
  const width = PANEL.width * panels.length;
  const height = PANEL.height + 24;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11" fill="${COLOURS.text}">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    ...panels.map((parts, i) => `<g transform="translate(${i * PANEL.width} 0)">\n${parts.join('\n')}\n</g>`),
    text(width / 2, height - 8, caption, 'text-anchor="middle" font-size="10"'),
    '</svg>',
    '',
  ].join('\n');
}
