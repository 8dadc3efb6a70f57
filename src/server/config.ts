import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { levels } from 'pino';
import type { Limits } from '../domain/limits.js';
import { MAX_ATTACHMENT_NAME_BYTES, MAX_ATTACHMENT_URI_BYTES, MAX_ATTACHMENTS, MAX_MEDIA_TYPE_BYTES } from '../domain/attachments.js';
import { MAX_EVENT_REASON_BYTES } from '../domain/events.js';

/** The most one attachment takes in a request: its strings at their limits, the digest and the size. */
const MAX_ATTACHMENT_REFERENCE_BYTES = MAX_ATTACHMENT_URI_BYTES + MAX_MEDIA_TYPE_BYTES + MAX_ATTACHMENT_NAME_BYTES + 64 + 32;

/** Everything the server can be told, with units in the names. */
export interface Config extends Limits {
  readonly host: string;
  readonly port: number;
  /**
   * The port of the plain HTTP server that serves Prometheus metrics at /metrics
   * (src/server/metrics-endpoint.ts). Undefined (the default): no metrics, nothing listens; 0
   * picks a free port, as for `port`, which is how in-process tests ask for one without racing
   * for it (the server says which in ChatServer.metrics and the start-up log).
   */
  readonly metricsPort: number | undefined;
  /** The address the metrics server listens on; '': the server's `host`. */
  readonly metricsHost: string;
  /** pino level: trace, debug, info, warn, error, fatal or silent. */
  readonly logLevel: string;
  /**
   * After SIGTERM or SIGINT, how long health reports NOT_SERVING while the server still serves
   * calls (new connections too), so a balancer that polls health stops sending it new ones;
   * then the listener closes. 0: no drain.
   */
  readonly drainMs: number;
  /** How long a shutdown waits for calls in flight before cutting them off. */
  readonly shutdownGraceMs: number;
  /** A chat no request touched for this long is dropped to free memory; clients rebuild it. 0: never. */
  readonly idleChatTtlMs: number;
  /**
   * A watcher whose stream has not taken its last response for this long (the client reads
   * too slowly, or not at all) is cut off with RESOURCE_EXHAUSTED; it watches again from its
   * offsets.
   */
  readonly watchStallMs: number;
  /**
   * After a cut-off, how long the status may wait behind responses the client has not read
   * before the stream is reset (ENHANCE_YOUR_CALM, which clients report as RESOURCE_EXHAUSTED).
   */
  readonly watchCutoffGraceMs: number;
  /**
   * Each watch ends with OK after a lifetime drawn uniformly between half this and this (0: no
   * limit), so a watcher a proxy pinned to one backend comes back through the balancer.
   */
  readonly watchMaxAgeMs: number;
  /** A typing indication lapses this long after it was last renewed (SetTyping). */
  readonly typingTtlMs: number;
  /** How often the server pings a connection to learn whether the peer is still there. */
  readonly keepaliveTimeMs: number;
  /** How long a ping may go unanswered before the connection (and its watches) is dropped. */
  readonly keepaliveTimeoutMs: number;
  /** How often clients may ping (with or without calls in flight), for their own keepalive. */
  readonly keepaliveMinPingIntervalMs: number;
  /** Most calls one connection may have open at once (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS). */
  readonly maxConcurrentStreamsPerConnection: number;
  /** A connection with no call open for this long is closed (GOAWAY); 0: never. */
  readonly maxConnectionIdleMs: number;
  /** A connection this old (±10%) is told to go away (GOAWAY), so clients reconnect; 0: never. */
  readonly maxConnectionAgeMs: number;
  /** How long calls on a connection past its maximum age may run before it is closed. */
  readonly maxConnectionAgeGraceMs: number;
  /**
   * Most connections open at once, over all listening addresses. At the cap a new connection
   * closes the one idle longest (no call open); only when every one has a call open is it closed
   * on accept. 0 (the default): derived at start-up from the open-file limit ({@link connectionCapFor}).
   */
  readonly maxConnections: number;
  /** A unary answer its client has not taken this long after it was ready is dropped (stream reset). 0: never. */
  readonly unaryDeadlineMs: number;
  /** Bytes of answers one connection may have in flight (not yet taken) before its reads are refused. 0: no limit. */
  readonly maxResponseBytesInFlightPerConnection: number;
  /** Bytes of answers the whole server may have in flight before reads are refused. 0: no limit. */
  readonly maxResponseBytesInFlight: number;
  /**
   * When `maxHeldBytes` is 0 (the default), it is set at start-up to this percent of V8's heap
   * limit (`v8.getHeapStatistics().heap_size_limit`).
   */
  readonly heldBytesHeapPercent: number;
  /** How often the heap is read for the high-water mark, at most. */
  readonly heapProbeIntervalMs: number;
  /**
   * Largest request, in bytes (gRPC's max receive message length): larger ones are refused
   * with RESOURCE_EXHAUSTED before they are decoded. It bounds the work one call does on the
   * event loop; a larger copy goes up in several Rebuilds (the SDK splits it).
   */
  readonly maxRequestBytes: number;
  /**
   * PEM certificate chain the server presents; with `tlsKeyFile` (both or neither) the server
   * speaks TLS only. '': plaintext. Read once at start-up.
   */
  readonly tlsCertFile: string;
  /** PEM private key of `tlsCertFile`. */
  readonly tlsKeyFile: string;
  /**
   * PEM CA certificate(s): with it the server requires every client to present a certificate
   * this CA signed (mutual TLS). Needs `tlsCertFile`. '': no client certificates asked for.
   */
  readonly tlsClientCaFile: string;
  /**
   * Checks no tokens: every caller may do anything, and sender ids are the request's. For
   * development only. Without it the server needs a key source below and `sealKeysFile`
   * (src/server/authentication.ts).
   */
  readonly insecure: boolean;
  /**
   * Refuses (FAILED_PRECONDITION) a chat call whose `x-chat-id` metadata is missing or names
   * another chat than its request: on behind a load balancer that hashes on it (deploy/).
   */
  readonly requireChatIdHeader: boolean;
  /** A file holding the HS256 secret bearer tokens are signed with (tests, small deployments). */
  readonly authHs256SecretFile: string;
  /** A local JWKS file (JSON) with the public keys bearer tokens are signed with. */
  readonly authJwksFile: string;
  /** A JWKS URL with those keys, fetched when a token names a key not yet seen, and cached. */
  readonly authJwksUrl: string;
  /** The issuer (iss) every token must name; empty: not checked. */
  readonly authIssuer: string;
  /** The audience (aud) every token must include; empty: not checked. */
  readonly authAudience: string;
  /** How far the server's clock and the issuer's may disagree on a token's exp and nbf. */
  readonly authClockToleranceMs: number;
  /** Sends (AddVisitorMessage, AddAgentMessage) per second per token subject; 0: no limit. */
  readonly rateSendsPerSecond: number;
  /** Sends a subject may make at once after a quiet time; 0: one second's worth. */
  readonly rateSendsBurst: number;
  /** Rebuild calls per second per token subject; 0: no limit. */
  readonly rateRebuildsPerSecond: number;
  /** Rebuild calls a subject may make at once after a quiet time; 0: one second's worth. */
  readonly rateRebuildsBurst: number;
  /** Most subjects the rate limits track at once (each limit); the least recently seen go first. */
  readonly rateMaxSubjects: number;
  /**
   * Bytes of Rebuild requests the whole server admits per second (a token bucket); an upload
   * past it is refused before it is merged, with when to retry. It keeps a failover storm (the
   * clients of a dead instance all uploading here at once) from taking the event loop from
   * sends and reads. 0: no budget. The default is explained in {@link DEFAULT_REBUILD_BYTES_PER_SECOND}.
   */
  readonly rebuildBytesPerSecond: number;
  /** Bytes of Rebuild requests admitted at once after a quiet time; 0: one second's worth (at least `maxRequestBytes`). */
  readonly rebuildBytesBurst: number;
  /**
   * A JSON file of the keys messages are sealed with (src/server/seal-keys.ts), read once at
   * start-up. With it, a Rebuild may add only messages a server with these keys accepted, so a
   * client (the durable store) cannot write history. '': seals off.
   */
  readonly sealKeysFile: string;
}

