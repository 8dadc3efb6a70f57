import { format } from 'node:util';
import { setLogger } from '@grpc/grpc-js';
import { type Logger, pino } from 'pino';
import { type Config, ConfigError, loadConfig, usage } from './config.js';
import { ListenError } from './listen-error.js';
import { type ChatServer, startServer } from './server.js';
import { shutdownOnSignals } from './shutdown.js';
import { tlsMode } from './tls.js';
import { packageVersion } from './version.js';

const NAME = 'chat-rebuild';

/**
 * Process start-up: configuration, logging, signals. Everything else is in server.ts. A setting
 * it cannot use (a bad value, an address it cannot listen on) ends it with one line on stderr
 * and exit status 2.
 */
async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) return console.log(usage());
  if (argv.includes('--version')) return console.log(packageVersion());
  let config: Config;
  let server: ChatServer;
  let logger: Logger;
  try {
    config = loadConfig(argv, process.env);
    logger = pino({ name: NAME, level: config.logLevel });
    logGrpcThrough(logger);
    server = await startServer(config, logger);
  } catch (error) {
    return refuse(error);
  }
  // The signals are taken before the line that says the server is up: whoever waits for it may signal at once.
  const stopped = shutdownOnSignals(server, config, logger);
  if (server.config.insecure) {
    logger.warn({ insecure: true }, 'INSECURE: no authentication; every caller may read, send and rebuild any chat as anyone (--insecure is for development only)');
  }
  logger.info(
    {
      version: packageVersion(),
      config: server.config,
      port: server.port,
      metrics: server.metrics?.url ?? 'off',
      tls: tlsMode(server.config),
      ...server.seals,
      insecure: server.config.insecure,
    },
    'chat server listening',
  );
  await stopped;
}

/** Says in one line why the server cannot start with these settings, and exits with status 2; anything else is a bug. */
function refuse(error: unknown): void {
  if (error instanceof ConfigError || error instanceof ListenError) console.error(`${NAME}: ${error.message} (see --help)`);
  else throw error;
  process.exitCode = 2;
}

/** grpc-js's own log lines (its errors; GRPC_VERBOSITY and GRPC_TRACE add more) go out as JSON too, not as bare text on stderr. */
function logGrpcThrough(logger: Logger): void {
  const grpc = logger.child({ component: 'grpc-js' });
  setLogger({
    error: (...args: unknown[]) => grpc.error(format(...args)),
    info: (...args: unknown[]) => grpc.info(format(...args)),
    debug: (...args: unknown[]) => grpc.debug(format(...args)),
  });
}

await main();
