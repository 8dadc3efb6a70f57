import { once } from 'node:events';
import { createServer } from 'node:http';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { ListenError } from './listen-error.js';

/** Where a server serves its metrics. */
export interface MetricsAddress {
  readonly host: string;
  /** The port it listens on (the one picked, when it was asked for 0). */
  readonly port: number;
  /** What to scrape: `http://host:port/metrics`. */
  readonly url: string;
}

/** A running metrics server. */
export interface MetricsEndpoint extends MetricsAddress {
  /** Stops listening and closes its connections (a scraper's kept-alive one too). */
  close(): Promise<void>;
}

const PATH = '/metrics';

/**
 * Serves `registry` over plain HTTP (node:http) on `host:port`, apart from the gRPC port: GET
 * /metrics answers the registry's text in its content type, anything else 404. A port it
 * cannot listen on is a ListenError, as for the gRPC port.
 */
export async function serveMetrics(registry: Registry, host: string, port: number, logger: Logger): Promise<MetricsEndpoint> {
  const server = createServer((request, response) => {
    if (request.method !== 'GET' || request.url?.split('?')[0] !== PATH) {
      response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end(`not found: metrics are at GET ${PATH}\n`);
      return;
    }
    registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (error: unknown) => {
        logger.error({ err: error }, 'metrics could not be collected');
        response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('metrics could not be collected\n');
      },
    );
  });
  server.listen(port, host);
  // once() rejects with the server's 'error' (EADDRINUSE, ...) if it comes first.
  await once(server, 'listening').catch((error: unknown) => {
    server.close();
    throw new ListenError(`cannot serve metrics on ${hostPort(host, port)}`, error, '--metrics-port or --metrics-host');
  });
  const bound = (server.address() as { port: number }).port;
  return {
    host,
    port: bound,
    url: `http://${hostPort(host, bound)}${PATH}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** `host:port`, with an IPv6 host in brackets. */
function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
