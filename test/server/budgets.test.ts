import { status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { MessageType } from '../../generated/chat/v1/chat.js';
import { chatRecordBytes, heldBytes } from '../../src/domain/held-bytes.js';
import { DEFAULT_CONFIG } from '../../src/server/config.js';
import { type ChatApi, chatApi, expectStatus } from '../support/chat-api.js';
import { TEST_SEAL_BYTES } from '../support/security.js';
import { startTestServer, type TestServer } from '../support/servers.js';

const OVERHEAD = DEFAULT_CONFIG.messageOverheadBytes;
const content = (n: number) => 'x'.repeat(n);
/** What a sealed message costs; a send's sender is the token's subject (`visitor`, test/support/security.ts). */
const cost = (id: string, text: string, senderId = 'visitor') => heldBytes({ id, content: text, senderId, seal: 's'.repeat(TEST_SEAL_BYTES) }, OVERHEAD);
const at = (id: string, dataOffset: number, text: string) => ({ id, dataOffset, content: text, messageType: MessageType.MESSAGE_TYPE_VISITOR });

describe('byte budgets on the wire', () => {
  let server: TestServer | undefined;
  let api: ChatApi;
  afterEach(async () => server?.close());
  const start = async (overrides: Parameters<typeof startTestServer>[0]) => {
    server = await startTestServer(overrides);
    api = chatApi(server.client);
  };

  it('a send past --max-chat-bytes is RESOURCE_EXHAUSTED, says so, and stores nothing', async () => {
    const limit = chatRecordBytes('c', undefined, OVERHEAD) + cost('m1', content(1000));
    await start({ maxChatBytes: limit });
    await api.getNewMessage({ chatId: 'c', visitorOffset: 0, agentOffset: 0 });
    await api.addVisitorMessage({ chatId: 'c', visitorOffset: 0, agentOffset: 0, message: { id: 'm1', content: content(1000) } });
    const error = await expectStatus(
      api.addVisitorMessage({ chatId: 'c', visitorOffset: 1, agentOffset: 0, message: { id: 'm2', content: 'one more' } }),
      status.RESOURCE_EXHAUSTED,
    );
    expect(error.details).to.equal(
      `chat "c" holds ${limit} bytes; ${cost('m2', 'one more')} more would pass its budget of ${limit} bytes (--max-chat-bytes); continue in a new chat`,
    );
    const read = await api.getNewMessage({ chatId: 'c', visitorOffset: 0, agentOffset: 0 });
    expect(read.messages.map((m) => m.id)).to.deep.equal(['m1']);
    expect(server!.server.store.heldBytes).to.equal(limit);
  });

  it('a Rebuild past --max-held-bytes is RESOURCE_EXHAUSTED, says so, and merges nothing', async () => {
    await start({ maxHeldBytes: 10_000 });
    expect(server!.server.config.maxHeldBytes).to.equal(10_000);
    const chat = { id: 'big', visitorDataOffset: 3, agentDataOffset: 0, messages: [at('v1', 1, content(4000)), at('v2', 2, content(4000)), at('v3', 3, content(4000))] };
    const error = await expectStatus(api.rebuild({ chat }), status.RESOURCE_EXHAUSTED);
    expect(error.details).to.match(/^this server holds 0 bytes of chats; \d+ more would pass its budget of 10000 bytes \(--max-held-bytes\); try another server$/);
    expect(server!.server.store.size).to.equal(0);
    expect(server!.server.store.heldBytes).to.equal(0);
    // A smaller copy fits.
    const small = await api.rebuild({ chat: { ...chat, visitorDataOffset: 1, messages: [at('v1', 1, content(4000))] } });
    expect(small.chat!.visitorDataOffset).to.equal(1);
  });

  it('derives --max-held-bytes from the heap limit when it is 0 (the default)', async () => {
    await start({});
    const { maxHeldBytes } = server!.server.config;
    const { getHeapStatistics } = await import('node:v8');
    expect(maxHeldBytes).to.equal(Math.floor((getHeapStatistics().heap_size_limit * DEFAULT_CONFIG.heldBytesHeapPercent) / 100));
  });

  it('a write above the heap high-water mark, with nothing to evict, is RESOURCE_EXHAUSTED: short of memory', async () => {
    // 0%: any heap in use is above the mark.
    await start({ heapHighWaterPercent: 0, heapLowWaterPercent: 0 });
    const error = await expectStatus(api.getNewMessage({ chatId: 'c', visitorOffset: 0, agentOffset: 0 }), status.RESOURCE_EXHAUSTED);
    expect(error.details).to.match(/^the server is short of memory \(heap [\d.]+ of [\d.]+ MiB in use, .*\); try another server$/);
    expect(server!.server.store.size).to.equal(0);
  });
});
