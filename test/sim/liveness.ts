import type { Device } from './cast.js';
import { SimulationFailure } from './invariants.js';
import type { Simulation } from './simulation.js';

/**
 * Liveness, once everyone has converged on the final server F: each device in turn sends one
 * last message, and every other device must get it from its running receiver (its watch, or
 * its polling), nobody calling sync(). See livenessBound for how long that may take.
 */
export async function liveness(simulation: Simulation): Promise<{ deliveries: number; bound: number }> {
  const server = simulation.servers[simulation.schedule.finalServer]!.name;
  let most = 0;
  let bound = 0;
  for (const device of simulation.devices) {
    bound = Math.max(bound, livenessBound(simulation));
    const start = simulation.network.deliveries;
    const stop = new AbortController();
    const { id, op } = simulation.sendLast(device, stop.signal);
    await simulation.deliver(bound, () => op.settled);
    stop.abort();
    if (!device.acked.has(id)) {
      throw new SimulationFailure('liveness', `${device.name}'s last message ${id} was not acknowledged within ${bound} deliveries on ${server}`);
    }
    const others = simulation.devices.filter((d) => d !== device);
    const lacking = () => others.filter((d) => !d.session.messages.some((m) => m.id === id));
    await simulation.deliver(bound, () => lacking().length === 0);
    const missing = lacking();
    if (missing.length > 0) {
      const who = missing.map((d) => `${d.name} (${receiverOf(simulation, d)})`).join(', ');
      throw new SimulationFailure(
        'liveness',
        `${id}, sent by ${device.name} and stored on ${server}, never reached ${who} by their receivers alone within ${bound} deliveries after its ack`,
      );
    }
    most = Math.max(most, simulation.network.deliveries - start);
  }
  return { deliveries: most, bound };
}

/** How a device receives and where its watch is, for a failure message. */
function receiverOf(simulation: Simulation, device: Device): string {
  if (simulation.schedule.receive[device.index] === 'poll') return 'polling';
  const streams = simulation.network.watchesOf(device.name);
  return `watching; transport on ${device.transport.address}, ${streams.length === 0 ? 'no open watch' : `watch open on ${streams.join(', ')}`}`;
}

/**
 * The most deliveries a last message's ack may take, and then its reaching everyone. After
 * convergence there are no faults and no crashes, everyone is on F with F's epoch, and the
 * network delivers oldest first, so an event waits behind at most the Q events in flight:
 * those in flight now plus, per device, one of its receiver (a poll's read, a watch's
 * response) and one of its outbox. The send waits for the device's own turn (its receiver's
 * read in progress: Q) and then for its call (Q); each watcher on F then gets it with the
 * push after the one in flight (2Q), each poller with the read after the one in flight (2Q).
 * A receiver that needs more (one watching another server, one that stopped polling) never
 * gets it at all, so the bound need not be tight.
 */
function livenessBound(simulation: Simulation): number {
  const q = simulation.network.waiting + 2 * simulation.devices.length;
  return 4 * q;
}
