import { once } from 'node:events';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createServer } from 'node:net';

/** Runs `use` with a port of 127.0.0.1 that something else listens on, freed afterwards. */
export async function withPortTaken<T>(use: (port: number) => T | Promise<T>): Promise<T> {
  const taken = createServer().listen(0, '127.0.0.1');
  await once(taken, 'listening');
  try {
    return await use((taken.address() as { port: number }).port);
  } finally {
    taken.close();
  }
}

/**
 * The TCP ports this process listens on (Linux: its socket descriptors, matched with the
 * kernel's listening sockets), to show which listeners a server opened.
 */
export function listeningPorts(): Set<number> {
  const inodes = new Set<string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode) inodes.add(inode);
    } catch {
      // closed while we looked (the directory's own descriptor, for one)
    }
  }
  const ports = new Set<number>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      const [local, state, inode] = [fields[1], fields[3], fields[9]];
      if (state === '0A' && inode !== undefined && inodes.has(inode)) ports.add(Number.parseInt(local!.split(':').at(-1)!, 16)); // 0A: LISTEN
    }
  }
  return ports;
}
