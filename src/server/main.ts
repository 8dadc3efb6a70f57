import { pino } from 'pino';
import { ConfigError, loadConfig, usage } from './config.js';
import { startServer } from './server.js';

/** Process start-up: configuration, logging, signals. Everything else is in server.ts. */
async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(usage());
    return;
  }
  let config;
  try {
    config = loadConfig(argv, process.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(`chat-rebuild: ${(error as Error).message}\n\n${usage()}`);
    process.exitCode = 2;
    return;
  }
  const logger = pino({ name: 'chat-rebuild', level: config.logLevel });
  const server = await startServer(config, logger);
  logger.info({ config: server.config, port: server.port }, 'chat server listening');

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      logger.info({ signal, graceMs: config.shutdownGraceMs }, 'shutting down');
      void server.stop().then(() => logger.info('stopped'));
    });
  }
}

await main();
