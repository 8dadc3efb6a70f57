import { type ChatMessage, MessageType } from '../../generated/chat/v1/chat.js';
import { ChatSdkError } from '../../src/client/errors.js';
import { MemoryStore } from '../../src/client/local-store.js';
import { ChatSession, type Role } from '../../src/client/index.js';
import { DEFAULT_CONFIG } from '../../src/server/config.js';
import { checkInvariants, type ClientState, SimulationFailure } from './invariants.js';
import { derived } from '../support/random.js';
import { type Action, CLIENT_NAMES, type FaultRates, type Schedule, SERVER_NAMES } from './schedule.js';
import { NO_FAULTS, quiescence, SimClock, SimNetwork, SimServer, SimTransport } from './world.js';

export const CHAT_ID = 'chat-1';

const ROLES: readonly { readonly role: Role; readonly type: MessageType; readonly senderId: string }[] = [
  { role: { kind: 'visitor', visitorId: 'visitor-1' }, type: MessageType.MESSAGE_TYPE_VISITOR, senderId: 'visitor-1' },
  { role: { kind: 'visitor', visitorId: 'visitor-1' }, type: MessageType.MESSAGE_TYPE_VISITOR, senderId: 'visitor-1' },
  { role: { kind: 'agent', agentId: 'agent-1' }, type: MessageType.MESSAGE_TYPE_AGENT, senderId: 'agent-1' },
  { role: { kind: 'agent', agentId: 'agent-2' }, type: MessageType.MESSAGE_TYPE_AGENT, senderId: 'agent-2' },
  { role: { kind: 'service', serviceId: 'bot-1', messageType: 'bot' }, type: MessageType.MESSAGE_TYPE_BOT, senderId: 'bot-1' },
  { role: { kind: 'service', serviceId: 'system-1', messageType: 'system' }, type: MessageType.MESSAGE_TYPE_SYSTEM, senderId: 'system-1' },
];

/** Small pages: about 8 messages per read or rebuild answer, and per upload. */
const SMALL_PAGE_BYTES = 800;
const SMALL_UPLOAD_BYTES = 1024 + 600;
/**
 * Rounds of syncs after the failures: in the first the server learns everything, in the second
 * every client reads it, the third changes nothing. More is a progress failure.
 */
export const MAX_FINAL_ROUNDS = 4;
/**
 * The poll interval given to polling sessions. The simulation injects an instant `sleep`, so a
 * session that waits through it polls again as soon as its last read is answered. A session
 * that waits on a real timer instead (today's `poll()` uses node:timers/promises) would make a
 * run depend on wall time; an hour never passes within a run, so such a session polls once at
 * `start()` and then only when something else makes it read.
 */
export const POLL_INTERVAL_MS = 3_600_000;
/** Sleeps a session may take without any delivery in between before it is said to spin. */
const SPIN_LIMIT = 10_000;

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

export interface RunStats {
  readonly actions: number;
  /** Calls the clients made, in the whole run. */
  readonly calls: number;
  /** Calls the clients made after failures stopped, and the bound they had to stay within. */
  readonly finalCalls: number;
  readonly finalBound: number;
  readonly rounds: number;
  readonly messages: number;
  /** Most deliveries a last message took to reach everyone, and the bound it had. */
  readonly livenessDeliveries: number;
  readonly livenessBound: number;
}

interface Operation {
  settled: boolean;
}

/** One device: a real ChatSession on a simulated transport and a store, and what it was seen doing. */
class Device {
  /** Replaced when the device restarts. */
  session!: ChatSession;
  readonly store = new MemoryStore();
  readonly sent: string[] = [];
  /** Sent ids seen in the outbox: once one leaves it, it was acknowledged. */
  readonly queued = new Set<string>();
  readonly acked = new Set<string>();
  readonly announced = new Set<string>();

  constructor(
    readonly index: number,
    readonly name: string,
    readonly transport: SimTransport,
  ) {}
}

