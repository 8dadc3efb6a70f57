import type { FaultRates } from './schedule.js';

/** Fault probabilities, each in [0, 1], applied per delivery. */
export interface Faults {
  /** The request never reaches the server: UNAVAILABLE. */
  readonly lostRequest: number;
  /** The server applies it, the answer is lost: UNAVAILABLE or DEADLINE_EXCEEDED. */
  readonly lostResponse: number;
  /** A copy of the request is delivered again later (nobody sees that answer). */
  readonly duplicate: number;
}

/** A healthy network: what the final phase runs on. */
export const NO_FAULTS: Faults = Object.freeze({ lostRequest: 0, lostResponse: 0, duplicate: 0 });

/** A schedule's fault rates (percent) as the probabilities the network draws against. */
export function probabilities(rates: FaultRates): Faults {
  return { lostRequest: rates.lostRequest / 100, lostResponse: rates.lostResponse / 100, duplicate: rates.duplicate / 100 };
}
