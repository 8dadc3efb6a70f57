import { type ChatEvent, EventKind, MessageType } from '../../generated/chat/v1/chat.js';
import { ChatSdkError } from '../../src/client/errors.js';
import { ChatSession } from '../../src/client/index.js';
import type { ChatMethod, RequestOf } from '../../src/client/transport.js';
import { DOMAIN_LIMITS } from '../support/domain.js';
import { derived } from '../support/random.js';
import { CHAT_ID, Device, POLL_INTERVAL_MS, principalOf, ROLES, SEALER, SMALL_PAGE_BYTES, SMALL_UPLOAD_BYTES } from './cast.js';
import { probabilities } from './faults.js';
import { ReadMarks } from './read-marks.js';
import { SimulationFailure } from './invariants.js';
import type { RunOptions } from './run.js';
import { CLIENT_NAMES, type Schedule, SERVER_NAMES } from './schedule.js';
import { quiescence, SimClock } from './sim-clock.js';
import { SimNetwork } from './sim-network.js';
import { SimServer } from './sim-server.js';
import { SimTransport } from './sim-transport.js';

/** Who the notices' events are about: the agent-side participants. */
const PARTICIPANTS = ['agent-1', 'agent-2', 'bot-1'];

/** Sleeps a session may take without any delivery in between before it is said to spin. */
const SPIN_LIMIT = 10_000;

/** An operation a step or the final phase started (a send, a sync): whether it has ended. */
export interface Operation {
  settled: boolean;
}

/**
 * One run's world and cast: the servers and network, the devices with their sessions, and what
 * the checks need of what happened (who was acknowledged and who first held each message, and
 * the unexpected outcomes seen). The steps (act.ts) and the final phase (final-phase.ts) drive
 * it; it delivers, letting every session react after each delivery, and watches the outboxes.
 */
export class Simulation {
  private readonly clock = new SimClock();
  readonly network: SimNetwork;
  readonly servers: SimServer[];
  readonly devices: Device[] = [];
  /** Each acknowledged id and who it was acknowledged to. */
  readonly acknowledged = new Map<string, string>();
  /** Each id any device held at some point, and the first device seen holding it. */
  readonly delivered = new Map<string, string>();
  /** What each sent id was sent as, for the checks to compare copies with. */
  readonly sentAs = new Map<string, { content: string; type: MessageType; senderId: string }>();
  /** The read positions devices marked at the wire level, and the furthest each reader was acknowledged. */
  readonly reads = new ReadMarks();
  /** The lifecycle event each sent id carries (SYSTEM messages of the notices device), added on the wire. */
  readonly events = new Map<string, ChatEvent>();
  /** Draws whether (and which) event a notices message carries. */
  private readonly eventLuck: () => number;
  /** Unexpected outcomes seen along the way (a send rejected, a server throwing). */
  private readonly errors: string[] = [];
  /** Sleeps taken since the last delivery (a session that only sleeps spins). */
  private sleeps = 0;

  constructor(
    readonly schedule: Schedule,
    readonly options: RunOptions,
  ) {
    this.network = new SimNetwork(derived(schedule.seed, 0), this.clock, principalOf, options.trace);
    this.network.faults = probabilities(schedule.faults);
    const epochs = derived(schedule.seed, 1);
    const limits = { ...DOMAIN_LIMITS, ...(schedule.smallPages ? { maxResponseBytes: SMALL_PAGE_BYTES } : {}) };
    this.servers = SERVER_NAMES.map(
      (name) => new SimServer(name, limits, this.clock, () => `${name}-${Math.floor(epochs() * 2 ** 48).toString(16)}`, SEALER),
    );
    for (const server of this.servers) server.onCrash(() => this.network.crashed(server));
    this.eventLuck = derived(schedule.seed, 3);
  }

  /** Gives every device of the cast its transport (to its home server) and opens its session. */
  async open(): Promise<void> {
    for (const [index, name] of CLIENT_NAMES.entries()) {
      const transport = new SimTransport(name, this.network, this.servers, this.schedule.homes[index] ?? 0);
      transport.rewrite = (method, request) => this.withEvent(method, request);
      const device = new Device(index, name, transport);
      this.devices.push(device);
      await this.connect(device);
    }
  }

