import type { Logger } from 'pino';
import type { Config } from './config.js';
import type { ChatServer } from './server.js';

/** The signals that stop the server. */
export const STOP_SIGNALS = ['SIGTERM', 'SIGINT'] as const;

/**
 * A signal that comes within this many milliseconds of the one that began the current step is
 * taken as a repeat of it, not as a second signal. `npm start` forwards SIGTERM and SIGINT to
 * the server, which a Ctrl-C (sent to the whole foreground process group) or a kill of the
 * process group also delivers directly: the same signal twice, well under a millisecond apart.
 */
export const REPEATED_SIGNAL_MS = 500;

/** Where the signals come from, and the clock that tells a repeat: `process` and `performance.now()` but in tests. */
export interface SignalSource {
  readonly signals?: Pick<NodeJS.EventEmitter, 'on' | 'off'>;
  readonly now?: () => number;
}

/**
 * Stops `server` in steps on SIGTERM or SIGINT, and resolves once it has stopped:
 *
 * 1. **Drain** for `drainMs`: health reports NOT_SERVING, while calls, watches and new
 *    connections are still served, so a balancer polling health moves new calls elsewhere.
 * 2. **Close**: the listener closes (new connections are refused), open watches end with
 *    UNAVAILABLE, and calls in flight have `shutdownGraceMs` to finish before they are cut off.
 *
 * Each further signal (not a repeat, see {@link REPEATED_SIGNAL_MS}) skips the rest of the
 * current step: a second one ends the drain at once, a third cuts off the calls in flight.
 */
export function shutdownOnSignals(
  server: Pick<ChatServer, 'drain' | 'stop'>,
  config: Pick<Config, 'drainMs' | 'shutdownGraceMs'>,
  logger: Logger,
  { signals = process, now = () => performance.now() }: SignalSource = {},
): Promise<void> {
  const { drainMs, shutdownGraceMs } = config;
  return new Promise<void>((resolve) => {
    let step: 'serving' | 'draining' | 'closing' = 'serving';
    let stepAt = 0;
    let drainAt = 0;
    let drainTimer: NodeJS.Timeout | undefined;

    const close = () => {
      step = 'closing';
      clearTimeout(drainTimer);
      const stopped = server.stop(shutdownGraceMs);
      logger.info({ shutdownGraceMs }, 'listener closed');
      void stopped.then(() => {
        for (const signal of STOP_SIGNALS) signals.off(signal, onSignal);
        logger.info({ ms: Math.round(now() - drainAt) }, 'stopped');
        resolve();
      });
    };

    const onSignal = (signal: NodeJS.Signals) => {
      const at = now();
      if (step !== 'serving' && at - stepAt < REPEATED_SIGNAL_MS) {
        logger.info({ signal, sinceMs: Math.round((at - stepAt) * 10) / 10, repeatedSignalMs: REPEATED_SIGNAL_MS }, 'signal taken as a repeat');
        return;
      }
      stepAt = at;
      if (step === 'serving') {
        step = 'draining';
        drainAt = at;
        logger.info({ signal, drainMs, shutdownGraceMs }, 'shutting down');
        server.drain();
        if (drainMs === 0) return close();
        drainTimer = setTimeout(() => {
          logger.info({ drainedMs: Math.round(now() - drainAt) }, 'drain over');
          close();
        }, drainMs);
      } else if (step === 'draining') {
        logger.info({ signal, drainedMs: Math.round(at - drainAt) }, 'drain cut short');
        close();
      } else {
        logger.warn({ signal }, 'cutting off the calls in flight');
        void server.stop(0);
      }
    };

    for (const signal of STOP_SIGNALS) signals.on(signal, onSignal);
  });
}
