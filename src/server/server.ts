import { Server, type ServerOptions } from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import type { Logger } from 'pino';
import { ChatServiceService } from '../../generated/chat/v1/chat.js';
import { type Clock, systemClock } from '../domain/limits.js';
import { ChatStore } from '../domain/store.js';
import { authenticator } from './authentication.js';
import { logCalls } from './call-log.js';
import { chatHandlers, chatServiceHandlers } from './chat-service.js';
import { type Config, withDerivedBudgets } from './config.js';
import { capConnections, type ConnectionCounts, openFilesLimit } from './connection-cap.js';
import { decodingServer, refuseUndecodable, withDecodeFailures } from './decoding.js';
import { withEncodedResponses } from './encoded-responses.js';
import { heapLimitBytes, heapProbe } from './heap-probe.js';
import { markInsecure } from './insecure-marker.js';
import { rateLimitedWarning } from './rate-limited-warning.js';
import { rateLimits } from './rate-limits.js';
import type { RebuildRefusals } from './rebuild-budget.js';
import { addReflection } from './reflection.js';
import { ResponseBudget } from './response-budget.js';
import { loadSealer, type SealStatus, sealStatus } from './seal-keys.js';
import { WatchStreams } from './stream.js';
import { serverCredentials } from './tls.js';

const CHAT_SERVICE = 'chat.v1.ChatService';

/** A running chat server. */
export interface ChatServer {
  /** The port it listens on (useful when it was asked for port 0). */
  readonly port: number;
  /** The configuration in effect, with what start-up derives (the held-bytes budget, the connection cap) filled in. */
  readonly config: Config;
  readonly store: ChatStore;
  /** Whether it seals messages, and the ids of its seal keys. */
  readonly seals: SealStatus;
  /** The open WatchChat streams (one being cut off counts until it has ended). */
  readonly watches: { readonly size: number };
  /** Bytes of answers encoded and not yet taken by their clients (unary answers and watch pages). */
  readonly responses: { readonly bytesInFlight: number };
  /** Open connections, and those `maxConnections` refused or closed (idle) to make room. */
  readonly connections: ConnectionCounts;
  /** The Rebuild uploads `rebuildBytesPerSecond` refused. */
  readonly rebuildUploads: RebuildRefusals;
  /**
   * Reports NOT_SERVING on health ('' and chat.v1.ChatService) and changes nothing else: calls,
   * watches and new connections are still served, while balancers learn to send no more. The
   * first step of a shutdown (see src/server/shutdown.ts).
   */
  drain(): void;
  /**
   * Stops taking calls (the listener closes), reports NOT_SERVING, ends open watches
   * (UNAVAILABLE), lets calls in flight finish for up to `graceMs`, then cuts off whatever is
   * left. Called again while stopping, it returns the same promise, and a shorter grace cuts
   * off sooner.
   */
  stop(graceMs?: number): Promise<void>;
}

/** The server could not listen on its address; the message names the address and the cause. */
export class ListenError extends Error {
  override readonly name = 'ListenError';
}

/**
 * Starts the chat, health and reflection services on `config.host:config.port`, over TLS when
 * `config.tlsCertFile` is set (tls.ts; its files unusable: a ConfigError), sealing messages when
 * `config.sealKeysFile` is set (seal-keys.ts; the file unusable: a ConfigError). `clock` stamps
 * sends and paces the rate limits and the Rebuild upload budget; `random` draws each watch's
 * lifetime. Refuses to start (ConfigError) without a key source for bearer tokens and seal keys
 * unless `config.insecure` (src/server/authentication.ts).
 */