  /** Opens the device's session on its store: at the start, and again after the device restarts. */
  async connect(device: Device): Promise<void> {
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

  /** Closes every session, whatever the run ended in, so no receiver outlives it. */
  async close(): Promise<void> {
    await Promise.all(this.devices.map((d) => d.session.close()));
  }

  /** Starts the device's next message; `signal` abandons it (the schedule's step is over). */
  send(device: Device, signal: AbortSignal): Operation {
    return this.sendLast(device, signal).op;
  }

  /**
   * As `send`, also saying which id it sent (liveness follows that id to every device). A
   * SYSTEM message carries `event` when given, and otherwise (during the run) now and then a
   * JOINED, LEFT or TRANSFERRED event; ENDED is kept for the end phase (end-phase.ts).
   */
  sendLast(device: Device, signal: AbortSignal, event?: ChatEvent): { id: string; op: Operation } {
    const n = device.sent.length + 1;
    const id = `${device.name}-${n}`;
    const role = ROLES[this.devices.indexOf(device)]!;
    const content = `message ${n} from ${device.name}`;
    const carried = role.type === MessageType.MESSAGE_TYPE_SYSTEM ? (event ?? this.drawEvent()) : undefined;
    if (carried) this.events.set(id, carried);
    device.sent.push(id);
    this.sentAs.set(id, { content, type: role.type, senderId: role.senderId });
    const sending = device.session.send(content, { id, signal });
    return { id, op: this.track(device, `send ${id}`, sending.then((stored) => this.acknowledge(device, stored.id))) };
  }

  /** Three notices in four carry an event about one of the agent-side participants. */
  private drawEvent(): ChatEvent | undefined {
    if (this.eventLuck() < 0.25) return undefined;
    const who = PARTICIPANTS[Math.floor(this.eventLuck() * PARTICIPANTS.length)]!;
    const kind = [EventKind.EVENT_KIND_JOINED, EventKind.EVENT_KIND_JOINED, EventKind.EVENT_KIND_LEFT, EventKind.EVENT_KIND_TRANSFERRED][Math.floor(this.eventLuck() * 4)]!;
    const to = kind === EventKind.EVENT_KIND_TRANSFERRED ? PARTICIPANTS.filter((p) => p !== who)[Math.floor(this.eventLuck() * (PARTICIPANTS.length - 1))]! : '';
    return { kind, participantId: who, toParticipantId: to, reason: kind === EventKind.EVENT_KIND_TRANSFERRED ? 'shift change' : '' };
  }

  /** Adds the event an outgoing send's message carries (the SDK has no way to say it yet). */
  private withEvent<M extends ChatMethod>(method: M, request: RequestOf<M>): RequestOf<M> {
    if (method !== 'addAgentMessage') return request;
    const send = request as RequestOf<'addAgentMessage'>;
    const event = send.message && this.events.get(send.message.id);
    if (!event || !send.message) return request;
    return { ...send, message: { ...send.message, event } } as RequestOf<M>;
  }

  /**
   * Watches an operation: an abort or a close ends it quietly, any other failure is an
   * unexpected outcome, raised at the end of the next delivery loop.
   */
  track(device: Device, what: string, promise: Promise<unknown>): Operation {
    const op: Operation = { settled: false };
    promise
      .catch((error: unknown) => {
        if (!(error instanceof ChatSdkError && (error.kind === 'aborted' || error.kind === 'closed'))) this.errors.push(`${device.name} ${what} failed: ${String(error)}`);
      })
      .finally(() => (op.settled = true));
    return op;
  }

  /** Delivers up to `max` calls (until `done()`), letting every client react after each. */
  async deliver(max: number, done: () => boolean = () => false): Promise<void> {
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

  /** A sent id that was in an outbox and has left it was acknowledged, even if its send was abandoned. */
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

  /** Notes who first held each message, for the invariants on where messages came from. */
  observeCopies(): void {
    for (const device of this.devices) {
      for (const m of device.session.messages) if (!this.delivered.has(m.id)) this.delivered.set(m.id, device.name);
    }
  }

  private acknowledge(device: Device, id: string): void {
    if (device.acked.has(id)) return;
    device.acked.add(id);
    this.acknowledged.set(id, device.name);
  }

  /** Turns what went wrong along the way into the run's failure: server bugs first. */
  private raiseErrors(): void {
    if (this.network.internalErrors.length > 0) {
      throw new SimulationFailure('server error', `a handler threw: ${String(this.network.internalErrors[0])}`);
    }
    if (this.errors.length > 0) throw new SimulationFailure('client error', this.errors.join('; '));
  }
}
