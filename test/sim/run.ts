import { act } from './act.js';
import { endPhase } from './end-phase.js';
import { finalPhase } from './final-phase.js';
import type { Schedule } from './schedule.js';
import { Simulation } from './simulation.js';

/*
 * One run of the simulation, as the property test calls it. The parts, in the order a run
 * uses them: cast.ts (the chat and each device's role), simulation.ts (the world, the devices'
 * sessions and the delivery loop), act.ts (each step of the schedule), final-phase.ts
 * (convergence rounds and the bound on their calls, then invariants 1-5), liveness.ts and
 * end-phase.ts (the chat ends; invariants again; sends after the end refused). The
 * world itself is sim-server.ts, sim-network.ts, sim-transport.ts and watch-stream.ts.
 */

/** How a run is set up beyond its schedule. */
export interface RunOptions {
  /** False: clients speak the original offsets-only protocol. */
  readonly detectDivergence?: boolean;
  /** Receives a line per action and per delivery. */
  readonly trace?: (line: string) => void;
  /** False: skip the liveness phase (the control run looks at invariants 1-6 only). */
  readonly liveness?: boolean;
  /**
   * How clients reach the final server when failures stop: `quiet` (the default), their
   * transports move and open watches stay where they are, as when a transport returns home;
   * `drop`, their connections drop first, so every open watch breaks (hides a session that
   * does not re-home its watch on a move, to see what else fails).
   */
  readonly finalMove?: 'quiet' | 'drop';
}

/** What a passing run did, for the figures the test prints. */
export interface RunStats {
  readonly actions: number;
  /** Calls the clients made, in the whole run. */
  readonly calls: number;
  /** Calls the clients made after failures stopped, and the bound they had to stay within. */
  readonly finalCalls: number;
  readonly finalBound: number;
  readonly rounds: number;
  readonly messages: number;
  /** Calls the end phase took (end-phase.ts); 0 when it did not run. */
  readonly endCalls?: number;
  /** MarkReads the servers acknowledged (read-marks.ts). */
  readonly marks?: number;
  /** Messages carrying a lifecycle event in the final server's chat. */
  readonly events: number;
  /** Most deliveries a last message took to reach everyone, and the bound it had. */
  readonly livenessDeliveries: number;
  readonly livenessBound: number;
}

/** Runs one schedule against fresh servers and clients; throws a SimulationFailure for a broken invariant. */
export async function runSchedule(schedule: Schedule, options: RunOptions = {}): Promise<RunStats> {
  const simulation = new Simulation(schedule, options);
  try {
    await simulation.open();
    for (const [i, action] of schedule.actions.entries()) {
      options.trace?.(`#${i + 1} ${JSON.stringify(action)}`);
      await act(simulation, action);
    }
    const stats = await finalPhase(simulation);
    // The control run (offsets only, no liveness) stops at invariants 1-6; every other run ends the chat.
    if (options.liveness === false) return stats;
    return { ...stats, endCalls: await endPhase(simulation), marks: simulation.reads.marks };
  } finally {
    await simulation.close();
  }
}
