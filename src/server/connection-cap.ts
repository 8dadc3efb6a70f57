import { readFileSync } from 'node:fs';
import type { ServerHttp2Session } from 'node:http2';
import { Server as NetServer, type Socket } from 'node:net';
import { Server as TlsServer } from 'node:tls';
import type { Server } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { rateLimitedWarning } from './rate-limited-warning.js';

/** How many connections are open, and how many the cap refused or closed to make room. */
export interface ConnectionCounts {
  /** Connections held now; each holds a descriptor. */
  readonly open: number;
  /** New connections closed as they were accepted, at the cap with every held one running a call. */
  readonly refused: number;
  /** Idle connections closed (GOAWAY) at the cap to make room for a new one. */
  readonly closedIdle: number;
}

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
 * Caps the connections of a bound grpc-js server at `maxConnections`, over all its listening
 * addresses (the descriptors they use are the process's). At the cap a new connection makes
 * room: the held connection idle longest (no HTTP/2 stream open) is sent a GOAWAY, so its
 * client opens a new connection for its next call, and closed. Only when every held connection
 * has a call open is the new one closed as it is accepted (refused). Idle connections otherwise
 * stay until `maxConnectionIdleMs`, minutes, which is too slow against a peer that opens
 * connections and sends nothing. Either way the descriptor is freed at once, so a burst of
 * connections accepted in one turn of the event loop cannot take the process past the cap.
 *
 * grpc-js 1.14 has no such option, and node's own `net.Server#maxConnections` drops a new
 * connection before anyone can choose another to close, so this listens on the HTTP/2 servers
 * grpc-js listens with (its private `http2Servers` map). Throws when the map is not there (a
 * grpc-js upgrade moved it), so a cap is never silently lost; test/server/connection-limits.test.ts
 * checks the choices and test/server/descriptor-limit.test.ts a process short of descriptors.
 * `maxConnections` is at least 1 (`withDerivedBudgets` turns 0 into the derived cap).
 */
export function capConnections(server: Server, maxConnections: number, logger: Logger): ConnectionCounts {
  const listeners = (server as unknown as { http2Servers?: unknown }).http2Servers;
  const servers = listeners instanceof Map ? [...listeners.keys()].filter((s): s is NetServer => s instanceof NetServer) : [];
  if (servers.length === 0) throw new Error('cannot find the HTTP/2 servers of grpc-js (Server#http2Servers) to cap connections on');

  /** Each held connection's session, with its socket (destroying that frees the descriptor at once). */
  const held = new Map<ServerHttp2Session, Socket>();
  /** The held sessions with no stream open, and since when (performance.now()); a Map iterates the longest idle first. */
  const idle = new Map<ServerHttp2Session, number>();
  const counts = {
    refused: 0,
    closedIdle: 0,
    get open() {
      return held.size;
    },
  };
  const noteRefusal = rateLimitedWarning(logger, 'refused', 'connections refused: the server holds its maximum, each with a call open');
  const noteIdleClose = rateLimitedWarning(logger, 'closedIdle', 'closed idle connections to make room: the server holds its maximum');

  const hold = (session: ServerHttp2Session, socket: Socket) => {
    held.set(session, socket);
    idle.set(session, performance.now());
    let streams = 0;
    session.on('stream', (stream) => {
      streams += 1;
      idle.delete(session);
      stream.once('close', () => {
        streams -= 1;
        if (streams === 0 && held.has(session)) idle.set(session, performance.now());
      });
    });
    session.once('close', () => {
      held.delete(session);
      idle.delete(session);
    });
  };

  const closeIdle = (session: ServerHttp2Session, idleSince: number) => {
    const socket = held.get(session);
    held.delete(session);
    idle.delete(session);
    session.close(); // GOAWAY: no new streams here; the client's next call goes on a new connection
    session.destroy(); // writes the GOAWAY to the socket now
    socket?.destroy(); // frees the descriptor now, not once the TCP shutdown completes
    counts.closedIdle += 1;
    noteIdleClose({ totalClosedIdle: counts.closedIdle, maxConnections, idleMs: Math.round(performance.now() - idleSince) });
  };

  const admit = (session: ServerHttp2Session, socket: Socket) => {
    if (held.size >= maxConnections) {
      const longestIdle = idle.entries().next();
      if (longestIdle.done) {
        socket.destroy();
        counts.refused += 1;
        noteRefusal({ totalRefused: counts.refused, maxConnections, peer: `${socket.remoteAddress}:${socket.remotePort}` });
        return;
      }
      closeIdle(...longestIdle.value);
    }
    hold(session, socket);
  };

  for (const listener of servers) {
    // Node makes a connection's session inside the socket's 'connection' event (cleartext) or
    // 'secureConnection' event (TLS, once the handshake is done) and emits 'session' from
    // there, so the socket caught first is the session's. Over TLS a connection is counted from
    // its handshake on: one still in its handshake holds a descriptor the cap does not see.
    const accepting = listener instanceof TlsServer ? 'secureConnection' : 'connection';
    let accepted: Socket | undefined;
    listener.prependListener(accepting, (socket: Socket) => (accepted = socket));
    listener.on('session', (session: ServerHttp2Session) => {
      const socket = accepted;
      accepted = undefined;
      if (socket === undefined) session.destroy(); // not reached; a connection the cap could not free is not kept
      else admit(session, socket);
    });
  }
  return counts;
}