/** Runs one schedule against fresh servers and clients; throws a SimulationFailure for a broken invariant. */
export async function runSchedule(schedule: Schedule, options: RunOptions = {}): Promise<RunStats> {
  const simulation = new Simulation(schedule, options);
  try {
    await simulation.open();
    for (const [i, action] of schedule.actions.entries()) {
      options.trace?.(`#${i + 1} ${JSON.stringify(action)}`);
      await simulation.act(action);
    }
    return await simulation.finish();
  } finally {
    await simulation.close();
  }
}

class Simulation {
  private readonly clock = new SimClock();
  private readonly network: SimNetwork;
  private readonly servers: SimServer[];
  private readonly devices: Device[] = [];
  private readonly acknowledged = new Map<string, string>();
  private readonly delivered = new Map<string, string>();
  private readonly sentAs = new Map<string, { content: string; type: MessageType; senderId: string }>();
  /** Unexpected outcomes seen along the way (a send rejected, a server throwing). */
  private readonly errors: string[] = [];
  /** Sleeps taken since the last delivery (a session that only sleeps spins). */
  private sleeps = 0;

  constructor(
    private readonly schedule: Schedule,
    private readonly options: RunOptions,
  ) {
    this.network = new SimNetwork(derived(schedule.seed, 0), this.clock, options.trace);
    this.network.faults = probabilities(schedule.faults);
    const epochs = derived(schedule.seed, 1);
    const limits = { ...DEFAULT_CONFIG, ...(schedule.smallPages ? { maxResponseBytes: SMALL_PAGE_BYTES } : {}) };
    this.servers = SERVER_NAMES.map(
      (name) => new SimServer(name, limits, this.clock, () => `${name}-${Math.floor(epochs() * 2 ** 48).toString(16)}`),
    );
    for (const server of this.servers) server.onCrash(() => this.network.crashed(server));
  }

  async open(): Promise<void> {
    for (const [index, name] of CLIENT_NAMES.entries()) {
      const transport = new SimTransport(name, this.network, this.servers, this.schedule.homes[index] ?? 0);
      const device = new Device(index, name, transport);
      this.devices.push(device);
      await this.connect(device);
    }
  }

  /** Opens the device's session on its store: at the start, and again after the device restarts. */
  private async connect(device: Device): Promise<void> {
    let ids = 0;
    const session = await ChatSession.open({
      chatId: CHAT_ID,
      role: ROLES[device.index]!.role,
      servers: [...SERVER_NAMES],
      transport: device.transport,
      store: device.store,
      detectDivergence: this.options.detectDivergence ?? true,
      receive: this.schedule.receive[device.index] ?? 'watch',
      pollIntervalMs: POLL_INTERVAL_MS,
      sleep: (_ms, signal) => this.sleep(device, signal),
      random: derived(this.schedule.seed, 10 + device.index),
      newId: () => `${device.name}-id-${++ids}`,
      ...(this.schedule.smallPages ? { maxUploadBytes: SMALL_UPLOAD_BYTES } : {}),
    });
    session.on('message', (m) => {
      device.announced.add(m.id);
      if (!this.delivered.has(m.id)) this.delivered.set(m.id, device.name);
    });
    session.on('failure', (error) => this.errors.push(`${device.name}'s receiver failed: ${error.message}`));
    device.session = session;
    session.start();
  }

  /** The instant sleep the sessions get; one that sleeps and sleeps without the network spins. */
  private sleep(device: Device, signal: AbortSignal): Promise<void> {
    this.sleeps += 1;
    if (this.sleeps < SPIN_LIMIT) return Promise.resolve();
    if (this.sleeps === SPIN_LIMIT) this.errors.push(`${device.name} slept ${SPIN_LIMIT} times without any delivery: it spins`);
    return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
  }

