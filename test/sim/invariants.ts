import { type ChatEvent, type ChatMessage, MessageType } from '../../generated/chat/v1/chat.js';
import { participantsOf } from '../../src/domain/events.js';
import type { EventKind } from '../../src/domain/message.js';

/** A broken invariant, named, with the data that shows it. */
export class SimulationFailure extends Error {
  override readonly name = 'SimulationFailure';

  constructor(
    readonly invariant: string,
    detail: string,
  ) {
    super(`${invariant}: ${detail}`);
  }
}

/** What one device did and holds at the end of a run. */
export interface ClientState {
  readonly name: string;
  /** Its placed messages, in conversation order. */
  readonly messages: readonly ChatMessage[];
  readonly offsets: { readonly visitorOffset: number; readonly agentOffset: number };
  /** The ids it sent, in the order it sent them. */
  readonly sent: readonly string[];
  /** Every id a `message` event announced to it. */
  readonly announced: ReadonlySet<string>;
}

/** Everything the checks look at once the run has settled. */
export interface FinalState {
  readonly server: {
    readonly name: string;
    /** Everything it holds (gaps too), in conversation order. */
    readonly messages: readonly ChatMessage[];
    /** What a client reading from 0/0, page by page, receives. */
    readonly read: readonly ChatMessage[];
    readonly offsets: { readonly visitor: number; readonly agent: number };
  };
  readonly clients: readonly ClientState[];
  /** Each acknowledged id and who it was acknowledged to. */
  readonly acknowledged: ReadonlyMap<string, string>;
  /** Each id any client held at some point, and the first client seen holding it. */
  readonly delivered: ReadonlyMap<string, string>;
  /** What each sent id must carry: content, type, sender. */
  readonly sentAs: ReadonlyMap<string, { readonly content: string; readonly type: MessageType; readonly senderId: string }>;
  /** The lifecycle event each id was sent with; an id not here was sent without one. */
  readonly eventsAs?: ReadonlyMap<string, ChatEvent>;
}

const sideOf = (m: ChatMessage) => (m.messageType === MessageType.MESSAGE_TYPE_VISITOR ? 'visitor' : 'agent');
const line = (m: ChatMessage) => `${m.id} ${sideOf(m)}@${m.dataOffset} t=${m.sendTime ? m.sendTime.getTime() / 1000 - 1_767_225_600 : '?'}`;
const list = (messages: readonly ChatMessage[]) => (messages.length === 0 ? '(none)' : messages.map(line).join(', '));

/** Checks invariants 1 to 5 of docs/reference.md section 5 (and that events announced every message). */
export function checkInvariants(state: FinalState): void {
  durability(state);
  uniqueness(state);
  density(state);
  convergence(state);
  senderOrder(state);
  integrity(state);
  events(state);
  participants(state);
  announcements(state);
}

const eventText = (e: ChatEvent | undefined) => (e ? `${e.kind}:${e.participantId}>${e.toParticipantId}:${e.reason}` : 'none');

/** Events are part of the message: the server holds each exactly as it was sent (and no other). */
function events({ server, eventsAs }: FinalState): void {
  if (!eventsAs) return;
  for (const m of server.messages) {
    const sent = eventText(eventsAs.get(m.id));
    if (eventText(m.event) !== sent) {
      throw new SimulationFailure('events (integrity)', `server ${server.name} holds ${m.id} with event ${eventText(m.event)}; it was sent with ${sent}`);
    }
  }
}

/** The agent-side participants a copy's events derive (src/domain/events.ts). */
export function participantsIn(messages: readonly ChatMessage[]): string[] {
  return participantsOf(messages.map((m) => ({ event: m.event && { ...m.event, kind: m.event.kind as number as EventKind } })));
}

/** Every converged copy derives the same participants as the server. */
function participants({ server, clients }: FinalState): void {
  const expected = participantsIn(server.messages).join(', ');
  for (const { name, messages } of [{ name: `a client reading server ${server.name} from 0/0`, messages: server.read }, ...clients]) {
    const actual = participantsIn(messages).join(', ');
    if (actual !== expected) {
      throw new SimulationFailure('participants (derived)', `${name} derives participants [${actual}]; server ${server.name} derives [${expected}]`);
    }
  }
}

