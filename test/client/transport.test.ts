import { type Metadata, Server, ServerCredentials, status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { type ChatServiceServer, ChatServiceService, ResultCode } from '../../generated/chat/v1/chat.js';
import { CHAT_ID_HEADER, ChatTransport } from '../../src/client/transport.js';
import { chatIdPlaced } from '../support/placement.js';
import { startTestServer, type TestServer } from '../support/servers.js';

/** A ChatService that answers every read empty and records each call's `x-chat-id` header. */
async function recordingServer(seen: string[]): Promise<{ address: string; stop(): Promise<void> }> {
  const server = new Server();
  const header = (metadata: Metadata) => seen.push(String(metadata.get(CHAT_ID_HEADER)[0] ?? '(none)'));
  const empty = { code: ResultCode.RESULT_CODE_OK, visitorDataOffset: 0, agentDataOffset: 0, messages: [], epoch: 'e', ended: false, readPositions: [], typing: [] };
  const handlers: ChatServiceServer = {
    getNewMessage: (call, callback) => (header(call.metadata), callback(null, empty)),
    watchChat: (call) => {
      header(call.metadata);
      call.write(empty);
      call.end();
    },
    addVisitorMessage: (_call, callback) => callback({ code: status.UNIMPLEMENTED }),
    addAgentMessage: (_call, callback) => callback({ code: status.UNIMPLEMENTED }),
    rebuild: (_call, callback) => callback({ code: status.UNIMPLEMENTED }),
    markRead: (_call, callback) => callback({ code: status.UNIMPLEMENTED }),
    setTyping: (_call, callback) => callback({ code: status.UNIMPLEMENTED }),
    watchTranscripts: (call) => call.emit('error', { code: status.UNIMPLEMENTED }),
    ackTranscript: (_call, callback) => callback({ code: status.UNIMPLEMENTED }),
  };
  server.addService(ChatServiceService, handlers);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  return { address: `127.0.0.1:${port}`, stop: () => new Promise((resolve) => server.tryShutdown(() => resolve())) };
}

describe('ChatTransport', () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  it('names the chat in the x-chat-id header of every call and watch, for balancers that hash on it', async () => {
    const seen: string[] = [];
    const server = await recordingServer(seen);
    cleanup.push(server.stop);
    const transport = new ChatTransport({ chatId: 'order-4711', addresses: [server.address] });
    cleanup.push(() => transport.close());
    await transport.call('getNewMessage', { chatId: 'order-4711', visitorOffset: 0, agentOffset: 0, epoch: '' });
    for await (const response of transport.watch({ chatId: 'order-4711', visitorOffset: 0, agentOffset: 0, epoch: '' }, new AbortController().signal)) {
      expect(response.epoch).to.equal('e');
    }
    expect(seen).to.deep.equal(['order-4711', 'order-4711']);
  });

  it('calls the chat\'s home, moves down the placement on a failure, and returns once the home answers its health check', async () => {
    const servers: TestServer[] = [];
    cleanup.push(() => Promise.all(servers.map((s) => s.close())).then(() => undefined));
    const [first, second] = [await startTestServer(), await startTestServer()];
    servers.push(first!, second!);
    const addresses = [first!.address, second!.address];
    const chatId = chatIdPlaced('homing', addresses); // first is its home
    const transport = new ChatTransport({ chatId, addresses: [...addresses].reverse(), callTimeoutMs: 1_000, homeProbe: { firstMs: 20, maxMs: 100 } });
    cleanup.push(() => transport.close());
    expect(transport.address, 'the home, whatever order the list is in').to.equal(first!.address);

    const moves: string[] = [];
    transport.onMove((address) => moves.push(address));
    const port = first!.server.port;
    await first!.close(); // the home goes away
    await transport.call('getNewMessage', { chatId, visitorOffset: 0, agentOffset: 0, epoch: '' }).then(
      () => expect.fail('the home is down'),
      (error: { code: status }) => expect(error.code).to.equal(status.UNAVAILABLE),
    );
    transport.failover(first!.address);
    expect(transport.address).to.equal(second!.address);
    transport.failover(first!.address); // a failure reported late, at an address already left
    expect(transport.address, 'a stale failure moves nothing').to.equal(second!.address);

    const back = new Promise<void>((resolve) => {
      const stop = transport.onMove((address) => address === first!.address && (stop(), resolve()));
    });
    servers.push(await startTestServer({ port })); // the home returns, empty, on its address
    await back;
    expect(transport.address).to.equal(first!.address);
    expect(moves).to.deep.equal([second!.address, first!.address]);
  });
});
