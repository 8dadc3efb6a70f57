import { parseArgs } from 'node:util';
import { type ChannelCredentials, type ChannelOptions, credentials, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { HealthCheckResponse_ServingStatus, HealthClient, healthCheckResponse_ServingStatusToJSON } from '../../generated/health/v1/health.js';
import { loadConfig, readSettingFile } from './config.js';

/** How long the probe waits for its answer unless told: under the Dockerfile's HEALTHCHECK --timeout (5 s). */
export const DEFAULT_PROBE_TIMEOUT_MS = 3_000;

const USAGE = `Usage: node dist/src/server/healthcheck.js [--address HOST:PORT] [--service NAME] [--timeout-ms N]
         [--ca-file PEM] [--cert-file PEM --key-file PEM] [--server-name NAME]

Asks the server's grpc.health.v1.Health/Check and exits 0 if it answers SERVING, 1 otherwise
(NOT_SERVING while it drains, no answer within the timeout, nothing listening), saying why on
stderr. The address defaults to the server's own HOST and PORT (a wildcard host: 127.0.0.1);
the service to '' (the whole server); the timeout to ${DEFAULT_PROBE_TIMEOUT_MS} ms.

It speaks TLS when the server's own TLS_CERT_FILE is set or any of these is given, trusting
the CA of --ca-file (HEALTHCHECK_CA_FILE; the system's CAs without it), presenting the client
certificate of --cert-file and --key-file (HEALTHCHECK_CERT_FILE, HEALTHCHECK_KEY_FILE) to a
server that requires one, and checking the server's certificate for --server-name
(HEALTHCHECK_SERVER_NAME; the address's host without it).`;

/** How the probe reaches the server: plaintext, or TLS with these files. */
interface ProbeChannel {
  readonly credentials: ChannelCredentials;
  readonly options: ChannelOptions;
}

interface Target {
  readonly address: string;
  readonly service: string;
  readonly timeoutMs: number;
  readonly channel: ProbeChannel;
}

/** The probe's settings from its flags (and HEALTHCHECK_* variables), and the server's address and TLS from the server's own settings. */
function settings(argv: readonly string[], env: NodeJS.ProcessEnv): Target {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      address: { type: 'string' },
      service: { type: 'string' },
      'timeout-ms': { type: 'string' },
      'ca-file': { type: 'string' },
      'cert-file': { type: 'string' },
      'key-file': { type: 'string' },
      'server-name': { type: 'string' },
    },
    strict: true,
  });
  /** A TLS setting: its flag, else its HEALTHCHECK_ variable (the Dockerfile's HEALTHCHECK runs the probe without flags). */
  const tlsSetting = (name: 'ca-file' | 'cert-file' | 'key-file' | 'server-name') =>
    values[name] || env[`HEALTHCHECK_${name.replaceAll('-', '_').toUpperCase()}`] || undefined;
  const timeoutMs = Number(values['timeout-ms'] ?? DEFAULT_PROBE_TIMEOUT_MS);
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) throw new Error(`--timeout-ms must be a whole number > 0; got "${values['timeout-ms']}"`);
  let server: ReturnType<typeof loadConfig> | undefined;
  const serverConfig = () => (server ??= loadConfig([], env));
  let address = values.address;
  if (address === undefined) {
    const { host, port } = serverConfig();
    address = `${['0.0.0.0', '::', '[::]'].includes(host) ? '127.0.0.1' : host}:${port}`;
  }
  const [caFile, certFile, keyFile, serverName] = (['ca-file', 'cert-file', 'key-file', 'server-name'] as const).map(tlsSetting);
  if ((certFile === undefined) !== (keyFile === undefined)) throw new Error('--cert-file and --key-file go together: give both or neither');
  const tls = caFile !== undefined || certFile !== undefined || serverName !== undefined || serverConfig().tlsCertFile !== '';
  const channel: ProbeChannel = tls
    ? {
        credentials: credentials.createSsl(readPem('--ca-file', caFile), readPem('--key-file', keyFile), readPem('--cert-file', certFile)),
        options: serverName === undefined ? {} : { 'grpc.ssl_target_name_override': serverName },
      }
    : { credentials: credentials.createInsecure(), options: {} };
  return { address, service: values.service ?? '', timeoutMs, channel };
}

/** The bytes of the PEM file at `path` (null without one); an error naming the flag and file when it cannot be read. */
function readPem(flag: string, path: string | undefined): Buffer | null {
  return path === undefined ? null : readSettingFile(flag, path);
}

/** Resolves with the serving status `address` reports for `service`; rejects with the call's error. */
function check({ address, service, timeoutMs, channel }: Target): Promise<HealthCheckResponse_ServingStatus> {
  const client = new HealthClient(address, channel.credentials, channel.options);
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
  const { address, service } = target;
  const what = `${address}${service === '' ? '' : ` (${service})`}`;
  try {
    const serving = await check(target);
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