/**
 * The default upload budget, 4 MiB/s. A full 256 KiB Rebuild of short messages costs the event
 * loop about 28 ms on the 2-core machine this was measured on (decode 6.5, merge 17.5, answer 3;
 * `npx tsx scripts/rebuild-cost.ts`), 20-50 ms depending on where the messages land, plus their
 * seals' HMACs: the loop merges about 5-12 MB/s when it does nothing else. At 4 MiB/s, Rebuilds
 * take at most about half of it, and sends and reads keep the rest; a failover storm of 40 MB
 * still goes in within about 10 s, paced rather than all in the first second.
 */
const DEFAULT_REBUILD_BYTES_PER_SECOND = 4 * 1024 * 1024;

export const DEFAULT_CONFIG: Config = Object.freeze({
  host: '0.0.0.0',
  port: 50051,
  metricsPort: undefined,
  metricsHost: '',
  logLevel: 'info',
  drainMs: 5_000,
  shutdownGraceMs: 5_000,
  idleChatTtlMs: 30 * 60 * 1000,
  maxContentBytes: 64 * 1024,
  maxIdBytes: 256,
  maxAttachmentBytes: 100 * 1024 * 1024,
  maxResponseBytes: 1024 * 1024,
  maxRequestBytes: 256 * 1024,
  maxChats: 100_000,
  maxMessagesPerChat: 1_000_000,
  maxWatchers: 10_000,
  maxClockSkewMs: 5 * 60 * 1000,
  maxHeldBytes: 0,
  maxChatBytes: 64 * 1024 * 1024,
  messageOverheadBytes: 96,
  heldBytesHeapPercent: 40,
  heapHighWaterPercent: 80,
  heapLowWaterPercent: 70,
  heapProbeIntervalMs: 100,
  watchStallMs: 30_000,
  watchCutoffGraceMs: 1_000,
  watchMaxAgeMs: 5 * 60 * 1000,
  typingTtlMs: 5_000,
  keepaliveTimeMs: 60_000,
  keepaliveTimeoutMs: 20_000,
  keepaliveMinPingIntervalMs: 10_000,
  maxConcurrentStreamsPerConnection: 1_000,
  maxConnectionIdleMs: 5 * 60 * 1000,
  maxConnectionAgeMs: 30 * 60 * 1000,
  maxConnectionAgeGraceMs: 60_000,
  maxConnections: 0,
  unaryDeadlineMs: 30_000,
  maxResponseBytesInFlightPerConnection: 16 * 1024 * 1024,
  maxResponseBytesInFlight: 1024 * 1024 * 1024,
  tlsCertFile: '',
  tlsKeyFile: '',
  tlsClientCaFile: '',
  insecure: false,
  requireChatIdHeader: false,
  authHs256SecretFile: '',
  authJwksFile: '',
  authJwksUrl: '',
  authIssuer: '',
  authAudience: '',
  authClockToleranceMs: 30_000,
  rateSendsPerSecond: 0,
  rateSendsBurst: 0,
  rateRebuildsPerSecond: 0,
  rateRebuildsBurst: 0,
  rateMaxSubjects: 100_000,
  rebuildBytesPerSecond: DEFAULT_REBUILD_BYTES_PER_SECOND,
  rebuildBytesBurst: 0,
  sealKeysFile: '',
});