  async act(action: Action): Promise<void> {
    if ('luck' in action) this.network.reseed(derived(this.schedule.seed, 1000 + action.luck));
    switch (action.kind) {
      case 'send': {
        const device = this.devices[action.client]!;
        const stop = new AbortController();
        const op = this.send(device, stop.signal);
        await this.deliver(action.wait, () => op.settled);
        stop.abort();
        break;
      }
      case 'sync': {
        const device = this.devices[action.client]!;
        const stop = new AbortController();
        const op = this.track(device, 'sync', device.session.sync({ signal: stop.signal }));
        await this.deliver(action.wait, () => op.settled);
        stop.abort();
        break;
      }
      case 'deliver':
        await this.deliver(action.count);
        break;
      case 'reopen': {
        const device = this.devices[action.client]!;
        await device.session.close();
        await this.connect(device);
        break;
      }
      case 'crash':
      case 'restart':
      case 'down':
      case 'up':
        this.servers[action.server]![action.kind]();
        break;
      case 'evict':
        this.servers[action.server]!.evict(CHAT_ID);
        break;
      case 'switch': {
        const device = this.devices[action.client]!;
        this.network.disconnect(device.name);
        device.transport.routeTo(action.server);
        break;
      }
      case 'rehome':
        this.devices[action.client]!.transport.routeTo(action.server);
        break;
      case 'restart-watched': {
        const watched = this.servers.map((s) => this.network.watchedOn(s));
        const most = Math.max(...watched);
        const server = this.servers[most > 0 ? watched.indexOf(most) : action.server]!;
        server.crash();
        await this.deliver(action.gap);
        server.restart();
        break;
      }
      case 'flap':
        for (let i = 0; i < action.times; i += 1) {
          this.servers[action.server]!.crash();
          await this.deliver(action.gap);
          this.servers[action.server]!.restart();
          await this.deliver(action.gap);
        }
        break;
      case 'faults':
        this.network.faults = probabilities(action.rates);
        break;
    }
    this.observeCopies();
  }

  /**
   * Failures stop: no faults, every server up, every client pinned to the final server (a
   * move its transport's onMove listeners hear), and the network delivers oldest first. Then
   * rounds of "deliver every pending send, then every client syncs" until a round changes
   * nothing, within MAX_FINAL_ROUNDS and a bound on calls (invariant 6); then invariants 1-5;
   * then liveness: each device's last message reaches every other device by its receiver alone.
   */
  async finish(): Promise<RunStats> {
    this.network.faults = NO_FAULTS;
    this.network.fair = true;
    this.network.reseed(derived(this.schedule.seed, 2));
    this.network.dropDuplicates();
    for (const server of this.servers) if (!server.isUp) server.restart();
    for (const device of this.devices) {
      if (this.options.finalMove === 'drop') this.network.disconnect(device.name);
      device.transport.routeTo(this.schedule.finalServer, true);
    }
    const callsBefore = this.network.calls;
    const bound = this.finalBound();
    const progress = (what: string) =>
      new SimulationFailure('invariant 6 (progress)', `${what} after ${this.network.calls - callsBefore} calls since failures stopped (bound ${bound})`);

    let rounds = 0;
    for (let previous = ''; ; ) {
      rounds += 1;
      if (rounds > MAX_FINAL_ROUNDS) throw progress(`still changing after ${MAX_FINAL_ROUNDS} rounds of syncs`);
      await this.deliver(bound, () => this.devices.every((d) => d.session.pending.length === 0));
      const stuck = this.devices.filter((d) => d.session.pending.length > 0);
      if (stuck.length > 0) throw progress(`${stuck.map((d) => `${d.name} has ${d.session.pending.length} pending`).join(', ')}`);
      const syncs = this.devices.map((d) => this.track(d, 'final sync', d.session.sync()));
      await this.deliver(bound, () => syncs.every((s) => s.settled));
      if (!syncs.every((s) => s.settled)) throw progress('a sync did not finish');
      const now = this.fingerprint();
      if (now === previous) break;
      previous = now;
    }
    const finalCalls = this.network.calls - callsBefore;
    if (finalCalls > bound) throw progress('the final phase took too many calls');
    const messages = this.check();
    const live = this.options.liveness === false ? { deliveries: 0, bound: 0 } : await this.liveness();
    if (this.options.liveness !== false) this.check();
    return {
      actions: this.schedule.actions.length,
      calls: this.network.calls,
      finalCalls,
      finalBound: bound,
      rounds,
      messages,
      livenessDeliveries: live.deliveries,
      livenessBound: live.bound,
    };
  }

