import { MessageType } from '../../generated/chat/v1/chat.js';
import type { ChatSession, Role } from '../../src/client/index.js';
import { MemoryStore } from '../../src/client/local-store.js';
import type { Principal } from '../../src/domain/access.js';
import { Sealer } from '../../src/domain/seal.js';
import { CLIENT_NAMES } from './schedule.js';
import type { SimTransport } from './sim-transport.js';

/*
 * Who takes part in a run, and how they are set up: the one chat, the role each device of
 * CLIENT_NAMES plays in it (by index), and the sizes and intervals their sessions and the
 * servers are given.
 */

/** The one chat every run is about. */
export const CHAT_ID = 'chat-1';

/** Each device's role, by its index in CLIENT_NAMES, and the type and sender its messages carry. */
export const ROLES: readonly { readonly role: Role; readonly type: MessageType; readonly senderId: string }[] = [
  { role: { kind: 'visitor', visitorId: 'visitor-1' }, type: MessageType.MESSAGE_TYPE_VISITOR, senderId: 'visitor-1' },
  { role: { kind: 'visitor', visitorId: 'visitor-1' }, type: MessageType.MESSAGE_TYPE_VISITOR, senderId: 'visitor-1' },
  { role: { kind: 'agent', agentId: 'agent-1' }, type: MessageType.MESSAGE_TYPE_AGENT, senderId: 'agent-1' },
  { role: { kind: 'agent', agentId: 'agent-2' }, type: MessageType.MESSAGE_TYPE_AGENT, senderId: 'agent-2' },
  { role: { kind: 'service', serviceId: 'bot-1', messageType: 'bot' }, type: MessageType.MESSAGE_TYPE_BOT, senderId: 'bot-1' },
  { role: { kind: 'service', serviceId: 'system-1', messageType: 'system' }, type: MessageType.MESSAGE_TYPE_SYSTEM, senderId: 'system-1' },
];

/**
 * Who each device is to the servers, by its name: the principal its token names, as on a secure
 * server (its sender id as `sub`, a visitor's chat). The servers check every call against it.
 */
export function principalOf(client: string): Principal {
  const role = ROLES[CLIENT_NAMES.indexOf(client as (typeof CLIENT_NAMES)[number])]?.role;
  if (!role) throw new Error(`no device is called ${client}`);
  switch (role.kind) {
    case 'visitor':
      return { sub: role.visitorId ?? 'visitor', role: 'visitor', chatId: CHAT_ID };
    case 'agent':
      return { sub: role.agentId, role: 'agent' };
    case 'service':
      return { sub: role.serviceId, role: 'service' };
  }
}

/** The seal keys every server shares, as one deployment's do: each takes back what another sealed. */
export const SEALER = new Sealer({ current: 'sim', keys: new Map([['sim', Buffer.alloc(32, 7)]]) });

/** Small pages: about 8 messages per read or rebuild answer (the servers' response budget)... */
export const SMALL_PAGE_BYTES = 800;
/** ...and per upload (the sessions' budget), when a schedule asks for small pages. */
export const SMALL_UPLOAD_BYTES = 1024 + 600;
/**
 * The poll interval given to polling sessions. The simulation injects an instant `sleep`, so a
 * session that waits through it polls again as soon as its last read is answered. A session
 * that waits on a real timer instead (today's `poll()` uses node:timers/promises) would make a
 * run depend on wall time; an hour never passes within a run, so such a session polls once at
 * `start()` and then only when something else makes it read.
 */
export const POLL_INTERVAL_MS = 3_600_000;

/** One device: a real ChatSession on a simulated transport and a store, and what it was seen doing. */
export class Device {
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
