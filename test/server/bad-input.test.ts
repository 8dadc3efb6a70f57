import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { Client, credentials, type ServiceError, status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { type ChatMessage, MessageType, ResultCode } from '../../generated/chat/v1/chat.js';
import { type ChatApi, chatApi, expectStatus } from '../support/chat-api.js';
import { startTestServer, testInterceptors, type TestServer } from '../support/servers.js';

const message = (id: string, overrides: Partial<ChatMessage> = {}): ChatMessage => ({
  id, content: `text of ${id}`, messageType: MessageType.MESSAGE_TYPE_UNSPECIFIED, dataOffset: 0, sendTime: undefined, senderId: '', attachments: [], ...overrides,
});
const at = (id: string, dataOffset: number, type = MessageType.MESSAGE_TYPE_VISITOR) => message(id, { dataOffset, messageType: type });

describe('bad input gets a clear status and changes nothing', () => {
  let server: TestServer;
  let api: ChatApi;
  const everything = async () => api.getNewMessage({ chatId: 'c', visitorOffset: 0, agentOffset: 0 });

  beforeEach(async () => {
    server = await startTestServer({ maxContentBytes: 32, maxChats: 2 });
    api = chatApi(server.client);
    await api.rebuild({ chat: { id: 'c', visitorDataOffset: 1, agentDataOffset: 1, messages: [at('v1', 1), at('a1', 1, MessageType.MESSAGE_TYPE_AGENT)], visitor: undefined, beginTime: undefined } });
  });
  afterEach(() => server.close());

  const refusals: [string, status, RegExp, () => Promise<unknown>][] = [
    ['a send without chat_id', status.INVALID_ARGUMENT, /chat_id is required/, () => api.addVisitorMessage({ chatId: '', visitorOffset: 1, agentOffset: 1, message: message('m') })],
    ['a send with a negative offset', status.INVALID_ARGUMENT, /agent_offset must be a whole number >= 0/, () => api.addVisitorMessage({ chatId: 'c', visitorOffset: 1, agentOffset: -2, message: message('m') })],
    ['a send without a message', status.INVALID_ARGUMENT, /message is required/, () => api.addVisitorMessage({ chatId: 'c', visitorOffset: 1, agentOffset: 1, message: undefined })],
    ['a message without an id', status.INVALID_ARGUMENT, /message.id is required/, () => api.addVisitorMessage({ chatId: 'c', visitorOffset: 1, agentOffset: 1, message: message('') })],
    ['content above the limit', status.INVALID_ARGUMENT, /message.content is 33 bytes; the limit is 32/, () => api.addVisitorMessage({ chatId: 'c', visitorOffset: 1, agentOffset: 1, message: message('m', { content: 'x'.repeat(33) }) })],
    ['an agent message through the visitor RPC', status.INVALID_ARGUMENT, /only send MESSAGE_TYPE_VISITOR/, () => api.addVisitorMessage({ chatId: 'c', visitorOffset: 1, agentOffset: 1, message: message('m', { messageType: MessageType.MESSAGE_TYPE_AGENT }) })],
    ['an unknown message type', status.INVALID_ARGUMENT, /got 9/, () => api.addAgentMessage({ chatId: 'c', agentId: 'ag', visitorOffset: 1, agentOffset: 1, message: message('m', { messageType: 9 as MessageType }) })],
    ['a visitor message through the agent RPC', status.INVALID_ARGUMENT, /MESSAGE_TYPE_AGENT, _BOT or _SYSTEM/, () => api.addAgentMessage({ chatId: 'c', agentId: 'ag', visitorOffset: 1, agentOffset: 1, message: message('m', { messageType: MessageType.MESSAGE_TYPE_VISITOR }) })],
    ['an agent posting as someone else', status.INVALID_ARGUMENT, /differs from agent_id/, () => api.addAgentMessage({ chatId: 'c', agentId: 'ag', visitorOffset: 1, agentOffset: 1, message: message('m', { senderId: 'boss' }) })],
    ['an id reused for other content', status.INVALID_ARGUMENT, /already names a different message/, () => api.addVisitorMessage({ chatId: 'c', visitorOffset: 1, agentOffset: 1, message: message('v1', { content: 'changed' }) })],
    ['a read without chat_id', status.INVALID_ARGUMENT, /chat_id is required/, () => api.getNewMessage({ chatId: '', visitorOffset: 0, agentOffset: 0 })],
    ['a read with a negative offset', status.INVALID_ARGUMENT, /visitor_offset must be/, () => api.getNewMessage({ chatId: 'c', visitorOffset: -1, agentOffset: 0 })],
    ['a rebuild without a chat', status.INVALID_ARGUMENT, /chat is required/, () => api.rebuild({ chat: undefined })],
    ['a rebuild that alters a message', status.INVALID_ARGUMENT, /differs from the message the server holds/, () => api.rebuild({ chat: { id: 'c', visitorDataOffset: 2, agentDataOffset: 1, messages: [at('v2', 2), { ...at('v1', 1), content: 'forged' }], visitor: undefined, beginTime: undefined } })],
    ['a rebuild with offset 0', status.INVALID_ARGUMENT, /data_offset must be 1 or more/, () => api.rebuild({ chat: { id: 'c', visitorDataOffset: 0, agentDataOffset: 0, messages: [at('v2', 0)], visitor: undefined, beginTime: undefined } })],
    ['a rebuild without types', status.INVALID_ARGUMENT, /message_type is required/, () => api.rebuild({ chat: { id: 'c', visitorDataOffset: 0, agentDataOffset: 0, messages: [message('v2', { dataOffset: 2 })], visitor: undefined, beginTime: undefined } })],
    ['a new chat beyond the server limit', status.RESOURCE_EXHAUSTED, /holds 2 chats, its limit/, async () => {
      await api.getNewMessage({ chatId: 'second', visitorOffset: 0, agentOffset: 0 });
      return api.getNewMessage({ chatId: 'third', visitorOffset: 0, agentOffset: 0 });
    }],
  ];

  for (const [what, code, details, act] of refusals) {
    it(`${what}: ${status[code]}`, async () => {
      const before = await everything();
      const error = await expectStatus(act(), code);
      expect(error.details).to.match(details);
      expect(await everything()).to.deep.equal(before);
    });
  }

  it('an agent send without agent_id on an insecure server, which has no token to take it from: INVALID_ARGUMENT', async () => {
    const insecure = await startTestServer({ insecure: true });
    try {
      const error = await expectStatus(chatApi(insecure.client).addAgentMessage({ chatId: 'c', agentId: '', message: message('m') }), status.INVALID_ARGUMENT);
      expect(error.details).to.match(/agent_id is required/);
    } finally {
      await insecure.close();
    }
  });

  /** Sends raw bytes, as a client with another schema (or a broken one) might. */
  const raw = (method: string, bytes: Uint8Array) => {
    const client = new Client(server.address, credentials.createInsecure(), { interceptors: testInterceptors() });
    return new Promise<Buffer>((resolve, reject) =>
      client.makeUnaryRequest(`/chat.v1.ChatService/${method}`, (b: Buffer) => b, (b: Buffer) => b, Buffer.from(bytes), (e: ServiceError | null, r?: Buffer) => {
        client.close();
        return e ? reject(e) : resolve(r!);
      }),
    );
  };

  it('an offset beyond 2^53 is INVALID_ARGUMENT, not INTERNAL', async () => {
    const request = new BinaryWriter().uint32(10).string('c').uint32(16).int64(2n ** 60n).finish();
    const error = await expectStatus(raw('GetNewMessage', request), status.INVALID_ARGUMENT);
    expect(error.details).to.match(/could not be decoded: .*MAX_SAFE_INTEGER/);
  });

  it('bytes that are not protobuf are INVALID_ARGUMENT, and the server keeps serving', async () => {
    await expectStatus(raw('Rebuild', Uint8Array.from([0xff, 0xff, 0xff, 0xff])), status.INVALID_ARGUMENT);
    const read = await everything();
    expect(read.code).to.equal(ResultCode.RESULT_CODE_OK);
    expect(read.messages.map((m) => m.id)).to.deep.equal(['v1', 'a1']);
  });
});
