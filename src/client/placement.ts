import { createHash } from 'node:crypto';

/**
 * The order in which the clients of a chat try a list of servers: rendezvous (highest random
 * weight) hashing. Each address scores the first 8 bytes of SHA-256(`chatId` + "\n" +
 * `address`), read as an unsigned big-endian integer; the highest score is the chat's home,
 * the next its first fallback, and so on (ties, which need a hash collision, by address).
 *
 * Every client that is given the same addresses (spelled the same way, in any order) computes
 * the same order for a chat, so all participants of a chat meet on one server, and chats
 * spread evenly over the servers. When a server leaves the list or dies, only the chats it was
 * home to move, each to its own next address.
 */
export function placement(chatId: string, addresses: readonly string[]): string[] {
  const scored = [...new Set(addresses)].map((address) => ({ address, score: score(chatId, address) }));
  scored.sort((a, b) => (a.score === b.score ? (a.address < b.address ? -1 : 1) : a.score > b.score ? -1 : 1));
  return scored.map((s) => s.address);
}

function score(chatId: string, address: string): bigint {
  return createHash('sha256').update(`${chatId}\n${address}`).digest().readBigUInt64BE(0);
}
