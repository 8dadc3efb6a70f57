import { status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { MessageType, RebuildRequest } from '../../generated/chat/v1/chat.js';
import { type ChatApi, chatApi, expectStatus, type Loose } from '../support/chat-api.js';
import { ManualClock } from '../support/manual-clock.js';
import { sealed } from '../support/security.js';
import { startTestServer, testClient, type TestServer } from '../support/servers.js';

const PUSHBACK = 'grpc-retry-pushback-ms';

/**
 * A Rebuild of visitor messages `ids` (offsets from 1) of chat `chatId`, sealed already, so the
 * test client sends it as it is and the test knows its size to the byte.
 */
function upload(chatId: string, ids: readonly string[], content = 'x'.repeat(900)): { request: Loose<RebuildRequest>; bytes: number } {
  const messages = sealed(
    chatId,
    ids.map((id, i) => ({ id, dataOffset: i + 1, content, messageType: MessageType.MESSAGE_TYPE_VISITOR, senderId: '', sendTime: new Date(Date.UTC(2026, 0, 1, 0, 0, i)) })),
  );
  const request = { chat: { id: chatId, messages } };
  return { request, bytes: RebuildRequest.encode(RebuildRequest.fromPartial(request)).finish().length };
}

/** The retry the budget gives an upload of `bytes` when `left` is all its bucket holds. */
const retryMs = (bytes: number, left: number, rate: number) => Math.ceil(((bytes - left) / rate) * 1000);

describe('the Rebuild upload budget on the wire (--rebuild-bytes-per-second)', () => {
  const RATE = 4096;
  let server: TestServer | undefined;
  let api: ChatApi;
  let clock: ManualClock;
  beforeEach(async () => {
    clock = new ManualClock();
    server = await startTestServer({ maxContentBytes: 1000, maxRequestBytes: 4096, rebuildBytesPerSecond: RATE }, { clock });
    api = chatApi(server.client);
  });
  afterEach(async () => server?.close());

  /** What the server holds: every chat's messages and offsets, and its byte count. */
  const snapshot = async (...chatIds: string[]) => ({
    chats: await Promise.all(chatIds.map((chatId) => api.getNewMessage({ chatId, visitorOffset: 0, agentOffset: 0 }))),
    size: server!.server.store.size,
    heldBytes: server!.server.store.heldBytes,
  });

  it('refuses an upload past the budget with RESOURCE_EXHAUSTED, saying so and when to retry in the grpc-retry-pushback-ms trailer, and changes nothing', async () => {
    const first = upload('kept', ['v1', 'v2', 'v3']);
    await api.rebuild(first.request);
    const before = await snapshot('kept');

    const second = upload('kept', ['v1', 'v2', 'v3', 'v4'].slice(2)); // v3 held, v4 new
    const expected = retryMs(second.bytes, RATE - first.bytes, RATE);
    expect(expected, 'the bucket holds less than the second upload').to.be.above(0);
    const error = await expectStatus(api.rebuild(second.request), status.RESOURCE_EXHAUSTED);
    expect(error.details).to.equal(`this server is admitting rebuild uploads at ${RATE} bytes/s (--rebuild-bytes-per-second); retry in ${expected} ms`);
    expect(error.metadata.get(PUSHBACK)).to.deep.equal([String(expected)]);

    // Nor does a refused upload create a chat.
    await expectStatus(api.rebuild(upload('new', ['n1', 'n2']).request), status.RESOURCE_EXHAUSTED);
    expect(await snapshot('kept')).to.deep.equal(before);
    expect(server!.server.rebuildUploads.refused).to.equal(2);
  });

  it('admits the upload again once the budget has refilled, and not a millisecond before the time it gave', async () => {
    const first = upload('c', ['v1', 'v2', 'v3']);
    await api.rebuild(first.request);
    const second = upload('c', ['v1', 'v2', 'v3', 'v4', 'v5'].slice(3));
    const error = await expectStatus(api.rebuild(second.request), status.RESOURCE_EXHAUSTED);
    const [pushback] = error.metadata.get(PUSHBACK);
    clock.advance(Number(pushback) - 1);
    await expectStatus(api.rebuild(second.request), status.RESOURCE_EXHAUSTED);
    clock.advance(1);
    const admitted = await api.rebuild(second.request);
    expect(admitted.chat).to.deep.include({ visitorDataOffset: 5 });
    expect(admitted.chat!.messages.map((m) => m.id)).to.deep.equal(['v1', 'v2', 'v3', 'v4', 'v5']);
  });

  it('charges only Rebuilds: reads and sends go on while it refuses uploads', async () => {
    await api.rebuild(upload('c', ['v1', 'v2', 'v3', 'v4']).request);
    await expectStatus(api.rebuild(upload('c', ['v5']).request), status.RESOURCE_EXHAUSTED);
    const read = await api.getNewMessage({ chatId: 'c', visitorOffset: 0, agentOffset: 0 });
    expect(read.visitorDataOffset).to.equal(4);
    const sent = await api.addVisitorMessage({ chatId: 'c', visitorOffset: 4, agentOffset: 0, epoch: read.epoch, message: { id: 'v5', content: 'hello' } });
    expect(sent.message).to.deep.include({ id: 'v5', dataOffset: 5 });
  });
});

describe('a gRPC client with a retry policy and the upload budget', () => {
  it('comes back after the pushback the server gives and is admitted (a client in any language can do the same)', async () => {
    const rate = 40_000;
    const server = await startTestServer({ maxContentBytes: 10_000, maxRequestBytes: rate, rebuildBytesPerSecond: rate });
    // gRPC's retry policy (A6): without the pushback it would wait a random part of 100 s.
    const serviceConfig = {
      methodConfig: [
        {
          name: [{ service: 'chat.v1.ChatService', method: 'Rebuild' }],
          retryPolicy: { maxAttempts: 5, initialBackoff: '100s', maxBackoff: '100s', backoffMultiplier: 1, retryableStatusCodes: ['RESOURCE_EXHAUSTED'] },
        },
      ],
    };
    const client = testClient(server.address, { options: { 'grpc.service_config': JSON.stringify(serviceConfig) } });
    try {
      const api = chatApi(client);
      const content = 'y'.repeat(9000);
      await api.rebuild(upload('r', ['v1', 'v2', 'v3', 'v4'], content).request); // leaves some 3.5 KB of 40 KB
      const started = performance.now();
      const answer = await api.rebuild(upload('r', ['v1', 'v2', 'v3', 'v4', 'v5'].slice(4), content).request);
      expect(answer.chat).to.deep.include({ visitorDataOffset: 5 });
      expect(server.server.rebuildUploads.refused, 'it was refused first').to.be.at.least(1);
      expect(performance.now() - started, 'long before the policy backoff would likely have let it').to.be.below(2_000);
    } finally {
      client.close();
      await server.close();
    }
  });
});
