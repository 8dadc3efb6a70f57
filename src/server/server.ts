import { Server, type ServerOptions } from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import type { Logger } from 'pino';
import { ChatServiceService } from '../../generated/chat/v1/chat.js';
import { type Clock, systemClock } from '../domain/limits.js';
import { ChatStore, rebuildReason } from '../domain/store.js';
import { authenticator } from './authentication.js';
import { logCalls } from './call-log.js';
import { interceptCalls } from './call-taps.js';
import { chatHandlers, chatServiceHandlers } from './chat-service.js';
import { type Config, withDerivedBudgets } from './config.js';
import { capConnections, type ConnectionCounts, openFilesLimit } from './connection-cap.js';
import { decodingServer, undecodableRefusal, withDecodeFailures } from './decoding.js';
import { withEncodedResponses } from './encoded-responses.js';
import { heapLimitBytes, heapProbe } from './heap-probe.js';
import { markInsecure } from './insecure-marker.js';
import { ListenError } from './listen-error.js';
import { ServerMetrics } from './metrics.js';
import { type MetricsAddress, type MetricsEndpoint, serveMetrics } from './metrics-endpoint.js';
import { callGate } from './placement.js';
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
  /** Where it serves Prometheus metrics (the port picked, when it was asked for 0); undefined: off (no `metricsPort`). */
  readonly metrics: MetricsAddress | undefined;
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
   * left; then closes the metrics server, which served until then. Called again while
   * stopping, it returns the same promise, and a shorter grace cuts off sooner.
   */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts the chat, health and reflection services on `config.host:config.port`, and with
 * `config.metricsPort` Prometheus metrics over HTTP (metrics.ts, metrics-endpoint.ts), over TLS when
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
  const metrics = config.metricsPort === undefined ? undefined : new ServerMetrics();
  const store = new ChatStore(config, clock, undefined, {
    typing: { ttlMs: config.typingTtlMs, throttleMs: Math.min(1_000, config.typingTtlMs / 2) },
    probe: heap.probe,
    onEviction: (report) => {
      const level = report.stillShort ? 'warn' : 'info';
      logger[level]({ ...report, totals: store.memoryEvictions }, 'heap above its high-water mark: evicted idle chats');
      metrics?.evicted('heap', report.chats);
    },
    ...(sealer && {
      sealer,
      onForgery: ({ chatId, refused }) => logger.warn({ chatId, refused }, 'forged or altered messages refused'),
    }),
    ...(metrics && {
      onRebuildRequired: (cause) => metrics.rebuildRequired(cause),
      onRebuild: (outcome) => metrics.rebuilt(rebuildReason(outcome)),
    }),
  });
  const noteRefusedUpload = rateLimitedWarning(logger, 'refused', 'rebuild uploads refused: the server admits no more now (--rebuild-bytes-per-second)');
  const limits = rateLimits(config, () => clock.now().getTime(), noteRefusedUpload);
  const responses = new ResponseBudget(config);
  const watches = new WatchStreams(config, logger, responses, random);
  metrics?.gaugeHoldings(() => ({ chats: store.size, messages: store.messageCount, bytes: store.heldBytes, watchers: watches.size, transcriptsPending: store.pendingTranscripts }));
  // One interceptor: the call log and the metrics hear every status, grpc-js's own and the
  // refusals of undecodable requests too; an insecure server marks its answers x-chat-insecure.
  const interceptor = interceptCalls({
    taps: [logCalls(logger, config), ...(metrics ? [metrics.calls] : [])],
    refusal: undecodableRefusal,
    ...(config.insecure && { responseMetadata: markInsecure }),
  });
  const server = new Server({ ...serverOptions(config), interceptors: [interceptor] });
  // Every service decodes through withDecodeFailures, so an undecodable request is INVALID_ARGUMENT on each.
  const services = decodingServer(server);
  server.addService(
    // Rebuild's uploads are admitted by their size on the wire (--rebuild-bytes-per-second).
    withDecodeFailures(withEncodedResponses(ChatServiceService), { generated: true, sized: ['rebuild'] }),
    chatServiceHandlers(chatHandlers(store, clock, logger, limits), watches, {
      logger,
      responses,
      unaryDeadlineMs: config.unaryDeadlineMs,
      gate: callGate(authenticate, config.requireChatIdHeader),
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
    throw new ListenError(`cannot listen on ${address}`, error, '--port or --host');
  });
  const endpoint: MetricsEndpoint | undefined =
    metrics && config.metricsPort !== undefined
      ? await serveMetrics(metrics.registry, config.metricsHost || config.host, config.metricsPort, logger).catch((error: unknown) => {
          heap.close();
          server.forceShutdown();
          throw error;
        })
      : undefined;

  const connections = capConnections(server, config.maxConnections, logger);
  const onIdleEviction = (evicted: number) => metrics?.evicted('idle', evicted);
  const sweeper = config.idleChatTtlMs > 0 ? sweepIdleChats(store, config.idleChatTtlMs, clock, logger, onIdleEviction) : undefined;
  // Typing lapses are pushed to watchers within a tenth of the indication's life (at most 250 ms late).
  const lapser = setInterval(() => store.lapseTyping(), Math.max(10, Math.min(250, Math.floor(config.typingTtlMs / 10)))).unref();

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
      clearInterval(lapser);
      heap.close();
      drain();
      watches.endAll();
      server.tryShutdown(() => {
        stopped = true;
        clearTimeout(cutOff?.timer);
        void (endpoint?.close() ?? Promise.resolve()).then(resolve);
      });
    });
    const at = performance.now() + graceMs;
    if (!stopped && (cutOff === undefined || at < cutOff.at)) {
      clearTimeout(cutOff?.timer);
      cutOff = { at, timer: setTimeout(() => server.forceShutdown(), graceMs) };
    }
    return stopping;
  };
  const metricsAddress = endpoint && { host: endpoint.host, port: endpoint.port, url: endpoint.url };
  return { port, metrics: metricsAddress, config, store, seals: sealStatus(sealer), watches, responses, connections, rebuildUploads: limits.rebuildBytes, drain, stop };
}

