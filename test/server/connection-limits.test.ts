import { constants } from 'node:http2';
import { type ChannelOptions, status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { ChatServiceClient, GetNewMessageRequest, MessageType, ResultCode, WatchChatRequest } from '../../generated/chat/v1/chat.js';
import type { Config } from '../../src/server/config.js';
import { type ChatApi, chatApi, rebuildInParts } from '../support/chat-api.js';
import { RawConnection } from '../support/raw-http2.js';
import { testToken } from '../support/security.js';
import { startTestServer, testClient, type TestServer } from '../support/servers.js';
import { WatchStream, waitFor } from '../support/watch-stream.js';

const GET = '/chat.v1.ChatService/GetNewMessage';
const WATCH = '/chat.v1.ChatService/WatchChat';
const KILOBYTE = 'x'.repeat(1000);
const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
/** One answer's budget: a page of the backlog below is about this big. */
const PAGE_BYTES = 64 * 1024;

describe('connection limits: streams, idle and old connections, a cap, answers in flight', () => {
  let server: TestServer;
  let api: ChatApi;
  let token: string;
  const raws: RawConnection[] = [];
  const clients: ChatServiceClient[] = [];

  async function start(overrides: Partial<Config>) {
    server = await startTestServer({ maxResponseBytes: PAGE_BYTES, ...overrides });
    api = chatApi(server.client);
    token = await testToken({ sub: 'reader', role: 'service' });
  }
  const raw = (options?: { reads?: boolean }) => {
    const connection = RawConnection.open(server.address, { ...options, token });
    raws.push(connection);
    return connection;
  };
  const client = (options?: ChannelOptions) => {
    const made = testClient(server.address, { options });
    clients.push(made);
    return made;
  };
  /** A chat of 300 visitor messages of about 1 KB: several pages of about PAGE_BYTES. */
  const backlog = (chatId: string) =>
    rebuildInParts(api, chatId, range(300).map((i) => ({ id: `v${i}`, dataOffset: i, content: KILOBYTE, messageType: MessageType.MESSAGE_TYPE_VISITOR })));
  const getFromStart = (chatId: string) => GetNewMessageRequest.encode(GetNewMessageRequest.fromPartial({ chatId })).finish();

  afterEach(async () => {
    for (const connection of raws.splice(0)) connection.close();
    for (const made of clients.splice(0)) made.close();
    await server?.close();
  });

  it('caps the answers a connection that reads nothing pins, and drops them after the unary deadline', async function () {
    this.timeout(20_000);
    const budget = 3 * PAGE_BYTES + PAGE_BYTES / 2;
    await start({ maxResponseBytesInFlightPerConnection: budget, unaryDeadlineMs: 1_000 });
    await backlog('big');
    const stuck = raw({ reads: false });
    await stuck.accepted();

    // Each answer is about one page; none can leave (a window of 0), so each stays in flight.
    const calls = [];
    for (let i = 0; i < 8; i += 1) {
      const call = stuck.call(GET, getFromStart('big'));
      calls.push(call);
      await call.headers;
    }
    const refusals = await Promise.all(calls.map((call) => call.refusal()));
    expect(refusals.slice(0, 4), 'admitted while below the budget').to.deep.equal([undefined, undefined, undefined, undefined]);
    for (const refusal of refusals.slice(4)) {
      expect(refusal?.code).to.equal(status.RESOURCE_EXHAUSTED);
      expect(refusal?.message).to.match(/this connection has \d+ bytes of answers it has not read, its budget .*--max-response-bytes-in-flight-per-connection.*read your responses/);
    }
    expect(server.server.responses.bytesInFlight).to.be.within(3 * PAGE_BYTES, budget + 2 * PAGE_BYTES);

    // A normal client, on its own connection, is served throughout.
    expect((await api.getNewMessage({ chatId: 'big' })).messages.length).to.be.above(0);

    // The unary deadline resets the answers nobody took, which frees them.
    await Promise.all(calls.slice(0, 4).map((call) => call.ended));
    for (const call of calls.slice(0, 4)) expect(call.stream.rstCode).to.equal(constants.NGHTTP2_ENHANCE_YOUR_CALM);
    await waitFor(() => server.server.responses.bytesInFlight === 0, 'the dropped answers to be released');
    expect(await stuck.call(GET, getFromStart('big')).refusal(), 'admitted again').to.equal(undefined);
  });

  it('refuses reads beyond the instance budget, on any connection, and says to try another server', async () => {
    await start({ maxResponseBytesInFlight: 2 * PAGE_BYTES, unaryDeadlineMs: 60_000 });
    await backlog('big');
    const first = raw({ reads: false });
    await first.accepted();
    for (let i = 0; i < 3; i += 1) expect(await first.call(GET, getFromStart('big')).refusal()).to.equal(undefined);
    const second = raw({ reads: false });
    await second.accepted();
    const refusal = await second.call(GET, getFromStart('big')).refusal();
    expect(refusal?.code).to.equal(status.RESOURCE_EXHAUSTED);
    expect(refusal?.message).to.match(/this server has \d+ bytes of answers in flight.*--max-response-bytes-in-flight\b.*try another server/);
    // Sends are not reads: they are still served.
    expect((await api.addVisitorMessage({ chatId: 'big', visitorOffset: 300, message: { id: 'v301', content: 'hi' } })).visitorDataOffset).to.equal(301);
  });

  it('counts a watch page in flight against its connection until the stall cut-off frees it', async function () {
    this.timeout(20_000);
    await start({ maxResponseBytesInFlightPerConnection: PAGE_BYTES / 2, watchStallMs: 300, watchCutoffGraceMs: 300 });
    await backlog('big');
    const stuck = raw({ reads: false });
    await stuck.accepted();
    const watch = stuck.call(WATCH, WatchChatRequest.encode(WatchChatRequest.fromPartial({ chatId: 'big' })).finish());
    expect(await watch.refusal()).to.equal(undefined);
    await waitFor(() => server.server.responses.bytesInFlight > PAGE_BYTES / 2, 'the first page to be in flight');
    const refused = await stuck.call(GET, getFromStart('big')).refusal();
    expect(refused?.code).to.equal(status.RESOURCE_EXHAUSTED);
    await watch.ended; // cut off, then reset: its status cannot pass the page nobody read
    await waitFor(() => server.server.responses.bytesInFlight === 0, 'the page to be released');
  });

  it('closes a connection that stays idle (no calls) for the maximum idle time, not one with a call open', async function () {
    this.timeout(10_000);
    await start({ maxConnectionIdleMs: 300 });
    await api.getNewMessage({ chatId: 'c' });
    const watcher = new WatchStream(client(), { chatId: 'c' });
    await watcher.established();
    const idle = raw();
    await idle.accepted();
    await idle.closed; // bounded by the test's timeout; before the setting this never happened
    expect(idle.goaway, 'told to go away first').to.equal(true);
    expect(server.server.watches.size, 'the busy connection is kept').to.equal(1);
    expect((await api.getNewMessage({ chatId: 'c' })).code).to.equal(0);
    watcher.call.cancel();
  });

  it('sends a connection past its maximum age a GOAWAY, and closes it after the grace', async function () {
    this.timeout(10_000);
    await start({ maxConnectionAgeMs: 300, maxConnectionAgeGraceMs: 300, maxConnectionIdleMs: 0 });
    await api.getNewMessage({ chatId: 'c' });
    const old = raw();
    await old.accepted();
    const watch = old.call(WATCH, WatchChatRequest.encode(WatchChatRequest.fromPartial({ chatId: 'c' })).finish());
    expect(await watch.refusal()).to.equal(undefined);
    await old.closed;
    expect(old.goaway).to.equal(true);
    await waitFor(() => server.server.watches.size === 0, 'the watch on the old connection to end');
  });

  it('caps the concurrent streams of one connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS)', async () => {
    await start({ maxConcurrentStreamsPerConnection: 2 });
    await api.getNewMessage({ chatId: 'c' });
    const connection = raw();
    await connection.accepted();
    expect(connection.session.remoteSettings.maxConcurrentStreams).to.equal(2);
    const body = WatchChatRequest.encode(WatchChatRequest.fromPartial({ chatId: 'c' })).finish();
    const watches = range(3).map(() => connection.call(WATCH, body));
    await Promise.all(watches.slice(0, 2).map((w) => w.headers));
    let third = false;
    void watches[2]!.headers.then(() => (third = true));
    await new Promise<void>((resolve) => connection.session.ping(() => resolve()));
    expect(third, 'the third waits for a free stream').to.equal(false);
    expect(server.server.watches.size).to.equal(2)
    watches[0]!.stream.close();
    await watches[2]!.headers;
    await waitFor(() => server.server.watches.size === 2, 'the third watch to take the freed stream');
  });

  /** Opens `count` raw connections one after another, so the server accepts them in this order. */
  const rawInOrder = async (count: number) => {
    const opened: RawConnection[] = [];
    for (let i = 0; i < count; i += 1) {
      opened.push(raw());
      await opened.at(-1)!.accepted();
    }
    return opened;
  };
  /**
   * A generated client on a connection of its own (grpc-js shares one between clients of the
   * same address unless told not to), with a WatchChat open on chat `chatId`; and its API.
   */
  const watching = async (chatId: string) => {
    const watcher = client({ 'grpc.use_local_subchannel_pool': 1 });
    const calls = chatApi(watcher);
    await calls.getNewMessage({ chatId });
    const watch = new WatchStream(watcher, { chatId });
    await watch.established();
    return { watch, calls };
  };

  it('at the cap, closes the connection idle longest (GOAWAY) to serve a new one', async function () {
    this.timeout(10_000);
    await start({ maxConnections: 3 });
    const [first, second, third] = await rawInOrder(3);
    await waitFor(() => server.server.connections.open === 3, 'three connections to be open');

    const fourth = raw();
    await fourth.accepted();
    await first!.closed; // bounded by the test's timeout; before the eviction it stayed open
    expect(first!.goaway, 'told to go away first').to.equal(true);
    expect(server.server.connections).to.include({ open: 3, closedIdle: 1, refused: 0 });
    for (const connection of [second!, third!, fourth]) expect(await connection.call(GET, getFromStart('c')).refusal()).to.equal(undefined);

    // A connection its client closed is counted out, and leaves room without closing another.
    second!.close();
    await waitFor(() => server.server.connections.open === 2, 'the closed connection to be counted out');
    const fifth = raw();
    await fifth.accepted();
    expect(server.server.connections).to.include({ open: 3, closedIdle: 1, refused: 0 });
  });

  it('a generated client whose idle connection was closed to make room makes its next call on a new one', async function () {
    this.timeout(10_000);
    await start({ maxConnections: 2 });
    const made = chatApi(client({ 'grpc.use_local_subchannel_pool': 1 }));
    await made.getNewMessage({ chatId: 'c' });
    const [held] = await rawInOrder(1);
    await rawInOrder(1);
    await waitFor(() => server.server.connections.closedIdle === 1, "the client's connection, idle longest, to be closed");

    expect((await made.getNewMessage({ chatId: 'c' })).code, 'the next call, on a new connection').to.equal(ResultCode.RESULT_CODE_OK);
    await held!.closed;
    expect(server.server.connections).to.include({ open: 2, closedIdle: 2, refused: 0 });
  });

  it('never closes a connection with a call open, and counts one idle again from when its last call ended', async function () {
    this.timeout(10_000);
    await start({ maxConnections: 3 });
    const { watch } = await watching('c'); // the oldest connection, busy
    const [idleFirst, idleSecond] = await rawInOrder(2);
    await waitFor(() => server.server.connections.open === 3, 'three connections to be open');

    const next = raw();
    await next.accepted();
    await idleFirst!.closed;
    expect(server.server.watches.size, 'the watch goes on').to.equal(1);

    // Idle from now on, so after idleSecond and next, which have been idle since they were accepted.
    await watch.cancel();
    await waitFor(() => server.server.watches.size === 0, 'the watch to end on the server');
    await rawInOrder(1);
    await idleSecond!.closed;
    await rawInOrder(1);
    await next.closed;
    expect(server.server.connections).to.include({ open: 3, closedIdle: 3, refused: 0 });
  });

  it('refuses a new connection when every one it holds has a call open, counts it, and keeps serving them', async function () {
    this.timeout(10_000);
    await start({ maxConnections: 2 });
    const [first, second] = [await watching('a'), await watching('b')];
    await waitFor(() => server.server.connections.open === 2, 'two connections to be open');

    const extra = raw();
    await extra.closed;
    expect(extra.session.remoteSettings.maxConcurrentStreams, 'it never got SETTINGS').to.equal(undefined);
    expect(server.server.connections).to.include({ open: 2, refused: 1, closedIdle: 0 });
    expect(server.server.watches.size, 'both watches go on').to.equal(2);
    expect((await second.calls.getNewMessage({ chatId: 'b' })).code, 'a call on a connection it holds').to.equal(ResultCode.RESULT_CODE_OK);

    // Once a watch ends its connection is idle, and makes room for the next one.
    await first.watch.cancel();
    await waitFor(() => server.server.watches.size === 1, 'the first watch to end on the server');
    const next = raw();
    await next.accepted();
    expect(await next.call(GET, getFromStart('a')).refusal()).to.equal(undefined);
    expect(server.server.connections).to.include({ open: 2, refused: 1, closedIdle: 1 });
  });
});
