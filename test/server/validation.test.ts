import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { Client, credentials, type ServiceError, status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { type ChatMessage, MessageType, ResultCode } from '../../generated/chat/v1/chat.js';
import { type ChatApi, chatApi, expectStatus } from '../support/chat-api.js';
import { testSeal } from '../support/security.js';
import { startTestServer, testInterceptors, type TestServer } from '../support/servers.js';

const message = (id: string, overrides: Partial<ChatMessage> = {}): ChatMessage => ({
  id, content: `text of ${id}`, messageType: MessageType.MESSAGE_TYPE_UNSPECIFIED, dataOffset: 0, sendTime: undefined, senderId: '', attachments: [], ...overrides,
});
const at = (id: string, dataOffset: number, type = MessageType.MESSAGE_TYPE_VISITOR, sendTime?: Date) =>
  message(id, { dataOffset, messageType: type, sendTime });
const noChat = { visitor: undefined, beginTime: undefined, visitorDataOffset: 0, agentDataOffset: 0 };

// Hand-built requests: what the generated client cannot express (a Timestamp no Date holds,
// negative nanos, invalid UTF-8) but any other client can send.
type Timestamp = { seconds: bigint; nanos: number };
const timestamp = (w: BinaryWriter, t: Timestamp) => w.uint32(8).int64(t.seconds).uint32(16).int32(t.nanos);
/** A RebuildRequest for chat `chatId` with one visitor message (sealed with `seal`) and optional begin_time. */
function rebuildBytes(chatId: string, m: { id: string; offset: number; sendTime?: Timestamp; seal?: string }, beginTime?: Timestamp): Uint8Array {
  const w = new BinaryWriter().uint32(10).fork(); // RebuildRequest.chat
  w.uint32(10).string(chatId);
  w.uint32(34).fork().uint32(10).string(m.id).uint32(16).int64(m.offset).uint32(26).string(`text of ${m.id}`).uint32(32).int32(MessageType.MESSAGE_TYPE_VISITOR);
  if (m.sendTime) timestamp(w.uint32(42).fork(), m.sendTime).join();
  if (m.seal) w.uint32(58).fork().uint32(10).string(m.seal).join(); // ChatMessage.seal, a StringValue
  w.join();
  if (beginTime) timestamp(w.uint32(50).fork(), beginTime).join();
  return w.join().finish();
}
/** A length-delimited field with raw bytes (for strings that are not UTF-8). */
const rawField = (w: BinaryWriter, field: number, bytes: Uint8Array) => w.uint32((field << 3) | 2).bytes(bytes);
const latin = (text: string) => Uint8Array.from(Buffer.from(text, 'latin1'));

/** Raw calls with identity serializers, as a client with another schema (or a broken one) might make. */
function rawCalls(address: string) {
  const client = new Client(address, credentials.createInsecure(), { interceptors: testInterceptors() });
  const id = (b: Buffer) => b;
  return {
    close: () => client.close(),
    unary: (path: string, bytes: Uint8Array) =>
      new Promise<Buffer>((resolve, reject) =>
        client.makeUnaryRequest(path, id, id, Buffer.from(bytes), (e: ServiceError | null, r?: Buffer) => (e ? reject(e) : resolve(r!))),
      ),
    /** Collects a server stream (or a bidi stream given one request) until its status. */
    stream: (path: string, bytes: Uint8Array, bidi = false) =>
      new Promise<Buffer[]>((resolve, reject) => {
        const call = bidi
          ? client.makeBidiStreamRequest(path, id, id)
          : client.makeServerStreamRequest(path, id, id, Buffer.from(bytes));
        if (bidi) {
          (call as ReturnType<Client['makeBidiStreamRequest']>).write(Buffer.from(bytes));
          (call as ReturnType<Client['makeBidiStreamRequest']>).end();
        }
        const received: Buffer[] = [];
        call.on('data', (b: Buffer) => received.push(b));
        call.on('error', reject);
        call.on('end', () => resolve(received));
      }),
  };
}

describe('request validation at the edge', () => {
  let server: TestServer;
  let api: ChatApi;
  let raw: ReturnType<typeof rawCalls>;
  const read = (chatId = 'c') => api.getNewMessage({ chatId, visitorOffset: 0, agentOffset: 0 });
  const snapshot = async (chatId = 'c') => (await api.rebuild({ chat: { ...noChat, id: chatId, messages: [] } })).chat;

  beforeEach(async () => {
    server = await startTestServer({ maxMessagesPerChat: 100 });
    api = chatApi(server.client);
    raw = rawCalls(server.address);
    await api.rebuild({ chat: { ...noChat, id: 'c', messages: [at('v1', 1)] } });
  });
  afterEach(async () => {
    raw.close();
    await server.close();
  });

  describe('client-supplied times', () => {
    const refusedUpload = async (bytes: Uint8Array, details: RegExp) => {
      const before = await snapshot();
      const error = await expectStatus(raw.unary('/chat.v1.ChatService/Rebuild', bytes), status.INVALID_ARGUMENT);
      expect(error.details).to.match(details);
      expect(await snapshot()).to.deep.equal(before);
      expect((await read()).code).to.equal(ResultCode.RESULT_CODE_OK);
    };

    it('a send_time of 1e13 seconds is INVALID_ARGUMENT and the chat stays readable (it was stored, and every read was INTERNAL)', async () => {
      await refusedUpload(rebuildBytes('c', { id: 'v2', offset: 2, sendTime: { seconds: 10n ** 13n, nanos: 0 } }), /send_time/);
    });

    it('a send_time after 9999-12-31 is INVALID_ARGUMENT', async () => {
      await refusedUpload(rebuildBytes('c', { id: 'v2', offset: 2, sendTime: { seconds: 253_402_300_800n, nanos: 0 } }), /send_time.*9999-12-31/);
    });

    it('a send_time before 0001-01-01 is INVALID_ARGUMENT', async () => {
      await refusedUpload(rebuildBytes('c', { id: 'v2', offset: 2, sendTime: { seconds: -62_135_596_801n, nanos: 0 } }), /send_time.*0001-01-01/);
    });

    it('negative or oversized nanos are INVALID_ARGUMENT', async () => {
      await refusedUpload(rebuildBytes('c', { id: 'v2', offset: 2, sendTime: { seconds: 1_800_000_000n, nanos: -1 } }), /send_time.*nanos/);
      await refusedUpload(rebuildBytes('c', { id: 'v2', offset: 2, sendTime: { seconds: 1_800_000_000n, nanos: 1_000_000_000 } }), /send_time.*nanos/);
    });

    it('a begin_time outside years 1-9999 is INVALID_ARGUMENT', async () => {
      await refusedUpload(rebuildBytes('c', { id: 'v2', offset: 2 }, { seconds: 10n ** 13n, nanos: 0 }), /begin_time/);
    });

    it('the extremes of the range are accepted and answered', async () => {
      const first = new Date(-62_135_596_800_000);
      const seal = testSeal('c', { id: 'v2', type: MessageType.MESSAGE_TYPE_VISITOR as number, senderId: '', content: 'text of v2', sendTime: first });
      const bytes = rebuildBytes('c', { id: 'v2', offset: 2, sendTime: { seconds: -62_135_596_800n, nanos: 0 }, seal }, { seconds: -62_135_596_800n, nanos: 999_999_999 });
      await raw.unary('/chat.v1.ChatService/Rebuild', bytes);
      const v2 = (await read()).messages.find((m) => m.id === 'v2');
      expect(v2?.sendTime?.toISOString()).to.equal('0001-01-01T00:00:00.000Z');
    });

    it('a send_time more than --max-clock-skew-ms ahead of the server is INVALID_ARGUMENT; within it, accepted', async () => {
      const before = await snapshot();
      const ahead = new Date(Date.now() + 10 * 60_000);
      const error = await expectStatus(api.rebuild({ chat: { ...noChat, id: 'c', messages: [at('v2', 2, MessageType.MESSAGE_TYPE_VISITOR, ahead)] } }), status.INVALID_ARGUMENT);
      expect(error.details).to.match(/send_time .* in the future: more than 300000 ms \(--max-clock-skew-ms\) ahead/);
      expect(await snapshot()).to.deep.equal(before);

      const slightlyAhead = new Date(Date.now() + 60_000);
      await api.rebuild({ chat: { ...noChat, id: 'c', messages: [at('v2', 2, MessageType.MESSAGE_TYPE_VISITOR, slightlyAhead)] } });
      expect((await read()).messages.map((m) => m.id)).to.deep.equal(['v1', 'v2']);
    });
  });

  describe('offsets', () => {
    it('an upload claiming offset 2^53-1 is INVALID_ARGUMENT naming the limit, and later uploads lose nothing', async () => {
      const before = await snapshot();
      const error = await expectStatus(api.rebuild({ chat: { ...noChat, id: 'c', messages: [at('far', 2 ** 53 - 1)] } }), status.INVALID_ARGUMENT);
      expect(error.details).to.match(/data_offset 9007199254740991 .* 100 \(--max-messages-per-chat\)/);
      expect(await snapshot()).to.deep.equal(before);

      // What the far claim used to set up: two moved messages given one offset, one dropped.
      await api.rebuild({ chat: { ...noChat, id: 'c', messages: [at('x1', 1), at('x2', 2)] } });
      const after = await snapshot();
      expect(after!.messages.map((m) => `${m.dataOffset}:${m.id}`)).to.deep.equal(['1:v1', '2:x1', '3:x2']);
    });

    it('an upload claiming an offset just above maxMessagesPerChat is refused; at it, accepted', async () => {
      await expectStatus(api.rebuild({ chat: { ...noChat, id: 'c', messages: [at('v101', 101)] } }), status.INVALID_ARGUMENT);
      await api.rebuild({ chat: { ...noChat, id: 'c', messages: [at('v100', 100)] } });
    });

    it('caller offsets above maxMessagesPerChat are INVALID_ARGUMENT on reads, sends and watches', async () => {
      const before = await snapshot();
      const reading = await expectStatus(api.getNewMessage({ chatId: 'c', visitorOffset: 101, agentOffset: 0 }), status.INVALID_ARGUMENT);
      expect(reading.details).to.match(/visitor_offset .* 100/);
      await expectStatus(api.addVisitorMessage({ chatId: 'c', visitorOffset: 1, agentOffset: 2 ** 53 - 1, message: message('v2') }), status.INVALID_ARGUMENT);
      await expectStatus(api.addAgentMessage({ chatId: 'c', agentId: 'ag', visitorOffset: 1000, agentOffset: 0, message: message('a1') }), status.INVALID_ARGUMENT);
      const watch = new BinaryWriter().uint32(10).string('c').uint32(16).int64(101).finish();
      await expectStatus(raw.stream('/chat.v1.ChatService/WatchChat', watch), status.INVALID_ARGUMENT);
      expect(await snapshot()).to.deep.equal(before);
    });
  });

  describe('an honest resend (on an insecure server, where a visitor message may carry no sender id)', () => {
    // A secure server takes every sender id from the token, so none is ever empty there.
    beforeEach(async () => {
      raw.close();
      await server.close();
      server = await startTestServer({ maxMessagesPerChat: 100, insecure: true });
      api = chatApi(server.client);
      raw = rawCalls(server.address);
      await api.rebuild({ chat: { ...noChat, id: 'c', messages: [at('v1', 1)] } });
    });

    it('the unchanged resend of a visitor message after a Rebuild named the visitor returns the stored message', async () => {
      const sent = await api.addVisitorMessage({ chatId: 'c', visitorOffset: 1, agentOffset: 0, message: message('v2') });
      expect(sent.message!.senderId).to.equal('');
      // Another device of the visitor rebuilds, naming the visitor; the first device's acknowledgement was lost.
      await api.rebuild({ chat: { ...noChat, id: 'c', visitor: { id: 'visitor-42', name: 'Ada', email: '' }, messages: [] } });
      const before = await snapshot();
      const resent = await api.addVisitorMessage({ chatId: 'c', visitorOffset: 1, agentOffset: 0, message: message('v2') });
      expect(resent.message).to.deep.equal(sent.message);
      expect(await snapshot()).to.deep.equal(before);
      // A message first stored after the visitor is named still takes the visitor's id.
      const later = await api.addVisitorMessage({ chatId: 'c', visitorOffset: 2, agentOffset: 0, message: message('v3') });
      expect(later.message!.senderId).to.equal('visitor-42');
    });

    it('a copy holding a visitor message with or without the visitor\'s id uploads into a server that stored it the other way', async () => {
      // Two servers stored one send differently: one knew the visitor when the message arrived
      // (a resend after failover), the other did not. Each device's copy holds what its server said.
      const named = { id: 'visitor-42', name: 'Ada', email: '' };
      await api.addVisitorMessage({ chatId: 'c', visitorOffset: 1, agentOffset: 0, message: message('v2') });
      await api.rebuild({ chat: { ...noChat, id: 'knows', visitor: named, messages: [at('v1', 1)] } });
      await api.addVisitorMessage({ chatId: 'knows', visitorOffset: 1, agentOffset: 0, message: message('v2') });
      const stored = { c: await snapshot('c'), knows: await snapshot('knows') };
      expect(stored.c!.messages[1]!.senderId).to.equal('');
      expect(stored.knows!.messages[1]!.senderId).to.equal('visitor-42');

      const copy = (chatId: string, senderId: string) =>
        api.rebuild({ chat: { ...noChat, id: chatId, visitor: named, messages: [at('v1', 1), { ...at('v2', 2), senderId }] } });
      expect((await copy('c', 'visitor-42')).code).to.equal(ResultCode.RESULT_CODE_OK);
      expect((await copy('knows', '')).code).to.equal(ResultCode.RESULT_CODE_OK);
      expect((await snapshot('c'))!.messages).to.deep.equal(stored.c!.messages);
      expect(await snapshot('knows')).to.deep.equal(stored.knows);

      const forged = await expectStatus(copy('knows', 'mallory'), status.INVALID_ARGUMENT);
      expect(forged.details).to.match(/differs from the message the server holds/);
    });

    it('a resend naming another sender than the stored one is still INVALID_ARGUMENT', async () => {
      await api.addVisitorMessage({ chatId: 'c', visitorOffset: 1, agentOffset: 0, message: message('v2', { senderId: 'visitor-42' }) });
      const before = await snapshot();
      await api.addVisitorMessage({ chatId: 'c', visitorOffset: 1, agentOffset: 0, message: message('v2', { senderId: 'visitor-42' }) });
      await api.addVisitorMessage({ chatId: 'c', visitorOffset: 1, agentOffset: 0, message: message('v2') });
      const error = await expectStatus(api.addVisitorMessage({ chatId: 'c', visitorOffset: 1, agentOffset: 0, message: message('v2', { senderId: 'mallory' }) }), status.INVALID_ARGUMENT);
      expect(error.details).to.match(/already names a different message/);
      expect(await snapshot()).to.deep.equal(before);
    });
  });

  describe('strict UTF-8', () => {
    const getNew = (chatId: Uint8Array) => rawField(new BinaryWriter(), 1, chatId).finish();

    it('chat ids "c\\xff" and "c\\xfe" are INVALID_ARGUMENT (both used to name the chat "c\\ufffd")', async () => {
      for (const chatId of [latin('c\xff'), latin('c\xfe')]) {
        const error = await expectStatus(raw.unary('/chat.v1.ChatService/GetNewMessage', getNew(chatId)), status.INVALID_ARGUMENT);
        expect(error.details).to.match(/could not be decoded: .*utf-8/i);
      }
      expect(server.server.store.size).to.equal(1);
    });

    it('invalid UTF-8 in a nested string (message content) is INVALID_ARGUMENT and changes nothing', async () => {
      const before = await snapshot();
      const w = new BinaryWriter().uint32(10).string('c').uint32(16).int64(1);
      rawField(w.uint32(34).fork().uint32(10).string('v2'), 3, latin('caf\xe9')).join();
      await expectStatus(raw.unary('/chat.v1.ChatService/AddVisitorMessage', w.finish()), status.INVALID_ARGUMENT);
      await expectStatus(raw.stream('/chat.v1.ChatService/WatchChat', getNew(latin('c\xff'))), status.INVALID_ARGUMENT);
      expect(await snapshot()).to.deep.equal(before);
    });

    it('invalid UTF-8 in a health check is INVALID_ARGUMENT', async () => {
      await expectStatus(raw.unary('/grpc.health.v1.Health/Check', getNew(latin('chat\xff'))), status.INVALID_ARGUMENT);
    });

    it('valid multi-byte UTF-8 still works', async () => {
      const read = await raw.unary('/chat.v1.ChatService/GetNewMessage', getNew(Uint8Array.from(Buffer.from('c-é-😀'))));
      expect(read.length).to.be.greaterThan(0);
    });
  });

  describe('undecodable requests on every service', () => {
    const garbage = Uint8Array.from([0xff, 0xff, 0xff, 0xff]);

    it('grpc.health.v1.Health/Check: INVALID_ARGUMENT', async () => {
      await expectStatus(raw.unary('/grpc.health.v1.Health/Check', garbage), status.INVALID_ARGUMENT);
    });

    it('grpc.health.v1.Health/Watch: INVALID_ARGUMENT', async () => {
      await expectStatus(raw.stream('/grpc.health.v1.Health/Watch', garbage), status.INVALID_ARGUMENT);
    });

    for (const version of ['v1', 'v1alpha']) {
      it(`grpc.reflection.${version}.ServerReflection/ServerReflectionInfo: INVALID_ARGUMENT`, async () => {
        await expectStatus(raw.stream(`/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`, garbage, true), status.INVALID_ARGUMENT);
      });
    }

    it('chat.v1.ChatService/WatchChat: INVALID_ARGUMENT', async () => {
      await expectStatus(raw.stream('/chat.v1.ChatService/WatchChat', garbage), status.INVALID_ARGUMENT);
    });

    it('the services still answer well-formed requests', async () => {
      const check = rawField(new BinaryWriter(), 1, Uint8Array.from(Buffer.from('chat.v1.ChatService'))).finish();
      expect([...(await raw.unary('/grpc.health.v1.Health/Check', check))]).to.deep.equal([8, 1]); // SERVING
      const list = rawField(new BinaryWriter(), 7, Uint8Array.from(Buffer.from('*'))).finish();
      const answers = await raw.stream('/grpc.reflection.v1.ServerReflection/ServerReflectionInfo', list, true);
      expect(answers).to.have.length(1);
      expect(answers[0]!.toString('latin1')).to.include('chat.v1.ChatService');
    });
  });
});
