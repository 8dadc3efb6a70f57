import type { ChannelCredentials, ChannelOptions, ServiceError } from '@grpc/grpc-js';
import type { ChatMessage, ReadPosition, Typing, Visitor } from '../../generated/chat/v1/chat.js';
import type { BackoffOptions } from './backoff.js';
import type { ChatSdkError } from './errors.js';
import type { LocalStore } from './local-store.js';
import type { HomeProbeOptions, Transport } from './transport.js';

/** A bearer token, or where to get the current one. */
export type TokenSource = string | (() => string | Promise<string>);

/** Who a session speaks as. A service posts bot messages (or system notices) on the agent side. */
export type Role =
  | { readonly kind: 'visitor'; readonly visitorId?: string }
  | { readonly kind: 'agent'; readonly agentId: string }
  | { readonly kind: 'service'; readonly serviceId: string; readonly messageType?: 'bot' | 'system' };

export interface ChatSessionOptions {
  readonly chatId: string;
  readonly role: Role;
  /**
   * Server addresses, or one load-balanced address. Give every client of a deployment the same
   * list, spelled the same way: each chat's home is picked from it by rendezvous hashing
   * (placement.ts), alike on every client, with the other addresses as its fallbacks in order.
   */
  readonly servers: readonly string[];
  /** Replaces the gRPC transport to `servers` (simulations, custom channels). */
  readonly transport?: Transport;
  /**
   * Carry the chat's epoch so that a server whose history differs from this copy's is rebuilt
   * even when the offsets look fine (docs/protocol.md). Default true; false speaks the
   * original offsets-only protocol, which can lose messages (docs/reference.md section 4).
   */
  readonly detectDivergence?: boolean;
  /** Where the copy lives; in memory unless given (use FileStore for a durable copy). */
  readonly store?: LocalStore;
  /** The visitor's details, uploaded with the copy when a server is rebuilt. */
  readonly visitor?: Visitor;
  /** How `start()` receives: `watch` (the default; the server pushes) or `poll`. */
  readonly receive?: 'watch' | 'poll';
  /** How often `start()` polls, with `receive: 'poll'`. Defaults for this and below: defaults.ts. */
  readonly pollIntervalMs?: number;
  /** Deadline of one call. */
  readonly callTimeoutMs?: number;
  /**
   * Largest Rebuild request, in bytes: at most the server's --max-request-bytes (a server
   * that refuses an upload for its size gets it again in halves, down to 4 KiB).
   */
  readonly maxUploadBytes?: number;
  /** Retries of failed calls. */
  readonly backoff?: Partial<BackoffOptions>;
  /** How often a session away from its chat's home checks whether the home is back. */
  readonly homeProbe?: Partial<HomeProbeOptions>;
  /**
   * How every channel is secured, calls and home probes alike: plaintext unless given;
   * `credentials.createSsl(caPem)` for TLS, `createSsl(caPem, keyPem, certPem)` for a server
   * that requires client certificates. Each server's certificate must name its address's host.
   */
  readonly credentials?: ChannelCredentials;
  /**
   * grpc-js channel options over the SDK's own. Each session has a connection of its own to each
   * server it uses, so a failover really reconnects; a process running thousands of sessions
   * (a bot, a load test) can share connections instead with `{'grpc.use_local_subchannel_pool':
   * 0}`: sessions with equal options to one address then share one connection, and a balancer
   * in between (HAProxy allows 1000 streams a connection in deploy/) bounds how many watches and
   * calls it carries at once.
   */
  readonly channelOptions?: ChannelOptions;
  /**
   * The bearer token (a JWT from your identity service), sent as `authorization: Bearer <token>`
   * on every call, watch and health probe: a string, or a function called for each of them, so
   * a token renewed after the old one expired is used at once. The server takes the sender ids
   * from it. A refusal of the token (UNAUTHENTICATED) or of what it grants (PERMISSION_DENIED)
   * is not retried: the operation rejects at once. Not used with a custom `transport`.
   */
  readonly token?: TokenSource;
  /** Closes the session when it fires. */
  readonly signal?: AbortSignal;
  /** Source of message ids, of jitter and of waiting (retries, polling), injectable for tests and simulations. */
  readonly newId?: () => string;
  readonly random?: () => number;
  readonly sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/** A rebuild this session did, as reported by the `rebuild` event. */
export interface RebuildEvent {
  readonly address: string;
  /** The offsets the server answered REBUILD_REQUIRED with (-1/-1: it had no such chat). */
  readonly serverBefore: { readonly visitor: number; readonly agent: number };
  /**
   * Why: `missing`, the server had no such chat; `diverged`, its chat is another incarnation
   * (epoch), so the whole copy went up; `behind`, the same history but shorter, so only what
   * it lacked went up; `strays`, messages of ours had lost their offsets and went up again.
   */
  readonly reason: 'missing' | 'diverged' | 'behind' | 'strays';
  readonly uploaded: number;
}

/** A failed call the session is about to retry, as reported by the `retry` event. */
export interface RetryEvent {
  readonly address: string;
  readonly error: ServiceError;
  readonly attempt: number;
  /** How long the session waits before the next attempt. */
  readonly delayMs: number;
  /**
   * When the server said when to come back (its grpc-retry-pushback-ms, on RESOURCE_EXHAUSTED):
   * that wait. `delayMs` is then this (at most 30 s) plus jitter, and the call goes again to the
   * same address.
   */
  readonly pushbackMs?: number;
}

export interface ChatSessionEvents {
  /** A message this copy did not hold before (sent by anyone, this device included). */
  message: [ChatMessage];
  rebuild: [RebuildEvent];
  retry: [RetryEvent];
  /** A call succeeded on this address (after a start, or a failover). */
  connected: [string];
  /** Background polling failed for good (the server refused a request); polling goes on. */
  failure: [ChatSdkError];
  /** A JOINED event new to this copy: who joined, and the message that says so. */
  joined: [string, ChatMessage];
  /** A LEFT event new to this copy. */
  left: [string, ChatMessage];
  /** A TRANSFERRED event new to this copy: who handed the chat over, and to whom. */
  transferred: [{ readonly from: string; readonly to: string }, ChatMessage];
  /** The ENDED event, once this copy holds it: sends are refused from now on. */
  ended: [ChatMessage];
  /** A reader's position moved (this session's own marks included). */
  read: [ReadPosition];
  /** The list of who is typing changed (a watch said so, or an entry lapsed). */
  typing: [Typing[]];
}
