import { status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { MessageType, ResultCode } from '../../generated/chat/v1/chat.js';
import { DEFAULT_CONFIG } from '../../src/server/config.js';
import { ListenError } from '../../src/server/listen-error.js';
import { startServer } from '../../src/server/server.js';
import { chatApi, expectStatus } from '../support/chat-api.js';
import { type Sample, samples, scrape, valueOf } from '../support/metrics.js';
import { listeningPorts, withPortTaken } from '../support/ports.js';
import { memoryLogger } from '../support/memory-log.js';
import { RawChatClient } from '../support/raw-client.js';
import { testSecurity } from '../support/security.js';
import { type ServerProcess, spawnServer, startTestServer, testClient, type TestServer } from '../support/servers.js';
import { expectEnd, WatchStream, waitFor } from '../support/watch-stream.js';

const CHAT = 'chat.v1.ChatService';
const unary = (method: string) => ({ grpc_type: 'unary', grpc_service: CHAT, grpc_method: method });
const watchChat = { grpc_type: 'server_stream', grpc_service: CHAT, grpc_method: 'WatchChat' };
/** Prometheus's default buckets, which go-grpc-prometheus and prom-client both use. */
const BUCKETS = ['0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '+Inf'];
const VISITOR = MessageType.MESSAGE_TYPE_VISITOR;

/** The metrics a server serves now. */
async function scraped(url: string): Promise<Sample[]> {
  const answer = await scrape(url);
  expect(answer.status, answer.text).to.equal(200);
  return samples(answer.text);
}

describe('Prometheus metrics', () => {
  describe('served with --metrics-port', () => {
    let server: TestServer;
    let url: string;
    const streams: WatchStream[] = [];

    beforeEach(async () => {
      server = await startTestServer({ metricsPort: 0, maxContentBytes: 1000, maxRequestBytes: 5000 });
      url = server.server.metrics!.url;
    });
    afterEach(async () => {
      for (const stream of streams.splice(0)) stream.call.cancel();
      await server.close();
    });

    it('counts every call under go-grpc-prometheus names, and the chats, messages, bytes, rebuilds and watchers', async () => {
      expect(server.server.metrics).to.deep.equal({ host: '127.0.0.1', port: server.server.metrics!.port, url: `http://127.0.0.1:${server.server.metrics!.port}/metrics` });
      const api = chatApi(server.client);
      const missing = await api.getNewMessage({ chatId: 'm' }); // creates m: REBUILD_REQUIRED (missing_chat)
      expect(missing.code).to.equal(ResultCode.RESULT_CODE_REBUILD_REQUIRED);
      const merged = await api.rebuild({ chat: { id: 'm', messages: [{ id: 'v1', dataOffset: 1, content: 'hello', messageType: VISITOR }] } });
      const epoch = merged.chat!.epoch;
      await api.rebuild({ chat: { id: 'n', messages: [{ id: 'w1', dataOffset: 1, content: 'hi', messageType: VISITOR }] } }); // created
      const elsewhere = await api.rebuild({ chat: { id: 'm', epoch: 'another-incarnation', messages: [{ id: 'v9', dataOffset: 9, content: 'x', messageType: VISITOR }] } });
      expect(elsewhere.code).to.equal(ResultCode.RESULT_CODE_REBUILD_REQUIRED);

      const send = (id: string, visitorOffset: number, content = `text of ${id}`, chatId = 'm') =>
        api.addVisitorMessage({ chatId, visitorOffset, agentOffset: 0, epoch, message: { id, content } });
      await send('v2', 1);
      await send('v3', 2);
      await expectStatus(send('v4', 3, ''), status.INVALID_ARGUMENT);
      expect((await send('x1', 0, 'to nowhere', 'x')).code, 'a send to a missing chat').to.equal(ResultCode.RESULT_CODE_REBUILD_REQUIRED);
      for (let i = 0; i < 3; i += 1) expect((await api.getNewMessage({ chatId: 'm', visitorOffset: 3, epoch })).code).to.equal(ResultCode.RESULT_CODE_OK);
      expect((await api.getNewMessage({ chatId: 'm', visitorOffset: 9, epoch })).code, 'ahead').to.equal(ResultCode.RESULT_CODE_REBUILD_REQUIRED);
      expect((await api.getNewMessage({ chatId: 'm', visitorOffset: 3, epoch: 'another' })).code, 'another epoch').to.equal(ResultCode.RESULT_CODE_REBUILD_REQUIRED);
      const stranger = testClient(server.address, { testTokens: false });
      await expectStatus(chatApi(stranger).getNewMessage({ chatId: 'm' }), status.UNAUTHENTICATED);
      stranger.close();
      const raw = new RawChatClient(server.address);
      expect((await raw.call('AddVisitorMessage', new Uint8Array(6000))).code, 'refused by grpc-js before any handler').to.equal(status.RESOURCE_EXHAUSTED);
      raw.close();

      const ended = new WatchStream(server.client, { chatId: 'm', visitorOffset: 3, epoch: 'another' });
      streams.push(ended);
      await expectEnd(ended, status.OK);
      expect(ended.responses.map((r) => r.code)).to.deep.equal([ResultCode.RESULT_CODE_REBUILD_REQUIRED]);
      await waitFor(() => server.server.watches.size === 0, 'the ended watch to be gone');
      const live = new WatchStream(server.client, { chatId: 'm', visitorOffset: 3, epoch });
      streams.push(live);
      await live.established();

      const all = await scraped(url);
      const value = (name: string, labels: Record<string, string> = {}) => valueOf(all, name, labels);
      expect(value('grpc_server_handled_total', { ...unary('GetNewMessage'), grpc_code: 'OK' })).to.equal(6);
      expect(value('grpc_server_handled_total', { ...unary('GetNewMessage'), grpc_code: 'Unauthenticated' })).to.equal(1);
      expect(value('grpc_server_started_total', unary('GetNewMessage'))).to.equal(7);
      expect(value('grpc_server_msg_received_total', unary('GetNewMessage'))).to.equal(7);
      expect(value('grpc_server_msg_sent_total', unary('GetNewMessage'))).to.equal(6);
      expect(value('grpc_server_handled_total', { ...unary('AddVisitorMessage'), grpc_code: 'OK' })).to.equal(3);
      expect(value('grpc_server_handled_total', { ...unary('AddVisitorMessage'), grpc_code: 'InvalidArgument' })).to.equal(1);
      expect(value('grpc_server_handled_total', { ...unary('AddVisitorMessage'), grpc_code: 'ResourceExhausted' })).to.equal(1);
      expect(value('grpc_server_handled_total', { ...unary('Rebuild'), grpc_code: 'OK' })).to.equal(3);
      expect(value('grpc_server_started_total', watchChat), 'one ended, one open').to.equal(2);
      expect(value('grpc_server_handled_total', { ...watchChat, grpc_code: 'OK' })).to.equal(1);
      expect(value('grpc_server_msg_sent_total', watchChat)).to.equal(2);

      const buckets = all.filter((s) => s.name === 'grpc_server_handling_seconds_bucket' && s.labels.grpc_method === 'GetNewMessage');
      expect(buckets.map((s) => s.labels.le)).to.deep.equal(BUCKETS);
      expect(buckets.at(-1)!.value).to.equal(7);
      expect(value('grpc_server_handling_seconds_count', unary('GetNewMessage'))).to.equal(7);
      expect(value('grpc_server_handling_seconds_sum', unary('GetNewMessage'))).to.be.above(0);

      expect(value('chat_chats'), 'm and n; nothing else created').to.equal(2);
      expect(value('chat_messages'), 'v1-v3 in m, w1 in n').to.equal(4);
      expect(value('chat_bytes')).to.equal(server.server.store.heldBytes).and.to.be.above(0);
      expect(value('chat_watchers')).to.equal(1);
      expect(value('chat_transcripts_pending'), 'no chat ended').to.equal(0);
      expect(value('chat_rebuilds_total', { reason: 'created' })).to.equal(1);
      expect(value('chat_rebuilds_total', { reason: 'merged' })).to.equal(1);
      expect(value('chat_rebuilds_total', { reason: 'epoch_mismatch' })).to.equal(1);
      expect(value('chat_rebuild_required_total', { reason: 'missing_chat' }), 'the first read, the send to x').to.equal(2);
      expect(value('chat_rebuild_required_total', { reason: 'caller_ahead' })).to.equal(1);
      expect(value('chat_rebuild_required_total', { reason: 'epoch_mismatch' }), 'the read and the watch').to.equal(2);
      expect(value('chat_evictions_total', { cause: 'idle' })).to.equal(0);
      expect(value('chat_evictions_total', { cause: 'heap' })).to.equal(0);

      for (const name of ['process_cpu_user_seconds_total', 'process_start_time_seconds', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds']) {
        expect(value(name), name).to.be.a('number');
      }
    });

    it('answers GET /metrics in the text format, and 404 for anything else', async () => {
      const answer = await scrape(url);
      expect(answer).to.include({ status: 200, contentType: 'text/plain; version=0.0.4; charset=utf-8' });
      expect(answer.text).to.match(/^# HELP grpc_server_started_total /m).and.to.match(/^# TYPE grpc_server_handling_seconds histogram$/m);
      expect((await scrape(`${url}?debug=1`)).status, 'a query string').to.equal(200);
      const origin = new URL(url).origin;
      for (const [path, method] of [['/', 'GET'], ['/metricsx', 'GET'], ['/metrics/', 'GET'], ['/metrics', 'POST']] as const) {
        expect((await scrape(`${origin}${path}`, method)).status, `${method} ${path}`).to.equal(404);
      }
    });

    it('counts chats evicted by the idle sweep', async () => {
      await server.close();
      server = await startTestServer({ metricsPort: 0, idleChatTtlMs: 20 });
      url = server.server.metrics!.url;
      await chatApi(server.client).getNewMessage({ chatId: 'idle' });
      await waitFor(() => server.server.store.size === 0, 'the sweep to evict the idle chat');
      const all = await scraped(url);
      expect(valueOf(all, 'chat_evictions_total', { cause: 'idle' })).to.equal(1);
      expect(valueOf(all, 'chat_chats')).to.equal(0);
    });

    it('stops serving when the server stops', async () => {
      await server.close();
      const refused = await scrape(url).then(
        () => undefined,
        (error: Error & { cause?: { code?: string } }) => error.cause?.code,
      );
      expect(refused).to.equal('ECONNREFUSED');
    });

    it('keeps each server its own registry', async () => {
      const other = await startTestServer({ metricsPort: 0 });
      try {
        await chatApi(other.client).getNewMessage({ chatId: 'o1' });
        await chatApi(other.client).getNewMessage({ chatId: 'o2' });
        await chatApi(server.client).getNewMessage({ chatId: 's1' });
        expect(valueOf(await scraped(other.server.metrics!.url), 'chat_chats')).to.equal(2);
        expect(valueOf(await scraped(url), 'chat_chats')).to.equal(1);
      } finally {
        await other.close();
      }
    });
  });

  it('are off by default: no metrics server listens', async () => {
    const before = listeningPorts();
    const server = await startTestServer();
    try {
      expect(server.server.metrics).to.equal(undefined);
      const opened = [...listeningPorts()].filter((port) => !before.has(port));
      expect(opened, 'only the gRPC port').to.deep.equal([server.server.port]);
    } finally {
      await server.close();
    }
  });

  it('a busy metrics port: start-up fails with a ListenError, leaving nothing listening', () =>
    withPortTaken(async (port) => {
      const before = listeningPorts();
      const { config } = testSecurity({ metricsPort: port });
      const failed = await startServer({ ...DEFAULT_CONFIG, host: '127.0.0.1', port: 0, ...config }, memoryLogger('silent').logger).then(
        () => expect.fail('started on a busy metrics port'),
        (error: unknown) => error,
      );
      expect(failed).to.be.instanceOf(ListenError);
      expect((failed as Error).message).to.equal(
        `cannot serve metrics on 127.0.0.1:${port}: address already in use (EADDRINUSE); choose another --metrics-port or --metrics-host`,
      );
      await waitFor(() => [...listeningPorts()].every((open) => before.has(open)), 'the gRPC listener to close');
    }));

  describe('the server process', () => {
    let server: ServerProcess | undefined;
    afterEach(async () => server?.kill());

    it('with METRICS_PORT, serves /metrics and says where in its listening line', async () => {
      server = await spawnServer({ METRICS_PORT: '0' });
      const listening = await server.waitForLog('chat server listening');
      const url = new URL(listening.metrics as string);
      expect(url.hostname, 'the --host').to.equal('127.0.0.1');
      expect(url.pathname).to.equal('/metrics');
      expect(Number(url.port)).to.be.above(0).and.not.equal(server.port);
      const client = testClient(server.address);
      await chatApi(client).getNewMessage({ chatId: 'p' });
      client.close();
      const all = await scraped(url.href);
      expect(valueOf(all, 'grpc_server_handled_total', { ...unary('GetNewMessage'), grpc_code: 'OK' })).to.equal(1);
      expect(valueOf(all, 'chat_chats')).to.equal(1);
      expect(valueOf(all, 'process_start_time_seconds')).to.be.a('number');
    });
  });
});