/**
 * What each setting means, in one line, for --help: the operator's words, the one place they
 * are written (the interface above says why a setting exists). Typed over every key, so a new
 * setting does not compile without its meaning.
 */
export const MEANINGS: Readonly<Record<keyof Config, string>> = Object.freeze({
  host: 'address to listen on (0.0.0.0: every IPv4 interface)',
  port: 'port to listen on (0 picks a free one; the start log says which)',
  metricsPort: 'port to serve Prometheus metrics on over HTTP, at /metrics (0 picks a free one); none: off',
  metricsHost: 'address the metrics server listens on; none: the --host',
  logLevel: `least level logged: ${Object.keys(levels.values).join(', ')} or silent`,
  drainMs: 'after SIGTERM/SIGINT, how long health says NOT_SERVING while calls are still served; 0: no drain',
  shutdownGraceMs: 'after the drain, how long calls in flight may finish before they are cut off',
  idleChatTtlMs: 'a chat untouched this long is dropped from memory (clients rebuild it); 0: never',
  maxContentBytes: 'largest message content, in UTF-8 bytes',
  maxIdBytes: 'largest chat, message, agent or sender id, in UTF-8 bytes',
  maxAttachmentBytes: 'largest file an attachment may refer to, in bytes (the bytes never enter the server)',
  maxResponseBytes: 'budget for the messages of one answer (a read, a watch page, a Rebuild snapshot)',
  maxRequestBytes: 'largest request; a larger one is refused (RESOURCE_EXHAUSTED) before it is decoded',
  maxChats: 'most chats one server holds',
  maxMessagesPerChat: 'most messages one chat holds',
  maxWatchers: 'most open WatchChat streams, over all chats',
  maxClockSkewMs: "how far ahead of the server's clock an uploaded send time may be",
  maxHeldBytes: 'budget for the bytes the server holds over all chats; a write past it is refused',
  maxChatBytes: 'budget for the bytes one chat holds',
  messageOverheadBytes: 'what the budgets count for each message and chat beyond its strings',
  heldBytesHeapPercent: 'the percent of the heap limit that max-held-bytes 0 stands for',
  heapHighWaterPercent: 'heap use (percent of its limit) above which idle unwatched chats are evicted',
  heapLowWaterPercent: 'eviction goes on until heap use is estimated below this percent',
  heapProbeIntervalMs: 'how often the heap is read, at most',
  watchStallMs: 'a watch whose client takes no response this long is cut off (RESOURCE_EXHAUSTED); 0: never',
  watchCutoffGraceMs: "after a cut-off, how long the status may wait behind unread responses before a reset",
  watchMaxAgeMs: 'each watch ends (OK) after a random lifetime between half this and this; 0: never',
  typingTtlMs: 'a typing indication lapses this long after it was last renewed',
  keepaliveTimeMs: 'how often the server pings each connection',
  keepaliveTimeoutMs: 'a connection whose ping goes unanswered this long is dropped, with its watches',
  keepaliveMinPingIntervalMs: 'how often clients may ping, stated to the transport',
  maxConcurrentStreamsPerConnection: 'most calls open at once on one connection (HTTP/2 max concurrent streams); 0: no limit',
  maxConnectionIdleMs: 'a connection with no call open this long is closed (GOAWAY); 0: never',
  maxConnectionAgeMs: 'a connection this old (±10%) is told to go away (GOAWAY), so clients reconnect; 0: never',
  maxConnectionAgeGraceMs: 'how long calls may still run on a connection past its age before it is closed',
  maxConnections: 'most connections open at once; at the cap the one idle longest is closed to make room; 0: derived',
  unaryDeadlineMs: 'a unary answer its client has not taken this long is dropped (stream reset); 0: never',
  maxResponseBytesInFlightPerConnection: 'bytes of answers one connection may have untaken before its reads are refused; 0: no limit',
  maxResponseBytesInFlight: 'bytes of answers the whole server may have untaken before reads are refused; 0: no limit',
  tlsCertFile: 'PEM certificate chain to serve TLS with (needs tls-key-file); none: plaintext',
  tlsKeyFile: 'PEM private key of tls-cert-file',
  tlsClientCaFile: 'PEM CA: clients must present a certificate it signed (mutual TLS; needs tls-cert-file)',
  insecure: 'check no tokens and no seals (development only); without it, give a key source and --seal-keys-file',
  requireChatIdHeader: 'refuse a chat call whose x-chat-id metadata is not its chat id (behind a balancer)',
  authHs256SecretFile: 'file holding the HS256 secret (at least 32 bytes) that bearer tokens are signed with',
  authJwksFile: 'local JWKS file with the public keys that bearer tokens are signed with',
  authJwksUrl: 'JWKS URL with the public keys that bearer tokens are signed with (fetched and cached)',
  authIssuer: 'the iss every token must name; empty: not checked',
  authAudience: 'the aud every token must include; empty: not checked',
  authClockToleranceMs: "how far a token's exp and nbf may be off the server's clock",
  rateSendsPerSecond: 'sends per second per token subject (RESOURCE_EXHAUSTED above it); 0: no limit',
  rateSendsBurst: "sends a subject may make at once after a quiet time; 0: one second's worth",
  rateRebuildsPerSecond: 'Rebuild calls per second per token subject; 0: no limit',
  rateRebuildsBurst: "Rebuild calls a subject may make at once after a quiet time; 0: one second's worth",
  rateMaxSubjects: 'most token subjects each rate limit tracks; the least recently seen are forgotten first',
  rebuildBytesPerSecond: 'bytes of Rebuild uploads the server admits per second, over all callers; 0: no budget',
  rebuildBytesBurst: "Rebuild bytes admitted at once after a quiet time; 0: one second's worth",
  sealKeysFile: 'JSON file of seal keys (base64, 32+ bytes): Rebuild takes back only messages sealed; none: off',
});

