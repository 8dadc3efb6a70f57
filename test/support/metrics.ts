import { expect } from 'chai';

/** What a scrape of /metrics answered. */
export interface Scrape {
  readonly status: number;
  readonly contentType: string | null;
  readonly text: string;
}

/** GETs `url` (a server's metrics address, or another path on its port) over plain HTTP. */
export async function scrape(url: string, method = 'GET'): Promise<Scrape> {
  const response = await fetch(url, { method, signal: AbortSignal.timeout(10_000) });
  return { status: response.status, contentType: response.headers.get('content-type'), text: await response.text() };
}

/** One sample of Prometheus's text format: its metric name, labels and value. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** The samples of a scrape, in order (comments skipped). Label values here hold no quotes, commas or braces. */
export function samples(text: string): Sample[] {
  return text
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      expect(match, `a sample line: ${line}`).not.to.equal(null);
      const [, name, labelText = '', value] = match!;
      const labels = Object.fromEntries(
        labelText
          .split(',')
          .filter((pair) => pair !== '')
          .map((pair) => /^(\w+)="(.*)"$/.exec(pair)!.slice(1) as [string, string]),
      );
      return { name: name!, labels, value: Number(value) };
    });
}

/** The value of the one series named `name` with exactly `labels`; undefined when the scrape has none. */
export function valueOf(all: readonly Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const wanted = Object.entries(labels).sort();
  const found = all.filter((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === JSON.stringify(wanted));
  expect(found.length, `series ${name}${JSON.stringify(labels)}`).to.be.at.most(1);
  return found[0]?.value;
}
