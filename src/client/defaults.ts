/**
 * Every default of the client SDK, in one place. A session takes each from its options when
 * given there (see ChatSessionOptions), else from here.
 */
export const CLIENT_DEFAULTS = Object.freeze({
  /** Deadline of one unary call. */
  callTimeoutMs: 5_000,
  /** How often `start()` polls, with `receive: 'poll'`. */
  pollIntervalMs: 1_000,
  /**
   * Largest Rebuild request, in bytes: the server's default request limit (its
   * --max-request-bytes). A server that refuses an upload for its size gets it again in halves.
   */
  maxUploadBytes: 256 * 1024,
  /** Retries of a failed call: capped exponential backoff with full jitter. */
  backoff: Object.freeze({ initialMs: 50, maxMs: 2_000, multiplier: 2 }),
  /**
   * The longest wait a server's retry pushback (grpc-retry-pushback-ms) gets: a call told to
   * come back later than this is tried again after this long, so a wrong figure cannot stall a
   * session for hours.
   */
  maxPushbackMs: 30_000,
  /**
   * While a chat's calls go to a server other than its home (the best-placed address, see
   * placement.ts), the transport asks the better-placed servers' health service whether they
   * are back: first after `firstMs`, then doubling up to `maxMs` while they stay down, each
   * wait jittered to between half and all of it. A health check gets `checkTimeoutMs`.
   */
  homeProbe: Object.freeze({ firstMs: 250, maxMs: 2_000, checkTimeoutMs: 1_000 }),
  /**
   * Keepalive pings on every channel, so a watch on a dead or frozen server is noticed. The
   * server lets clients ping every 10 s at most (its keepaliveMinPingIntervalMs).
   */
  keepalive: Object.freeze({ timeMs: 10_000, timeoutMs: 5_000 }),
});