function durability({ server, clients, acknowledged, delivered }: FinalState): void {
  const holders = [{ name: `server ${server.name}`, ids: new Set(server.messages.map((m) => m.id)) }];
  for (const c of clients) holders.push({ name: c.name, ids: new Set(c.messages.map((m) => m.id)) });
  const must = new Map<string, string>();
  for (const [id, to] of delivered) must.set(id, `delivered to ${to}`);
  for (const [id, to] of acknowledged) must.set(id, `acknowledged to ${to}`);
  for (const [id, why] of must) {
    const missing = holders.filter((h) => !h.ids.has(id)).map((h) => h.name);
    if (missing.length > 0) {
      throw new SimulationFailure('invariant 1 (durability)', `message ${id} (${why}) is missing from ${missing.join(', ')}; server holds ${list(server.messages)}`);
    }
  }
}

function uniqueness({ server, clients }: FinalState): void {
  for (const { name, messages } of [{ name: `server ${server.name}`, messages: server.messages }, ...clients]) {
    const seen = new Set<string>();
    for (const m of messages) {
      if (seen.has(m.id)) throw new SimulationFailure('invariant 2 (uniqueness)', `${name} holds ${m.id} twice: ${list(messages)}`);
      seen.add(m.id);
    }
  }
}

function density({ server, clients }: FinalState): void {
  const check = (name: string, messages: readonly ChatMessage[], reported: { visitor: number; agent: number }) => {
    for (const side of ['visitor', 'agent'] as const) {
      const offsets = messages.filter((m) => sideOf(m) === side).map((m) => m.dataOffset).sort((a, b) => a - b);
      const dense = offsets.every((offset, i) => offset === i + 1);
      if (!dense || reported[side] !== offsets.length) {
        throw new SimulationFailure(
          'invariant 5 (density)',
          `${name}'s ${side} side holds offsets [${offsets.join(', ')}] and reports ${reported[side]}; expected 1..${offsets.length}`,
        );
      }
    }
  };
  check(`server ${server.name}`, server.messages, server.offsets);
  for (const c of clients) check(c.name, c.messages, { visitor: c.offsets.visitorOffset, agent: c.offsets.agentOffset });
}

function convergence({ server, clients }: FinalState): void {
  const expected = server.messages.map(line);
  const views = [{ name: `a client reading server ${server.name} from 0/0`, messages: server.read }, ...clients];
  for (const { name, messages } of views) {
    const actual = messages.map(line);
    const at = firstDifference(expected, actual);
    if (at >= 0) {
      throw new SimulationFailure(
        'invariant 3 (convergence)',
        `${name} differs from server ${server.name} at position ${at + 1}:\n    server: ${list(server.messages)}\n    ${name}: ${list(messages)}`,
      );
    }
  }
}

function senderOrder({ server, clients }: FinalState): void {
  const offsetOf = new Map(server.messages.map((m) => [m.id, m.dataOffset]));
  for (const c of clients) {
    const placed = c.sent.map((id) => `${id}@${offsetOf.get(id)}`);
    for (let i = 1; i < c.sent.length; i += 1) {
      if (!((offsetOf.get(c.sent[i]!) ?? 0) > (offsetOf.get(c.sent[i - 1]!) ?? 0))) {
        throw new SimulationFailure('invariant 4 (sender order)', `${c.name} sent ${c.sent.join(', ')} in that order; server ${server.name} holds them at ${placed.join(', ')}`);
      }
    }
  }
}

function integrity({ server, sentAs }: FinalState): void {
  for (const m of server.messages) {
    const sent = sentAs.get(m.id);
    if (!sent || sent.content !== m.content || sent.type !== m.messageType || sent.senderId !== m.senderId) {
      throw new SimulationFailure(
        'invariant 7 (integrity)',
        `server ${server.name} holds ${m.id} as ${JSON.stringify({ content: m.content, type: m.messageType, sender: m.senderId })}; it was sent as ${JSON.stringify(sent)}`,
      );
    }
  }
}

function announcements({ clients }: FinalState): void {
  for (const c of clients) {
    const silent = c.messages.filter((m) => !c.announced.has(m.id));
    if (silent.length > 0) {
      throw new SimulationFailure('message events', `${c.name} holds ${list(silent)} but no 'message' event announced them`);
    }
  }
}

function firstDifference(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i += 1) if (a[i] !== b[i]) return i;
  return -1;
}
