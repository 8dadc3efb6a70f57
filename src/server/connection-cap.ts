import { readFileSync } from 'node:fs';
import { Server as NetServer, type Socket } from 'node:net';
import type { Server } from '@grpc/grpc-js';
import type { Logger } from 'pino';

/** How many connections are open, and how many were refused for the cap. */
export interface ConnectionCounts {
  readonly open: number;
  readonly refused: number;
}

/** A refused connection is logged at most this often (with the count since), so a flood cannot flood the log. */
const REFUSAL_LOG_INTERVAL_MS = 10_000;

/** The soft "Max open files" in the text of /proc/self/limits; undefined when it is not there or not a number ("unlimited"). */
export function parseOpenFilesLimit(limits: string): number | undefined {
  const soft = /^Max open files\s+(\S+)/m.exec(limits)?.[1];
  return soft !== undefined && /^\d+$/.test(soft) ? Number(soft) : undefined;
}

/** This process's soft open-file limit (`ulimit -n`); undefined where /proc/self/limits cannot be read (not Linux). */
export function openFilesLimit(): number | undefined {
  try {
    return parseOpenFilesLimit(readFileSync('/proc/self/limits', 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * Caps the connections of a bound grpc-js server at `maxConnections` per listening address
 * (0: no cap), counting open and refused ones. grpc-js 1.14 has no such option, so this sets
 * node's own `net.Server#maxConnections` on the HTTP/2 servers grpc-js listens with (its
 * private `http2Servers` map): node then closes a connection beyond the cap as it is accepted,
 * before any HTTP/2 state exists for it, and emits 'drop'. Throws when the map is not there (a
 * grpc-js upgrade moved it), so a cap is never silently lost; test/server/connection-limits.test.ts
 * checks the refusals.
 */
export function capConnections(server: Server, maxConnections: number, logger: Logger): ConnectionCounts {
  const listeners = (server as unknown as { http2Servers?: unknown }).http2Servers;
  const servers = listeners instanceof Map ? [...listeners.keys()].filter((s): s is NetServer => s instanceof NetServer) : [];
  if (servers.length === 0) throw new Error('cannot find the HTTP/2 servers of grpc-js (Server#http2Servers) to cap connections on');
  const counts = { open: 0, refused: 0 };
  let unlogged = 0;
  let loggedAt = Number.NEGATIVE_INFINITY;
  for (const listener of servers) {
    if (maxConnections > 0) listener.maxConnections = maxConnections;
    listener.on('connection', (socket: Socket) => {
      counts.open += 1;
      socket.once('close', () => (counts.open -= 1));
    });
    listener.on('drop', (peer?: { remoteAddress?: string; remotePort?: number }) => {
      counts.refused += 1;
      unlogged += 1;
      const now = performance.now();
      if (now - loggedAt < REFUSAL_LOG_INTERVAL_MS) return;
      logger.warn({ refused: unlogged, totalRefused: counts.refused, maxConnections, peer: peer && `${peer.remoteAddress}:${peer.remotePort}` }, 'connections refused: the server holds its maximum');
      unlogged = 0;
      loggedAt = now;
    });
  }
  return counts;
}
