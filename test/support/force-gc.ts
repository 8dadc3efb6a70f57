/**
 * A preload for child processes (`node --expose-gc --import tsx --import ./test/support/force-gc.ts`)
 * that collects garbage every 100 ms, as a busy long-running process does sooner or later: an
 * object only weakly held (a timer's AbortSignal nobody references, say) goes at once.
 */
const gc = globalThis.gc;
if (!gc) throw new Error('force-gc.ts needs node --expose-gc');
setInterval(() => gc(), 100).unref(); // never what keeps the process alive
