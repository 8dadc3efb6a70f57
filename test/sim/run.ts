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

export interface RunOptions {
  /** False: clients speak the original offsets-only protocol. */
  readonly detectDivergence?: boolean;
  /** Receives a line per action and per delivery. */
  readonly trace?: (line: string) => void;
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
      sleep: async () => {},
      random: derived(this.schedule.seed, 10 + device.index),
      newId: () => `${device.name}-id-${++ids}`,
      ...(this.schedule.smallPages ? { maxUploadBytes: SMALL_UPLOAD_BYTES } : {}),
    });
    session.on('message', (m) => {
      device.announced.add(m.id);
      if (!this.delivered.has(m.id)) this.delivered.set(m.id, device.name);
    });
    device.session = session;
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
      case 'switch':
        this.devices[action.client]!.transport.routeTo(action.server);
        break;
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
   * Failures stop: no faults, every server up, every client pinned to the final server. Then
   * rounds of "deliver every pending send, then every client syncs" until a round changes
   * nothing, within MAX_FINAL_ROUNDS and a bound on calls (invariant 6); then invariants 1-5.
   */
  async finish(): Promise<RunStats> {
    this.network.faults = NO_FAULTS;
    this.network.reseed(derived(this.schedule.seed, 2));
    this.network.dropDuplicates();
    for (const server of this.servers) if (!server.isUp) server.restart();
    for (const device of this.devices) device.transport.routeTo(this.schedule.finalServer, true);
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
    return {
      actions: this.schedule.actions.length,
      calls: this.network.calls,
      finalCalls,
      finalBound: bound,
      rounds,
      messages: audit.chat!.messages.length,
    };
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
   */
  private finalBound(): number {
    const messages = this.devices.reduce((n, d) => n + d.sent.length, 0);
    const perPage = this.schedule.smallPages ? 4 : messages + 1;
    const pages = Math.ceil(messages / perPage) + 1;
    const pending = this.devices.reduce((n, d) => n + d.session.pending.length, 0);
    const rebuild = 2 + 2 * pages;
    const perClient = 2 * rebuild + (1 + pages) + MAX_FINAL_ROUNDS * (pages + 1);
    return this.network.waiting + this.devices.length * perClient + pending;
  }

  private send(device: Device, signal: AbortSignal): Operation {
    const n = device.sent.length + 1;
    const id = `${device.name}-${n}`;
    const role = ROLES[this.devices.indexOf(device)]!;
    const content = `message ${n} from ${device.name}`;
    device.sent.push(id);
    this.sentAs.set(id, { content, type: role.type, senderId: role.senderId });
    const sending = device.session.send(content, { id, signal });
    return this.track(device, `send ${id}`, sending.then((stored) => this.acknowledge(device, stored.id)));
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