  /** Invariants 1-5 against the final server; returns how many messages it holds. */
  private check(): number {
    const server = this.servers[this.schedule.finalServer]!;
    const audit = server.audit(CHAT_ID);
    const read = server.read(CHAT_ID).flatMap((page) => page.messages);
    checkInvariants({
      server: {
        name: server.name,
        messages: audit.chat!.messages,
        read,
        offsets: { visitor: audit.chat!.visitorDataOffset, agent: audit.chat!.agentDataOffset },
      },
      clients: this.devices.map(
        (d): ClientState => ({ name: d.name, messages: d.session.messages, offsets: d.session.offsets, sent: d.sent, announced: d.announced }),
      ),
      acknowledged: this.acknowledged,
      delivered: this.delivered,
      sentAs: this.sentAs,
    });
    return audit.chat!.messages.length;
  }

  /**
   * Liveness, once everyone has converged on the final server F: each device in turn sends one
   * last message, and every other device must get it from its running receiver (its watch, or
   * its polling), nobody calling sync(). See livenessBound for how long that may take.
   */
  private async liveness(): Promise<{ deliveries: number; bound: number }> {
    const server = this.servers[this.schedule.finalServer]!.name;
    let most = 0;
    let bound = 0;
    for (const device of this.devices) {
      bound = Math.max(bound, this.livenessBound());
      const start = this.network.deliveries;
      const stop = new AbortController();
      const { id, op } = this.sendLast(device, stop.signal);
      await this.deliver(bound, () => op.settled);
      stop.abort();
      if (!device.acked.has(id)) {
        throw new SimulationFailure('liveness', `${device.name}'s last message ${id} was not acknowledged within ${bound} deliveries on ${server}`);
      }
      const others = this.devices.filter((d) => d !== device);
      const lacking = () => others.filter((d) => !d.session.messages.some((m) => m.id === id));
      await this.deliver(bound, () => lacking().length === 0);
      const missing = lacking();
      if (missing.length > 0) {
        const who = missing.map((d) => `${d.name} (${this.receiverOf(d)})`).join(', ');
        throw new SimulationFailure(
          'liveness',
          `${id}, sent by ${device.name} and stored on ${server}, never reached ${who} by their receivers alone within ${bound} deliveries after its ack`,
        );
      }
      most = Math.max(most, this.network.deliveries - start);
    }
    return { deliveries: most, bound };
  }

