import type { ChatMessage } from '../../generated/chat/v1/chat.js';
import { derived } from '../support/random.js';
import { CHAT_ID } from './cast.js';
import { NO_FAULTS } from './faults.js';
import { checkInvariants, type ClientState, SimulationFailure } from './invariants.js';
import { liveness } from './liveness.js';
import type { RunStats } from './run.js';
import type { Simulation } from './simulation.js';

/**
 * Rounds of syncs after the failures: in the first the server learns everything, in the second
 * every client reads it, the third changes nothing. More is a progress failure.
 */
export const MAX_FINAL_ROUNDS = 4;

/**
 * Failures stop: no faults, every server up, every client pinned to the final server (a
 * move its transport's onMove listeners hear), and the network delivers oldest first. Then
 * rounds of "deliver every pending send, then every client syncs" until a round changes
 * nothing, within MAX_FINAL_ROUNDS and a bound on calls (invariant 6); then invariants 1-5;
 * then liveness: each device's last message reaches every other device by its receiver alone.
 */
export async function finalPhase(simulation: Simulation): Promise<RunStats> {
  simulation.network.faults = NO_FAULTS;
  simulation.network.fair = true;
  simulation.network.reseed(derived(simulation.schedule.seed, 2));
  simulation.network.dropDuplicates();
  for (const server of simulation.servers) if (!server.isUp) server.restart();
  for (const device of simulation.devices) {
    if (simulation.options.finalMove === 'drop') simulation.network.disconnect(device.name);
    device.transport.routeTo(simulation.schedule.finalServer, true);
  }
  const callsBefore = simulation.network.calls;
  const bound = finalBound(simulation);
  const progress = (what: string) =>
    new SimulationFailure('invariant 6 (progress)', `${what} after ${simulation.network.calls - callsBefore} calls since failures stopped (bound ${bound})`);

  let rounds = 0;
  for (let previous = ''; ; ) {
    rounds += 1;
    if (rounds > MAX_FINAL_ROUNDS) throw progress(`still changing after ${MAX_FINAL_ROUNDS} rounds of syncs`);
    await simulation.deliver(bound, () => simulation.devices.every((d) => d.session.pending.length === 0));
    const stuck = simulation.devices.filter((d) => d.session.pending.length > 0);
    if (stuck.length > 0) throw progress(`${stuck.map((d) => `${d.name} has ${d.session.pending.length} pending`).join(', ')}`);
    const syncs = simulation.devices.map((d) => simulation.track(d, 'final sync', d.session.sync()));
    await simulation.deliver(bound, () => syncs.every((s) => s.settled));
    if (!syncs.every((s) => s.settled)) throw progress('a sync did not finish');
    const now = fingerprint(simulation);
    if (now === previous) break;
    previous = now;
  }
  const finalCalls = simulation.network.calls - callsBefore;
  if (finalCalls > bound) throw progress('the final phase took too many calls');
  const messages = check(simulation);
  const events = simulation.servers[simulation.schedule.finalServer]!.audit(CHAT_ID).chat!.messages.filter((m) => m.event).length;
  const live = simulation.options.liveness === false ? { deliveries: 0, bound: 0 } : await liveness(simulation);
  if (simulation.options.liveness !== false) check(simulation);
  return {
    actions: simulation.schedule.actions.length,
    calls: simulation.network.calls,
    finalCalls,
    finalBound: bound,
    rounds,
    messages,
    events,
    livenessDeliveries: live.deliveries,
    livenessBound: live.bound,
  };
}

/** Invariants 1-5 against the final server; returns how many messages it holds. */
export function check(simulation: Simulation): number {
  const server = simulation.servers[simulation.schedule.finalServer]!;
  const audit = server.audit(CHAT_ID);
  const read = server.read(CHAT_ID).flatMap((page) => page.messages);
  checkInvariants({
    server: {
      name: server.name,
      messages: audit.chat!.messages,
      read,
      offsets: { visitor: audit.chat!.visitorDataOffset, agent: audit.chat!.agentDataOffset },
    },
    clients: simulation.devices.map(
      (d): ClientState => ({ name: d.name, messages: d.session.messages, offsets: d.session.offsets, sent: d.sent, announced: d.announced }),
    ),
    acknowledged: simulation.acknowledged,
    delivered: simulation.delivered,
    sentAs: simulation.sentAs,
    eventsAs: simulation.events,
  });
  return audit.chat!.messages.length;
}

/**
 * The most calls the final phase may take (invariant 6). Once failures stop there are no
 * faults and no crashes, and every client is pinned to the final server F, whose chat keeps
 * one epoch from then on. Calls still in flight are answered once each. A client then needs
 * at most two whole-copy rebuilds of F (its own, and one more if F refuses the rest of an
 * upload it had begun on another server), each a read, the upload's parts, a read of every
 * page when the answer is truncated, and a read after; one upload of strays; then its epoch
 * is F's, every pending send takes one call and every sync reads what is new, page by page,
 * plus one empty read. Pages and upload parts hold at least `perPage` messages (small pages
 * hold about 8), so everything is linear in the messages the run created.
 *
 * The receivers run meanwhile. The network delivers oldest first and a poller keeps one read
 * in flight, so between two other deliveries each poller is served at most once: its calls
 * multiply the rest by at most (1 + pollers). A watcher opens a stream after each catch-up
 * (at most one per rebuild and round) and is pushed at most one response per change of F's
 * chat (each message added; each rebuild) and one to open.
 */
export function finalBound(simulation: Simulation): number {
  const messages = simulation.devices.reduce((n, d) => n + d.sent.length, 0);
  const perPage = simulation.schedule.smallPages ? 4 : messages + 1;
  const pages = Math.ceil(messages / perPage) + 1;
  const pending = simulation.devices.reduce((n, d) => n + d.session.pending.length, 0);
  const rebuild = 2 + 2 * pages;
  const perClient = 2 * rebuild + (1 + pages) + MAX_FINAL_ROUNDS * (pages + 1);
  const base = simulation.network.waiting + simulation.devices.length * perClient + pending;
  const pollers = simulation.schedule.receive.filter((r) => r === 'poll').length;
  const watchers = simulation.devices.length - pollers;
  const changes = messages + 2 * simulation.devices.length;
  return (1 + pollers) * (base + 1) + watchers * (2 + MAX_FINAL_ROUNDS + 2 * changes);
}

/** What a round of syncs may change: every copy and outbox, and the final server's chat. */
export function fingerprint(simulation: Simulation): string {
  const server = simulation.servers[simulation.schedule.finalServer]!.audit(CHAT_ID).chat!;
  const held = server.messages.map((m) => `${m.id}@${m.dataOffset}`).join(',');
  return `${server.epoch}:${held}|` + simulation.devices
    .map((d) => `${d.name}:${d.session.pending.length}:${d.session.messages.map((m: ChatMessage) => `${m.id}@${m.dataOffset}`).join(',')}`)
    .join('|');
}
