/** A seeded source of numbers in [0, 1): mulberry32, small and fast, the same on every machine. */
export type Random = () => number;

/** A generator seeded with `seed` (any 32-bit integer). */
export function seeded(seed: number): Random {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** A generator for one part of a run, independent of how much the other parts draw. */
export function derived(seed: number, stream: number): Random {
  return seeded(Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) + Math.imul(stream + 1, 0xc2b2ae35));
}

/** True with probability `p`. */
export function chance(random: Random, p: number): boolean {
  return p > 0 && random() < p;
}

/** An index below `length`. */
export function below(random: Random, length: number): number {
  return Math.floor(random() * length);
}