/**
 * grpc-js server options: keepalive pings, so a dead peer's connection (and its watches) is
 * noticed, and a policy that lets clients ping for their own keepalive. (grpc-js 1.14 does not
 * police client pings; the policy is stated for servers and proxies that do.) The largest
 * request, refused (RESOURCE_EXHAUSTED) as it arrives, before it is buffered whole. Then the
 * connection limits grpc-js 1.14 supports: concurrent streams (sent as HTTP/2
 * SETTINGS_MAX_CONCURRENT_STREAMS), idle time and age. A setting of 0 ("never") is left out:
 * grpc-js would take 0 ms literally and close every connection at once.
 *
 * Channelz stays on though no channelz service is served (its accounting costs a call a few
 * percent of its CPU): grpc-js 1.14 tracks a connection for forceShutdown only in its channelz
 * handlers, so with 'grpc.enable_channelz' 0 a stop's grace would end without closing any
 * connection (test/server/shutdown.test.ts, "cuts off sooner", fails so).
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

/** Evicts chats idle for `ttlMs`, checking a few times per TTL (at least once a minute); `onEviction` hears how many each time. */
function sweepIdleChats(store: ChatStore, ttlMs: number, clock: Clock, logger: Logger, onEviction: (evicted: number) => void): NodeJS.Timeout {
  const timer = setInterval(() => {
    const evicted = store.evictIdle(new Date(clock.now().getTime() - ttlMs));
    if (evicted === 0) return;
    logger.info({ evicted, idleChatTtlMs: ttlMs }, 'evicted idle chats');
    onEviction(evicted);
  }, Math.min(60_000, Math.max(1, Math.floor(ttlMs / 4))));
  timer.unref();
  return timer;
}
