import { parseArgs } from 'node:util';
import { credentials, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { HealthCheckResponse_ServingStatus, HealthClient, healthCheckResponse_ServingStatusToJSON } from '../../generated/health/v1/health.js';
import { loadConfig } from './config.js';

/** How long the probe waits for its answer unless told: under the Dockerfile's HEALTHCHECK --timeout (5 s). */
export const DEFAULT_PROBE_TIMEOUT_MS = 3_000;

const USAGE = `Usage: node dist/src/server/healthcheck.js [--address HOST:PORT] [--service NAME] [--timeout-ms N]

Asks the server's grpc.health.v1.Health/Check and exits 0 if it answers SERVING, 1 otherwise
(NOT_SERVING while it drains, no answer within the timeout, nothing listening), saying why on
stderr. The address defaults to the server's own HOST and PORT (a wildcard host: 127.0.0.1);
the service to '' (the whole server); the timeout to ${DEFAULT_PROBE_TIMEOUT_MS} ms.`;

/** The probe's settings from its flags, and the server's address from the server's own settings (HOST, PORT). */
function settings(argv: readonly string[], env: NodeJS.ProcessEnv): { address: string; service: string; timeoutMs: number } {
  const { values } = parseArgs({
    args: [...argv],
    options: { address: { type: 'string' }, service: { type: 'string' }, 'timeout-ms': { type: 'string' } },
    strict: true,
  });
  const timeoutMs = Number(values['timeout-ms'] ?? DEFAULT_PROBE_TIMEOUT_MS);
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) throw new Error(`--timeout-ms must be a whole number > 0; got "${values['timeout-ms']}"`);
  let address = values.address;
  if (address === undefined) {
    const { host, port } = loadConfig([], env);
    address = `${['0.0.0.0', '::', '[::]'].includes(host) ? '127.0.0.1' : host}:${port}`;
  }
  return { address, service: values.service ?? '', timeoutMs };
}

/** Resolves with the serving status `address` reports for `service`; rejects with the call's error. */
function check(address: string, service: string, timeoutMs: number): Promise<HealthCheckResponse_ServingStatus> {
  const client = new HealthClient(address, credentials.createInsecure());
  return new Promise<HealthCheckResponse_ServingStatus>((resolve, reject) =>
    client.check({ service }, new Metadata(), { deadline: Date.now() + timeoutMs }, (error, response) => (error ? reject(error) : resolve(response.status))),
  ).finally(() => client.close());
}

/**
 * The container's health probe (see {@link USAGE}); resolves with its exit status: 0 for
 * SERVING, 1 for anything else. src/server/healthcheck.ts runs it.
 */
export async function probe(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(USAGE);
    return 0;
  }
  let target;
  try {
    target = settings(argv, env);
  } catch (error) {
    console.error(`healthcheck: ${(error as Error).message}`);
    return 1;
  }
  const { address, service, timeoutMs } = target;
  const what = `${address}${service === '' ? '' : ` (${service})`}`;
  try {
    const serving = await check(address, service, timeoutMs);
    const name = healthCheckResponse_ServingStatusToJSON(serving);
    if (serving === HealthCheckResponse_ServingStatus.SERVING) {
      console.log(`healthcheck: ${what} is SERVING`);
      return 0;
    }
    console.error(`healthcheck: ${what} is ${name}`);
  } catch (error) {
    const { code, details } = error as ServiceError;
    console.error(`healthcheck: ${what} did not answer: ${status[code] ?? code} ${details}`);
  }
  return 1;
}

