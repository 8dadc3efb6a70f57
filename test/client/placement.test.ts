import { createHash } from 'node:crypto';
import { expect } from 'chai';
import { placement } from '../../src/client/placement.js';

const servers = ['10.0.0.1:50051', '10.0.0.2:50051', '10.0.0.3:50051'];
const chats = Array.from({ length: 3000 }, (_, i) => `chat-${i}`);

describe('placement (rendezvous hashing)', () => {
  it('is the documented function: SHA-256 of chat id, newline, address; highest first', () => {
    const score = (address: string) => createHash('sha256').update(`order-4711\n${address}`).digest().readBigUInt64BE(0);
    const expected = [...servers].sort((a, b) => (score(b) > score(a) ? 1 : -1));
    expect(placement('order-4711', servers)).to.deep.equal(expected);
  });

  it('gives every client the same order whatever order its list is in', () => {
    for (const chatId of chats.slice(0, 200)) {
      expect(placement(chatId, [...servers].reverse())).to.deep.equal(placement(chatId, servers));
      expect(placement(chatId, [servers[1]!, servers[2]!, servers[0]!, servers[1]!])).to.deep.equal(placement(chatId, servers));
    }
  });

  it('spreads chats evenly over the servers', () => {
    const homes = new Map<string, number>();
    for (const chatId of chats) homes.set(placement(chatId, servers)[0]!, (homes.get(placement(chatId, servers)[0]!) ?? 0) + 1);
    for (const server of servers) expect(homes.get(server), server).to.be.within(800, 1200);
  });

  it('moves only the chats of a server that leaves the list, each to its own next address', () => {
    const without = servers.slice(0, 2);
    for (const chatId of chats) {
      const before = placement(chatId, servers);
      const after = placement(chatId, without);
      expect(after, chatId).to.deep.equal(before.filter((s) => s !== servers[2]));
    }
  });
});
