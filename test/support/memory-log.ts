import { Writable } from 'node:stream';
import { type Logger, pino } from 'pino';

/** A pino logger that keeps its lines in memory, parsed, for tests that check what was logged. */
export function memoryLogger(level: pino.LevelWithSilent = 'debug'): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level }, sink), lines };
}
