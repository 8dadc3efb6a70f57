import { expect } from 'chai';
import { ConfigError, DEFAULT_CONFIG, loadConfig, MEANINGS, usage, withDerivedBudgets } from '../../src/server/config.js';
import { serverOptions } from '../../src/server/server.js';

describe('configuration', () => {
  it('defaults to 0.0.0.0:50051 with the documented limits', () => {
    expect(loadConfig([], {})).to.deep.equal(DEFAULT_CONFIG);
    expect(DEFAULT_CONFIG).to.include({ host: '0.0.0.0', port: 50051, maxContentBytes: 65_536 });
  });

  it('takes environment variables, and flags over them', () => {
    const env = { HOST: '127.0.0.1', PORT: '6000', MAX_CONTENT_BYTES: '100' };
    expect(loadConfig([], env)).to.include({ host: '127.0.0.1', port: 6000, maxContentBytes: 100 });
    expect(loadConfig(['--port', '7000', '--max-chats=5'], env)).to.include({ port: 7000, maxChats: 5, maxContentBytes: 100 });
  });

  it('takes the watch and keepalive settings, and hands keepalive to grpc-js', () => {
    const config = loadConfig(['--watch-stall-ms', '500', '--keepalive-min-ping-interval-ms=5000'], { MAX_WATCHERS: '7', KEEPALIVE_TIME_MS: '1000' });
    expect(config).to.include({ watchStallMs: 500, maxWatchers: 7, keepaliveTimeMs: 1000, keepaliveTimeoutMs: 20_000, watchCutoffGraceMs: 1_000 });
    expect(serverOptions(config)).to.deep.equal({
      'grpc.keepalive_time_ms': 1000,
      'grpc.keepalive_timeout_ms': 20_000,
      'grpc.http2.min_ping_interval_without_data_ms': 5000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.max_receive_message_length': 262_144,
      'grpc.max_concurrent_streams': 1_000,
      'grpc.max_connection_idle_ms': 300_000,
      'grpc.max_connection_age_ms': 1_800_000,
      'grpc.max_connection_age_grace_ms': 60_000,
    });
  });

  it('takes the connection limits and response budgets, and leaves out the grpc-js options set to 0 (never)', () => {
    const config = loadConfig(
      ['--max-connections=50', '--unary-deadline-ms', '2000', '--max-connection-idle-ms=0', '--max-connection-age-ms=0'],
      { MAX_RESPONSE_BYTES_IN_FLIGHT_PER_CONNECTION: '1000', MAX_RESPONSE_BYTES_IN_FLIGHT: '5000', MAX_CONCURRENT_STREAMS_PER_CONNECTION: '0' },
    );
    expect(config).to.include({
      maxConnections: 50,
      unaryDeadlineMs: 2000,
      maxResponseBytesInFlightPerConnection: 1000,
      maxResponseBytesInFlight: 5000,
    });
    const options = serverOptions(config);
    for (const key of ['grpc.max_concurrent_streams', 'grpc.max_connection_idle_ms', 'grpc.max_connection_age_ms', 'grpc.max_connection_age_grace_ms']) {
      expect(options).not.to.have.property(key);
    }
    expect(usage()).to.match(/--max-response-bytes-in-flight-per-connection \(MAX_RESPONSE_BYTES_IN_FLIGHT_PER_CONNECTION\), default 16777216/);
  });

  it('serves no metrics unless given a metrics port (0 picks a free one), on the --host unless given a metrics host', () => {
    expect(DEFAULT_CONFIG).to.include({ metricsPort: undefined, metricsHost: '' });
    expect(loadConfig([], { METRICS_PORT: '' }).metricsPort, 'an empty variable is unset').to.equal(undefined);
    expect(loadConfig([], { METRICS_PORT: '9464' })).to.include({ metricsPort: 9464 });
    expect(loadConfig(['--metrics-port=0', '--metrics-host', '127.0.0.2'], { METRICS_PORT: '9464' })).to.include({ metricsPort: 0, metricsHost: '127.0.0.2' });
    expect(() => loadConfig(['--metrics-port', '70000'], {})).to.throw(ConfigError, 'metrics-port must be 0 to 65535; got 70000');
    expect(() => loadConfig([], { METRICS_PORT: 'on' })).to.throw(ConfigError, 'metrics-port (METRICS_PORT) must be a whole number >= 0; got "on"');
    expect(usage()).to.match(/--metrics-port \(METRICS_PORT\), default none\n/);
  });

  it('takes the maximum clock skew of uploaded send times (5 minutes by default)', () => {
    expect(DEFAULT_CONFIG.maxClockSkewMs).to.equal(300_000);
    expect(loadConfig(['--max-clock-skew-ms', '1000'], {})).to.include({ maxClockSkewMs: 1000 });
  });

  it('takes the maximum watch age (5 minutes by default, 0 for none)', () => {
    expect(DEFAULT_CONFIG.watchMaxAgeMs).to.equal(300_000);
    expect(loadConfig([], { WATCH_MAX_AGE_MS: '60000' })).to.include({ watchMaxAgeMs: 60_000 });
    expect(loadConfig(['--watch-max-age-ms', '0'], { WATCH_MAX_AGE_MS: '60000' })).to.include({ watchMaxAgeMs: 0 });
    expect(() => loadConfig(['--watch-max-age-ms=-5'], {})).to.throw(ConfigError, 'watch-max-age-ms (WATCH_MAX_AGE_MS) must be a whole number');
    expect(usage()).to.match(/--watch-max-age-ms \(WATCH_MAX_AGE_MS\), default 300000/);
  });

  it('takes the byte budgets and heap marks, and derives the held-bytes budget from the heap limit', () => {
    expect(DEFAULT_CONFIG).to.include({ maxHeldBytes: 0, maxChatBytes: 64 * 2 ** 20, heldBytesHeapPercent: 40, heapHighWaterPercent: 80, heapLowWaterPercent: 70 });
    const config = loadConfig(['--max-chat-bytes', '1000', '--heap-high-water-percent=90'], { MAX_HELD_BYTES: '5000', HEAP_LOW_WATER_PERCENT: '60' });
    expect(config).to.include({ maxChatBytes: 1000, maxHeldBytes: 5000, heapHighWaterPercent: 90, heapLowWaterPercent: 60 });
    expect(withDerivedBudgets(config, 1_000_000).maxHeldBytes, 'a budget given is kept').to.equal(5000);
    expect(withDerivedBudgets(DEFAULT_CONFIG, 1_000_000).maxHeldBytes).to.equal(400_000);
    expect(() => loadConfig(['--heap-high-water-percent', '101'], {})).to.throw(ConfigError, 'heap-high-water-percent must be 0 to 100');
    expect(() => loadConfig(['--heap-low-water-percent', '90'], {})).to.throw(ConfigError, 'must not exceed heap-high-water-percent (80)');
    expect(usage()).to.match(/--max-held-bytes \(MAX_HELD_BYTES\), default 0 \(held-bytes-heap-percent of the heap limit\)/);
  });

  it('takes the request limit (256 KiB by default), and refuses one that cannot hold a send of the largest message', () => {
    expect(loadConfig([], {})).to.include({ maxRequestBytes: 262_144, maxResponseBytes: 1_048_576 });
    expect(loadConfig(['--max-request-bytes=100000'], {}).maxRequestBytes).to.equal(100_000);
    // The largest content, eight ids, an event's reason and ten attachments at their limits.
    expect(() => loadConfig(['--max-request-bytes=90000'], {})).to.throw(ConfigError, 'max-request-bytes (90000) must hold a send of the largest message allowed: at least 94892');
    expect(loadConfig(['--max-request-bytes=31000', '--max-content-bytes=1000'], {}).maxRequestBytes).to.equal(31_000);
  });

  it('takes the Rebuild upload budget (4 MiB/s by default, bursts of one second), and refuses a burst below the largest request', () => {
    expect(DEFAULT_CONFIG).to.include({ rebuildBytesPerSecond: 4 * 1024 * 1024, rebuildBytesBurst: 0 });
    expect(loadConfig(['--rebuild-bytes-per-second=0'], { REBUILD_BYTES_BURST: '300000' })).to.include({ rebuildBytesPerSecond: 0, rebuildBytesBurst: 300_000 });
    expect(loadConfig(['--rebuild-bytes-burst', '262144'], {}).rebuildBytesBurst).to.equal(262_144);
    expect(() => loadConfig(['--rebuild-bytes-burst', '100000'], {})).to.throw(
      ConfigError,
      'rebuild-bytes-burst (100000) must hold the largest request, max-request-bytes (262144): a Rebuild that large would never be admitted',
    );
    expect(loadConfig(['--rebuild-bytes-burst', '100000', '--max-request-bytes', '100000'], {}).rebuildBytesBurst, 'a smaller request limit').to.equal(100_000);
    expect(usage()).to.match(/--rebuild-bytes-burst \(REBUILD_BYTES_BURST\), default 0 \(one second of rebuild-bytes-per-second, at least max-request-bytes\)/);
  });

  it('refuses numbers that are not whole, ports out of range and unknown flags', () => {
    expect(() => loadConfig([], { PORT: '80.5' })).to.throw(ConfigError, 'port (PORT) must be a whole number');
    expect(() => loadConfig(['--max-chats=-1'], {})).to.throw(ConfigError, 'max-chats (MAX_CHATS)');
    expect(() => loadConfig(['--port', '70000'], {})).to.throw(ConfigError, 'port must be 0 to 65535');
    expect(() => loadConfig(['--prot', '1'], {})).to.throw(ConfigError, "Unknown option '--prot'");
  });

  it('takes the drain (5 s by default, 0 for none) before the shutdown grace', () => {
    expect(DEFAULT_CONFIG).to.include({ drainMs: 5000, shutdownGraceMs: 5000 });
    expect(loadConfig([], { DRAIN_MS: '250' })).to.include({ drainMs: 250 });
    expect(loadConfig(['--drain-ms=0'], { DRAIN_MS: '250' })).to.include({ drainMs: 0 });
    expect(usage()).to.match(/--drain-ms \(DRAIN_MS\), default 5000\n {6}after SIGTERM\/SIGINT, how long health says NOT_SERVING/);
  });

  it('takes TLS files (none by default): a certificate and its key together, a client CA only with them', () => {
    expect(DEFAULT_CONFIG).to.include({ tlsCertFile: '', tlsKeyFile: '', tlsClientCaFile: '' });
    const files = { TLS_CERT_FILE: '/etc/chat/server.crt', TLS_KEY_FILE: '/etc/chat/server.key' };
    expect(loadConfig(['--tls-client-ca-file=/etc/chat/clients.crt'], files)).to.include({
      tlsCertFile: '/etc/chat/server.crt', tlsKeyFile: '/etc/chat/server.key', tlsClientCaFile: '/etc/chat/clients.crt',
    });
    expect(() => loadConfig(['--tls-cert-file', 'a.crt'], {})).to.throw(ConfigError, 'tls-cert-file is given without tls-key-file (TLS_KEY_FILE)');
    expect(() => loadConfig([], { TLS_KEY_FILE: 'a.key' })).to.throw(ConfigError, 'tls-key-file is given without tls-cert-file (TLS_CERT_FILE)');
    expect(() => loadConfig(['--tls-client-ca-file', 'ca.crt'], {})).to.throw(ConfigError, 'client certificates need TLS');
    expect(usage()).to.match(/--tls-cert-file \(TLS_CERT_FILE\), default none\n/);
  });

  it("takes pino's log levels and silent, and refuses any other", () => {
    for (const level of ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']) {
      expect(loadConfig(['--log-level', level], {}).logLevel).to.equal(level);
    }
    expect(() => loadConfig(['--log-level', 'loud'], {})).to.throw(ConfigError, 'log-level (LOG_LEVEL) must be one of trace, debug, info, warn, error, fatal, silent; got "loud"');
    expect(() => loadConfig([], { LOG_LEVEL: 'INFO' })).to.throw(ConfigError, 'got "INFO"');
  });

  it('gives every setting a meaning of one line, which --help prints under its flag, variable and default', () => {
    const help = usage().split('\n');
    for (const key of Object.keys(DEFAULT_CONFIG) as (keyof typeof DEFAULT_CONFIG)[]) {
      const meaning = MEANINGS[key];
      expect(meaning, key).to.match(/^\S[^\n]{9,100}$/);
      const at = help.findIndex((line) => line.startsWith(`  --${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} `));
      expect(at, key).to.be.at.least(0);
      expect(help[at]).to.match(new RegExp(`default ${DEFAULT_CONFIG[key] ?? 'none'}`));
      expect(help[at + 1], key).to.equal(`      ${meaning}`);
    }
    expect(Object.keys(MEANINGS)).to.have.members(Object.keys(DEFAULT_CONFIG));
  });
});