/** Each setting's flag (kebab-case) and environment variable (SCREAMING_SNAKE_CASE). */
const SETTINGS = Object.keys(DEFAULT_CONFIG) as (keyof Config)[];

/** Numbers that are off (undefined) unless set, so 0 can keep its meaning; every other setting's kind is its default's. */
const OFF_UNLESS_SET: ReadonlySet<keyof Config> = new Set(['metricsPort']);

/** What a setting holds: a switch, a number or text. */
const kindOf = (key: keyof Config) => (OFF_UNLESS_SET.has(key) ? 'number' : typeof DEFAULT_CONFIG[key]);

/** A setting's flag, without the dashes: `maxChats` is max-chats. */
export const flagOf = (key: string) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
const envOf = (key: string) => flagOf(key).replaceAll('-', '_').toUpperCase();

/** pino's levels, and silent (nothing). */
const LOG_LEVELS: readonly string[] = [...Object.keys(levels.values), 'silent'];

/** Thrown for a setting that cannot be used; main prints it and exits with status 2. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Reads the file a setting names, at start-up; a ConfigError naming the setting and the file when it cannot. */
export function readSettingFile(setting: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new ConfigError(`${setting} "${path}" cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

/**
 * Reads the configuration: defaults, overridden by environment variables (`PORT`,
 * `MAX_CONTENT_BYTES`, ...), overridden by flags (`--port`, `--max-content-bytes`, ...).
 */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv): Config {
  const values = parseFlags(argv);
  const config: Record<string, string | number | boolean | undefined> = { ...DEFAULT_CONFIG };
  for (const key of SETTINGS) {
    const raw = values[flagOf(key)] ?? env[envOf(key)];
    if (raw === undefined || raw === '') continue;
    const kind = kindOf(key);
    config[key] = kind === 'boolean' ? parseSwitch(key, raw) : kind === 'number' ? parseWhole(key, String(raw)) : raw;
  }
  for (const key of ['port', 'metricsPort'] as const) {
    if (((config[key] as number | undefined) ?? 0) > 65_535) throw new ConfigError(`${flagOf(key)} must be 0 to 65535; got ${config[key]}`);
  }
  if (!LOG_LEVELS.includes(config.logLevel as string)) {
    throw new ConfigError(`log-level (LOG_LEVEL) must be one of ${LOG_LEVELS.join(', ')}; got "${config.logLevel}"`);
  }
  for (const key of ['heldBytesHeapPercent', 'heapHighWaterPercent', 'heapLowWaterPercent'] as const) {
    if ((config[key] as number) > 100) throw new ConfigError(`${flagOf(key)} must be 0 to 100; got ${config[key]}`);
  }
  if ((config.heapLowWaterPercent as number) > (config.heapHighWaterPercent as number)) {
    throw new ConfigError(`heap-low-water-percent (${config.heapLowWaterPercent}) must not exceed heap-high-water-percent (${config.heapHighWaterPercent})`);
  }
  checkTls(config as unknown as Config);
  const smallestRequest = requestBytesForOneMessage(config as unknown as Config);
  if ((config.maxRequestBytes as number) < smallestRequest) {
    throw new ConfigError(
      `max-request-bytes (${config.maxRequestBytes}) must hold a send of the largest message allowed: at least ${smallestRequest} ` +
        `(max-content-bytes ${config.maxContentBytes} plus eight ids of max-id-bytes ${config.maxIdBytes}, ${MAX_ATTACHMENTS} attachments of ${MAX_ATTACHMENT_REFERENCE_BYTES} and 2048)`,
    );
  }
  checkRebuildBurst(config as unknown as Config);
  return config as unknown as Config;
}

/** A burst that cannot hold the largest request would never admit a Rebuild that large. */
function checkRebuildBurst({ rebuildBytesPerSecond, rebuildBytesBurst, maxRequestBytes }: Config): void {
  if (rebuildBytesPerSecond > 0 && rebuildBytesBurst > 0 && rebuildBytesBurst < maxRequestBytes) {
    throw new ConfigError(
      `rebuild-bytes-burst (${rebuildBytesBurst}) must hold the largest request, max-request-bytes (${maxRequestBytes}): ` +
        "a Rebuild that large would never be admitted; give 0 (one second's worth, at least max-request-bytes) or more",
    );
  }
}

/** TLS needs a certificate and its key, and client certificates need TLS; the files are read by startServer (tls.ts). */
function checkTls({ tlsCertFile, tlsKeyFile, tlsClientCaFile }: Config): void {
  if (tlsCertFile !== '' && tlsKeyFile === '') throw new ConfigError('tls-cert-file is given without tls-key-file (TLS_KEY_FILE): TLS needs both');
  if (tlsKeyFile !== '' && tlsCertFile === '') throw new ConfigError('tls-key-file is given without tls-cert-file (TLS_CERT_FILE): TLS needs both');
  if (tlsClientCaFile !== '' && tlsCertFile === '') {
    throw new ConfigError('tls-client-ca-file is given without tls-cert-file and tls-key-file: client certificates need TLS');
  }
}

/** The bytes a request needs to carry one message of the largest content and ids allowed. */
function requestBytesForOneMessage(config: Pick<Config, 'maxContentBytes' | 'maxIdBytes'>): number {
  // The content, the ids (chat, message, sender, agent, an event's two participants, epoch), an
  // event's reason, the largest attachments, and room for tags and lengths.
  return config.maxContentBytes + 8 * config.maxIdBytes + MAX_EVENT_REASON_BYTES + MAX_ATTACHMENTS * MAX_ATTACHMENT_REFERENCE_BYTES + 1024;
}

/**
 * The configuration with what start-up derives filled in: `maxHeldBytes` 0 becomes
 * `heldBytesHeapPercent` of `heapLimitBytes`. Held bytes count what a message costs in memory
 * (strings plus `messageOverheadBytes`, measured on Node 20 at 1.0 to 1.25 times the heap it takes, for 64 KiB messages and
 * small ones alike), so 40% leaves the rest of the heap for requests and responses in flight.
 * `maxConnections` 0 becomes {@link connectionCapFor} the soft open-file limit `openFiles`
 * (undefined when it cannot be read).
 */
export function withDerivedBudgets(config: Config, heapLimitBytes: number, openFiles?: number): Config {
  return {
    ...config,
    maxHeldBytes: config.maxHeldBytes > 0 ? config.maxHeldBytes : Math.floor((heapLimitBytes * config.heldBytesHeapPercent) / 100),
    maxConnections: config.maxConnections > 0 ? config.maxConnections : connectionCapFor(openFiles),
  };
}

/** The connection cap where the open-file limit is unknown (no /proc/self/limits: not Linux). */
const FALLBACK_MAX_CONNECTIONS = 20_000;

/**
 * The connection cap for a soft open-file limit of `openFiles`: every connection holds one
 * descriptor, and the rest of the process needs some too. The server holds 21 once it listens
 * on Node 20 (stdio, epoll and eventfd descriptors, signal pipes, libuv's spare for EMFILE, the
 * listening socket); 32 leaves room for a second listening address and a few files opened at
 * times (a log file, a diagnostic report). An eighth of a large limit keeps that margin from
 * shrinking to nothing beside tens of thousands of connections, for what was not counted.
 */
export function connectionCapFor(openFiles: number | undefined): number {
  if (openFiles === undefined) return FALLBACK_MAX_CONNECTIONS;
  return Math.max(1, openFiles - Math.max(32, Math.floor(openFiles / 8)));
}

/** Every setting's flag, variable, default and meaning, for --help. */
export function usage(): string {
  const derived: Partial<Record<keyof Config, string>> = {
    maxHeldBytes: ' (held-bytes-heap-percent of the heap limit)',
    maxConnections: ` (the open-file limit less the larger of 32 and an eighth of it; ${FALLBACK_MAX_CONNECTIONS} where the limit is unknown)`,
    rebuildBytesBurst: ' (one second of rebuild-bytes-per-second, at least max-request-bytes)',
  };
  const lines = SETTINGS.flatMap((key) => [
    `  --${flagOf(key)} (${envOf(key)}), default ${DEFAULT_CONFIG[key] === '' || DEFAULT_CONFIG[key] === undefined ? 'none' : DEFAULT_CONFIG[key]}${derived[key] ?? ''}`,
    `      ${MEANINGS[key]}`,
  ]);
  return [
    'Usage: node dist/src/server/main.js [flags]   (or npm start -- [flags])',
    '',
    'Serves chat.v1.ChatService, grpc.health.v1.Health and reflection, and with --metrics-port',
    'Prometheus metrics over HTTP. Every flag can also be set by its environment variable; flags',
    'win. --help prints this, --version the version.',
    '',
    ...lines,
  ].join('\n');
}

function parseFlags(argv: readonly string[]): Record<string, string | boolean | undefined> {
  try {
    return parseArgs({
      args: [...argv],
      options: Object.fromEntries(
        SETTINGS.map((key) => [flagOf(key), { type: kindOf(key) === 'boolean' ? ('boolean' as const) : ('string' as const) }]),
      ),
      strict: true,
    }).values;
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
}

/** A switch: the bare flag, or its variable set to true/1 or false/0. */
function parseSwitch(key: string, raw: string | boolean): boolean {
  if (typeof raw === 'boolean') return raw;
  if (/^(true|1)$/i.test(raw.trim())) return true;
  if (/^(false|0)$/i.test(raw.trim())) return false;
  throw new ConfigError(`${envOf(key)} must be true, false, 1 or 0; got "${raw}"`);
}

function parseWhole(key: string, raw: string): number {
  const value = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(value)) {
    throw new ConfigError(`${flagOf(key)} (${envOf(key)}) must be a whole number >= 0; got "${raw}"`);
  }
  return value;
}
