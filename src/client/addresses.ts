import { ChatSdkError } from './errors.js';

/** gRPC name-resolver schemes grpc-js understands, each followed by its own target syntax. */
const SCHEMES = ['dns:', 'ipv4:', 'ipv6:', 'unix:', 'unix-abstract:'];

/** A port: 1 to 65535. */
const isPort = (text: string) => /^\d{1,5}$/.test(text) && Number(text) >= 1 && Number(text) <= 65_535;

/**
 * Checks a session's server list before any call, so a mistake fails at `open()` with a message
 * that says what to write instead of surfacing later as retries that cannot succeed. An address
 * is `host:port`, `[ipv6]:port`, or a gRPC target with a resolver scheme (`dns:///host:port`,
 * `ipv4:`, `ipv6:`, `unix:`). The port is required: gRPC's default (443) is never this
 * server's. Throws a ChatSdkError of kind `invalid-options`.
 */
export function checkServers(servers: readonly unknown[]): readonly string[] {
  if (servers.length === 0) throw invalidOptions('servers is empty: give at least one address, such as "localhost:50051"');
  const seen = new Set<string>();
  servers.forEach((address, i) => {
    const problem = addressProblem(address);
    if (problem) throw invalidOptions(`servers[${i}] ${JSON.stringify(address)} ${problem}`);
    if (seen.has(address as string)) throw invalidOptions(`servers[${i}] ${JSON.stringify(address)} is listed twice; list each server once`);
    seen.add(address as string);
  });
  return servers as readonly string[];
}

/** What is wrong with one address, or undefined when it is one. */
function addressProblem(address: unknown): string | undefined {
  if (typeof address !== 'string') return 'is not a string';
  if (address.trim() === '') return 'is empty (an empty variable split on commas gives one): give host:port, such as "localhost:50051"';
  if (address !== address.trim() || /\s/.test(address)) return 'contains white space';
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(address) && !SCHEMES.some((scheme) => address.startsWith(scheme))) {
    return 'is a URL: give host:port (no http:// or grpc://), or a gRPC target such as "dns:///host:port"';
  }
  if (SCHEMES.some((scheme) => address.startsWith(scheme))) return undefined;
  const bracketed = /^\[([0-9a-f:.]+)\]:(.*)$/i.exec(address);
  const [host, port] = bracketed ? [bracketed[1]!, bracketed[2]!] : splitHostPort(address);
  if (host === '') return 'has no host: give host:port, such as "localhost:50051"';
  if (port === undefined) return `has no port: give host:port, such as "${host}:50051"`;
  if (!isPort(port)) return `has port "${port}", not a number from 1 to 65535`;
  if (!bracketed && !/^[a-z0-9.-]+$/i.test(host)) return `has host "${host}", which is not a host name or IPv4 address (write an IPv6 address as [addr]:port)`;
  return undefined;
}

/** `host:port` split at its last colon; the port is undefined when there is none. */
function splitHostPort(address: string): [string, string | undefined] {
  const colon = address.lastIndexOf(':');
  return colon < 0 ? [address, undefined] : [address.slice(0, colon), address.slice(colon + 1)];
}

function invalidOptions(message: string): ChatSdkError {
  return new ChatSdkError('invalid-options', message);
}