  /** How a device receives and where its watch is, for a failure message. */
  private receiverOf(device: Device): string {
    if (this.schedule.receive[device.index] === 'poll') return 'polling';
    const streams = this.network.watchesOf(device.name);
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
  private livenessBound(): number {
    const q = this.network.waiting + 2 * this.devices.length;
    return 4 * q;
  }

  async close(): Promise<void> {
    await Promise.all(this.devices.map((d) => d.session.close()));
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
  private finalBound(): number {
    const messages = this.devices.reduce((n, d) => n + d.sent.length, 0);
    const perPage = this.schedule.smallPages ? 4 : messages + 1;
    const pages = Math.ceil(messages / perPage) + 1;
    const pending = this.devices.reduce((n, d) => n + d.session.pending.length, 0);
    const rebuild = 2 + 2 * pages;
    const perClient = 2 * rebuild + (1 + pages) + MAX_FINAL_ROUNDS * (pages + 1);
    const base = this.network.waiting + this.devices.length * perClient + pending;
    const pollers = this.schedule.receive.filter((r) => r === 'poll').length;
    const watchers = this.devices.length - pollers;
    const changes = messages + 2 * this.devices.length;
    return (1 + pollers) * (base + 1) + watchers * (2 + MAX_FINAL_ROUNDS + 2 * changes);
  }

  private send(device: Device, signal: AbortSignal): Operation {
    return this.sendLast(device, signal).op;
  }

  private sendLast(device: Device, signal: AbortSignal): { id: string; op: Operation } {
    const n = device.sent.length + 1;
    const id = `${device.name}-${n}`;
    const role = ROLES[this.devices.indexOf(device)]!;
    const content = `message ${n} from ${device.name}`;
    device.sent.push(id);
    this.sentAs.set(id, { content, type: role.type, senderId: role.senderId });
    const sending = device.session.send(content, { id, signal });
    return { id, op: this.track(device, `send ${id}`, sending.then((stored) => this.acknowledge(device, stored.id))) };
  }

  private track(device: Device, what: string, promise: Promise<unknown>): Operation {
    const op: Operation = { settled: false };
    promise
      .catch((error: unknown) => {
        if (!(error instanceof ChatSdkError && (error.kind === 'aborted' || error.kind === 'closed'))) this.errors.push(`${device.name} ${what} failed: ${String(error)}`);
      })
      .finally(() => (op.settled = true));
    return op;
  }

  /** Delivers up to `max` calls (until `done()`), letting every client react after each. */
  private async deliver(max: number, done: () => boolean = () => false): Promise<void> {
    await quiescence();
    this.observeOutboxes();
    for (let n = 0; n < max && !done(); n += 1) {
      if (!this.network.deliverOne()) break;
      this.sleeps = 0;
      await quiescence();
      this.observeOutboxes();
    }
    this.raiseErrors();
  }

  private observeOutboxes(): void {
    for (const device of this.devices) {
      if (device.acked.size === device.sent.length) continue;
      const pending = new Set(device.session.pending.map((m) => m.id));
      for (const id of device.sent) {
        if (device.acked.has(id)) continue;
        if (pending.has(id)) device.queued.add(id);
        else if (device.queued.has(id)) {
          if (!device.session.messages.some((m) => m.id === id)) this.errors.push(`${id} left ${device.name}'s outbox but is not in its copy`);
          this.acknowledge(device, id);
        }
      }
    }
  }

  private observeCopies(): void {
    for (const device of this.devices) {
      for (const m of device.session.messages) if (!this.delivered.has(m.id)) this.delivered.set(m.id, device.name);
    }
  }

  private acknowledge(device: Device, id: string): void {
    if (device.acked.has(id)) return;
    device.acked.add(id);
    this.acknowledged.set(id, device.name);
  }

  private raiseErrors(): void {
    if (this.network.internalErrors.length > 0) {
      throw new SimulationFailure('server error', `a handler threw: ${String(this.network.internalErrors[0])}`);
    }
    if (this.errors.length > 0) throw new SimulationFailure('client error', this.errors.join('; '));
  }

  /** What a round of syncs may change: every copy and outbox, and the final server's chat. */
  private fingerprint(): string {
    const server = this.servers[this.schedule.finalServer]!.audit(CHAT_ID).chat!;
    const held = server.messages.map((m) => `${m.id}@${m.dataOffset}`).join(',');
    return `${server.epoch}:${held}|` + this.devices
      .map((d) => `${d.name}:${d.session.pending.length}:${d.session.messages.map((m: ChatMessage) => `${m.id}@${m.dataOffset}`).join(',')}`)
      .join('|');
  }
}

function probabilities(rates: FaultRates) {
  return { lostRequest: rates.lostRequest / 100, lostResponse: rates.lostResponse / 100, duplicate: rates.duplicate / 100 };
}
