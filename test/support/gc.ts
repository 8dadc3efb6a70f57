import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * A full garbage collection, on demand, in a process started without `--expose-gc` (mocha's):
 * the flag set at run time exposes `gc` to contexts created afterwards. Tests use it to show
 * that something the SDK relies on is reachable, not merely not yet collected.
 */
export const collectGarbage: () => void = globalThis.gc ?? (setFlagsFromString('--expose-gc'), runInNewContext('gc') as () => void);

/** Collects garbage every `everyMs` until the returned function is called. */
export function collectGarbageEvery(everyMs: number): () => void {
  const timer = setInterval(collectGarbage, everyMs);
  return () => clearInterval(timer);
}