export async function startServer(
  loaded: Config,
  logger: Logger,
  clock: Clock = systemClock,
  random: () => number = Math.random,
): Promise<ChatServer> {
  const config = withDerivedBudgets(loaded, heapLimitBytes(), openFilesLimit());
  const credentials = serverCredentials(config); // first: a bad certificate file stops start-up before anything runs
  const authenticate = await authenticator(config);
  const sealer = await loadSealer(config);
  const heap = heapProbe(config.heapProbeIntervalMs);
  const store = new ChatStore(config, clock, undefined, {
    probe: heap.probe,
    onEviction: (report) => {
      const level = report.stillShort ? 'warn' : 'info';
      logger[level]({ ...report, totals: store.memoryEvictions }, 'heap above its high-water mark: evicted idle chats');
    },
    ...(sealer && {
      sealer,
      onForgery: ({ chatId, refused }) => logger.warn({ chatId, refused }, 'forged or altered messages refused'),
    }),
  });
  const noteRefusedUpload = rateLimitedWarning(logger, 'refused', 'rebuild uploads refused: the server admits no more now (--rebuild-bytes-per-second)');
  const limits = rateLimits(config, () => clock.now().getTime(), noteRefusedUpload);
  const responses = new ResponseBudget(config);
  const watches = new WatchStreams(config, logger, responses, random);
  // logCalls first: it wraps grpc-js's own call, so it sees every status, refuseUndecodable's too.
  // markInsecure adds x-chat-insecure: true to the chat calls' response metadata on an insecure server.
  const interceptors = [logCalls(logger, config), refuseUndecodable, ...(config.insecure ? [markInsecure] : [])];
  const server = new Server({ ...serverOptions(config), interceptors });
  // Every service decodes through withDecodeFailures, so an undecodable request is INVALID_ARGUMENT on each.
  const services = decodingServer(server);
  server.addService(
    withDecodeFailures(withEncodedResponses(ChatServiceService), { generated: true }),
    chatServiceHandlers(chatHandlers(store, clock, logger, limits), watches, {
      logger,
      responses,
      unaryDeadlineMs: config.unaryDeadlineMs,
      authenticate,
    }),
  );
  const health = new HealthImplementation({ '': 'SERVING', [CHAT_SERVICE]: 'SERVING' });
  health.addToServer(services);
  addReflection(services);

  const address = `${config.host}:${config.port}`;
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(address, credentials, (error, bound) => (error ? reject(error) : resolve(bound)));
  }).catch((error: unknown) => {
    heap.close();
    throw new ListenError(`cannot listen on ${address}: ${bindFailure(error)}`, { cause: error });
  });

  const connections = capConnections(server, config.maxConnections, logger);
  const sweeper = config.idleChatTtlMs > 0 ? sweepIdleChats(store, config.idleChatTtlMs, clock, logger) : undefined;

  const drain = () => {
    health.setStatus('', 'NOT_SERVING');
    health.setStatus(CHAT_SERVICE, 'NOT_SERVING');
  };
  let stopping: Promise<void> | undefined;
  let stopped = false;
  let cutOff: { readonly at: number; readonly timer: NodeJS.Timeout } | undefined;
  const stop = (graceMs = config.shutdownGraceMs) => {
    stopping ??= new Promise<void>((resolve) => {
      clearInterval(sweeper);
      heap.close();
      drain();
      watches.endAll();
      server.tryShutdown(() => {
        stopped = true;
        clearTimeout(cutOff?.timer);
        resolve();
      });
    });
    const at = performance.now() + graceMs;
    if (!stopped && (cutOff === undefined || at < cutOff.at)) {
      clearTimeout(cutOff?.timer);
      cutOff = { at, timer: setTimeout(() => server.forceShutdown(), graceMs) };
    }
    return stopping;
  };
  return { port, config, store, seals: sealStatus(sealer), watches, responses, connections, rebuildUploads: limits.rebuildBytes, drain, stop };
}

/**
 * Why grpc-js could not bind, in a few words: node's reason and code for a socket that would
 * not listen (grpc-js lists them in its message), or that the host did not resolve.
 */
function bindFailure(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const refused = /listen (E[A-Z]+): ([a-z][a-z ]*[a-z])/.exec(message);
  if (refused) return `${refused[2]} (${refused[1]})`;
  if (message.startsWith('Name resolution failed')) return 'the host name does not resolve to an address';
  return message.replaceAll(/\s+/g, ' ');
}

/**
 * grpc-js server options: keepalive pings, so a dead peer's connection (and its watches) is
 * noticed, and a policy that lets clients ping for their own keepalive. (grpc-js 1.14 does not
 * police client pings; the policy is stated for servers and proxies that do.) The largest
 * request, refused (RESOURCE_EXHAUSTED) as it arrives, before it is buffered whole. Then the
 * connection limits grpc-js 1.14 supports: concurrent streams (sent as HTTP/2
 * SETTINGS_MAX_CONCURRENT_STREAMS), idle time and age. A setting of 0 ("never") is left out:
 * grpc-js would take 0 ms literally and close every connection at once.
 */
export function serverOptions(config: Config): ServerOptions {
  return {
    'grpc.keepalive_time_ms': config.keepaliveTimeMs,
    'grpc.keepalive_timeout_ms': config.keepaliveTimeoutMs,
    'grpc.http2.min_ping_interval_without_data_ms': config.keepaliveMinPingIntervalMs,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.max_receive_message_length': config.maxRequestBytes,
    ...(config.maxConcurrentStreamsPerConnection > 0 && { 'grpc.max_concurrent_streams': config.maxConcurrentStreamsPerConnection }),
    ...(config.maxConnectionIdleMs > 0 && { 'grpc.max_connection_idle_ms': config.maxConnectionIdleMs }),
    ...(config.maxConnectionAgeMs > 0 && {
      'grpc.max_connection_age_ms': config.maxConnectionAgeMs,
      'grpc.max_connection_age_grace_ms': config.maxConnectionAgeGraceMs,
    }),
  };
}

/** Evicts chats idle for `ttlMs`, checking a few times per TTL (at least once a minute). */
function sweepIdleChats(store: ChatStore, ttlMs: number, clock: Clock, logger: Logger): NodeJS.Timeout {
  const timer = setInterval(() => {
    const evicted = store.evictIdle(new Date(clock.now().getTime() - ttlMs));
    if (evicted > 0) logger.info({ evicted, idleChatTtlMs: ttlMs }, 'evicted idle chats');
  }, Math.min(60_000, Math.max(1, Math.floor(ttlMs / 4))));
  timer.unref();
  return timer;
}
