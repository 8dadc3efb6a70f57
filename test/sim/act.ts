import { derived } from '../support/random.js';
import { CHAT_ID } from './cast.js';
import { probabilities } from './faults.js';
import type { Action } from './schedule.js';
import type { Simulation } from './simulation.js';

/**
 * Carries out one step of a schedule. A step that runs an operation (a send, a sync) lets the
 * network deliver up to its `wait` and then abandons the operation, as a user who gives up
 * would; the network's choices during the step come from the step's own `luck`.
 */
export async function act(simulation: Simulation, action: Action): Promise<void> {
  if ('luck' in action) simulation.network.reseed(derived(simulation.schedule.seed, 1000 + action.luck));
  switch (action.kind) {
    case 'send': {
      const device = simulation.devices[action.client]!;
      const stop = new AbortController();
      const op = simulation.send(device, stop.signal);
      await simulation.deliver(action.wait, () => op.settled);
      stop.abort();
      break;
    }
    case 'sync': {
      const device = simulation.devices[action.client]!;
      const stop = new AbortController();
      const op = simulation.track(device, 'sync', device.session.sync({ signal: stop.signal }));
      await simulation.deliver(action.wait, () => op.settled);
      stop.abort();
      simulation.reads.mark(simulation, device); // MarkRead at the wire level (read-marks.ts)
      break;
    }
    case 'deliver':
      await simulation.deliver(action.count);
      break;
    case 'reopen': {
      const device = simulation.devices[action.client]!;
      await device.session.close();
      await simulation.connect(device);
      break;
    }
    case 'crash':
    case 'restart':
    case 'down':
    case 'up':
      simulation.servers[action.server]![action.kind]();
      break;
    case 'evict':
      simulation.servers[action.server]!.evict(CHAT_ID);
      break;
    case 'switch': {
      const device = simulation.devices[action.client]!;
      simulation.network.disconnect(device.name);
      device.transport.routeTo(action.server);
      break;
    }
    case 'rehome':
      simulation.devices[action.client]!.transport.routeTo(action.server);
      break;
    case 'restart-watched': {
      const watched = simulation.servers.map((s) => simulation.network.watchedOn(s));
      const most = Math.max(...watched);
      const server = simulation.servers[most > 0 ? watched.indexOf(most) : action.server]!;
      server.crash();
      await simulation.deliver(action.gap);
      server.restart();
      break;
    }
    case 'flap':
      for (let i = 0; i < action.times; i += 1) {
        simulation.servers[action.server]!.crash();
        await simulation.deliver(action.gap);
        simulation.servers[action.server]!.restart();
        await simulation.deliver(action.gap);
      }
      break;
    case 'faults':
      simulation.network.faults = probabilities(action.rates);
      break;
  }
  simulation.observeCopies();
}
