import { Server, ServerCredentials, type ServerOptions } from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import type { Logger } from 'pino';
import { ChatServiceService } from '../../generated/chat/v1/chat.js';
import { type Clock, systemClock } from '../domain/limits.js';
import { ChatStore } from '../domain/store.js';
import { chatHandlers, chatServiceHandlers } from './chat-service.js';
import { type Config, withDerivedBudgets } from './config.js';
import { withDecodeFailures } from './decoding.js';
import { heapLimitBytes, heapProbe } from './heap-probe.js';
import { addReflection } from './reflection.js';
import { WatchStreams } from './stream.js';

const CHAT_SERVICE = 'chat.v1.ChatService';

/** A running chat server. */
export interface ChatServer {
  /** The port it listens on (useful when it was asked for port 0). */
  readonly port: number;
  /** The configuration in effect, with what start-up derives (the held-bytes budget) filled in. */
  readonly config: Config;
  readonly store: ChatStore;
  /** The open WatchChat streams (one being cut off counts until it has ended). */
  readonly watches: { readonly size: number };
  /**
   * Stops taking calls, reports NOT_SERVING, ends open watches (UNAVAILABLE), lets calls in
   * flight finish for up to `graceMs`, then cuts off whatever is left.
   */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts the chat, health and reflection services on `config.host:config.port`. `random` draws
 * each watch's lifetime.
 */
export async function startServer(
  loaded: Config,
  logger: Logger,
  clock: Clock = systemClock,
  random: () => number = Math.random,
): Promise<ChatServer> {
  const config = withDerivedBudgets(loaded, heapLimitBytes());
  const heap = heapProbe(config.heapProbeIntervalMs);
  const store = new ChatStore(config, clock, undefined, {
    probe: heap.probe,
    onEviction: (report) => {
      const level = report.stillShort ? 'warn' : 'info';
      logger[level]({ ...report, totals: store.memoryEvictions }, 'heap above its high-water mark: evicted idle chats');
    },
  });
  const watches = new WatchStreams(config, logger, random);
  const server = new Server(serverOptions(config));
  server.addService(withDecodeFailures(ChatServiceService), chatServiceHandlers(chatHandlers(store, clock, logger), watches, logger));
  const health = new HealthImplementation({ '': 'SERVING', [CHAT_SERVICE]: 'SERVING' });
  health.addToServer(server);
  addReflection(server);

  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${config.host}:${config.port}`, ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    );
  }).catch((error: unknown) => {
    heap.close();
    throw error;
  });

  const sweeper = config.idleChatTtlMs > 0 ? sweepIdleChats(store, config.idleChatTtlMs, clock, logger) : undefined;

  let stopping: Promise<void> | undefined;
  const stop = (graceMs = config.shutdownGraceMs) => {
    clearInterval(sweeper);
    heap.close();
    stopping ??= new Promise<void>((resolve) => {
      health.setStatus('', 'NOT_SERVING');
      health.setStatus(CHAT_SERVICE, 'NOT_SERVING');
      watches.endAll();
      const deadline = setTimeout(() => server.forceShutdown(), graceMs);
      server.tryShutdown(() => {
        clearTimeout(deadline);
        resolve();
      });
    });
    return stopping;
  };
  return { port, config, store, watches, stop };
}

/**
 * grpc-js server options: keepalive pings, so a dead peer's connection (and its watches) is
 * noticed, and a policy that lets clients ping for their own keepalive. (grpc-js 1.14 does not
 * police client pings; the policy is stated for servers and proxies that do.)
 */
export function serverOptions(config: Config): ServerOptions {
  return {
    'grpc.keepalive_time_ms': config.keepaliveTimeMs,
    'grpc.keepalive_timeout_ms': config.keepaliveTimeoutMs,
    'grpc.http2.min_ping_interval_without_data_ms': config.keepaliveMinPingIntervalMs,
    'grpc.keepalive_permit_without_calls': 1,
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
