import { once } from 'node:events';
import { status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { ChatSdkError, ChatSession, type RetryEvent } from '../../src/client/index.js';
import { startTestServer } from '../support/servers.js';
import { sessionToken } from '../support/security.js';

const open = (servers: readonly string[]) => ChatSession.open({ chatId: 'c', role: { kind: 'visitor' }, servers });

describe('ChatSession server list', () => {
  const refusals: [string, string[], RegExp][] = [
    ['an empty list', [], /servers is empty/],
    ['an empty variable split on commas', ''.split(','), /servers\[0\] "" is empty \(an empty variable split on commas gives one\)/],
    ['a URL', ['http://localhost:50051'], /is a URL: give host:port/],
    ['no port', ['localhost'], /has no port: give host:port, such as "localhost:50051"/],
    ['a port out of range', ['localhost:70000'], /has port "70000", not a number from 1 to 65535/],
    ['a port that is not a number', ['localhost:grpc'], /has port "grpc"/],
    ['no host', [':50051'], /has no host/],
    ['white space', ['localhost:50051, localhost:50052'], /contains white space/],
    ['a host with stray characters', ['no such host:::'], /contains white space/],
    ['an unbracketed IPv6 address', ['::1:50051'], /is not a host name or IPv4 address \(write an IPv6 address as \[addr\]:port\)/],
    ['the same server twice', ['a:1', 'b:2', 'a:1'], /servers\[2\] "a:1" is listed twice/],
  ];
  for (const [what, servers, message] of refusals) {
    it(`refuses ${what} at open(), with what to write instead`, async () => {
      const error = await open(servers).then(() => expect.fail('opened'), (e: unknown) => e);
      expect(error).to.be.instanceOf(ChatSdkError).and.include({ kind: 'invalid-options' });
      expect((error as Error).message).to.match(message);
    });
  }

  it('takes host:port, [IPv6]:port and gRPC targets with a resolver scheme', async () => {
    for (const servers of [['localhost:50051', '10.0.0.7:50052'], ['[::1]:50051'], ['dns:///chat.internal:443'], ['unix:/run/chat.sock'], ['ipv4:127.0.0.1:50051']]) {
      const session = await open(servers);
      await session.close();
    }
  });

  it('reports an unreachable server as retries with the reason, and rejects once the caller gives up', async () => {
    const gone = await startTestServer();
    const address = gone.address;
    await gone.close();
    const session = await ChatSession.open({ chatId: 'c', role: { kind: 'visitor' }, servers: [address], backoff: { initialMs: 5, maxMs: 20 }, token: sessionToken('c', { kind: 'visitor' }) });
    try {
      const retried = once(session, 'retry') as Promise<[RetryEvent]>;
      const giveUp = new AbortController();
      const syncing = session.sync({ signal: giveUp.signal });
      const [event] = await retried;
      expect(event.address).to.equal(address);
      expect(event.error.code).to.equal(status.UNAVAILABLE);
      expect(event.error.details).to.match(/ECONNREFUSED/);
      giveUp.abort();
      const error = await syncing.then(() => expect.fail('synced with no server'), (e: unknown) => e);
      expect(error).to.be.instanceOf(ChatSdkError).and.include({ kind: 'aborted' });
    } finally {
      await session.close();
    }
  });
});
