import { credentials, Server, ServerCredentials, status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { ChatServiceClient, ChatServiceService, MessageType } from '../../generated/chat/v1/chat.js';
import { INSECURE } from '../../src/domain/access.js';
import { logCalls } from '../../src/server/call-log.js';
import { interceptCalls } from '../../src/server/call-taps.js';
import { DEFAULT_CONFIG } from '../../src/server/config.js';
import { type ChatServer, startServer } from '../../src/server/server.js';
import { unary } from '../../src/server/unary.js';
import { ResponseBudget } from '../../src/server/response-budget.js';
import { chatApi, expectStatus } from '../support/chat-api.js';
import { memoryLogger } from '../support/memory-log.js';
import { RawChatClient } from '../support/raw-client.js';

const CALL_LINES = ['call refused', 'call failed'];

describe('one log line per refused or failed call', () => {
  let server: ChatServer;
  let client: ChatServiceClient;
  let lines: Record<string, unknown>[];
  let address: string;
  const callLines = () => lines.filter((l) => CALL_LINES.includes(l.msg as string));

  beforeEach(async () => {
    const log = memoryLogger('debug');
    lines = log.lines;
    server = await startServer({ ...DEFAULT_CONFIG, host: '127.0.0.1', port: 0, insecure: true, maxContentBytes: 1000, maxRequestBytes: 5000 }, log.logger);
    address = `127.0.0.1:${server.port}`;
    client = new ChatServiceClient(address, credentials.createInsecure());
  });
  afterEach(async () => {
    client.close();
    await server.stop(0);
  });

  it('a refused call: at debug, with its method, chat id, code, reason and duration', async () => {
    const api = chatApi(client);
    await api.getNewMessage({ chatId: 'c', visitorOffset: 0, agentOffset: 0 });
    expect(callLines(), 'an answered call').to.deep.equal([]);

    await expectStatus(api.addVisitorMessage({ chatId: 'c', message: { id: 'm', content: '', messageType: MessageType.MESSAGE_TYPE_VISITOR } }), status.INVALID_ARGUMENT);
    expect(callLines()).to.have.length(1);
    const [line] = callLines();
    expect(line).to.include({ level: 20, msg: 'call refused', method: '/chat.v1.ChatService/AddVisitorMessage', chatId: 'c', code: 'INVALID_ARGUMENT' });
    expect(line!.details).to.match(/content/);
    expect(line!.ms).to.be.a('number').and.at.least(0);
    expect(line!.peer).to.match(/^127\.0\.0\.1:\d+$/);
  });

  it("a Rebuild refused: the chat id from the upload's chat", async () => {
    const chat = { id: 'r', messages: [{ id: 'x', content: 'x', dataOffset: 1 }] }; // no message type
    await expectStatus(chatApi(client).rebuild({ chat }), status.INVALID_ARGUMENT);
    expect(callLines()).to.have.length(1);
    expect(callLines()[0]).to.include({ method: '/chat.v1.ChatService/Rebuild', chatId: 'r', code: 'INVALID_ARGUMENT' });
  });

  it('a request refused before any handler runs: undecodable, or larger than --max-request-bytes', async () => {
    const raw = new RawChatClient(address);
    try {
      const undecodable = await raw.call('GetNewMessage', Uint8Array.of(0x0a, 0x05, 0x61)); // a string field cut short
      expect(undecodable.code).to.equal(status.INVALID_ARGUMENT);
      const tooLarge = await raw.call('AddVisitorMessage', new Uint8Array(6000));
      expect(tooLarge.code).to.equal(status.RESOURCE_EXHAUSTED);
    } finally {
      raw.close();
    }
    expect(callLines()).to.have.length(2);
    const [first, second] = callLines();
    expect(first).to.include({ level: 20, method: '/chat.v1.ChatService/GetNewMessage', code: 'INVALID_ARGUMENT' });
    expect(first).not.to.have.property('chatId');
    expect(first!.details).to.match(/could not be decoded/);
    expect(second).to.include({ level: 20, method: '/chat.v1.ChatService/AddVisitorMessage', code: 'RESOURCE_EXHAUSTED' });
  });

  it('a chat id longer than --max-id-bytes is cut to it', async () => {
    const chatId = 'z'.repeat(DEFAULT_CONFIG.maxIdBytes + 10);
    await expectStatus(chatApi(client).getNewMessage({ chatId, visitorOffset: 0, agentOffset: 0 }), status.INVALID_ARGUMENT);
    expect(callLines()[0]!.chatId).to.equal(`${'z'.repeat(DEFAULT_CONFIG.maxIdBytes)}…`);
  });
});

describe('one log line per internal error', () => {
  it('at error, with its method, chat id, code and duration', async () => {
    const { logger, lines } = memoryLogger('debug');
    const server = new Server({ interceptors: [interceptCalls({ taps: [logCalls(logger, DEFAULT_CONFIG)] })] });
    const context = { logger, responses: new ResponseBudget(DEFAULT_CONFIG), unaryDeadlineMs: 0, gate: async () => INSECURE };
    const broken = unary('GetNewMessage', () => { throw new Error('a bug'); }, { encode: ChatServiceService.getNewMessage.responseSerialize, read: false, chatId: () => 'c' }, context);
    server.addService(ChatServiceService, { getNewMessage: broken } as never);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
    );
    const client = new ChatServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
    try {
      await expectStatus(chatApi(client).getNewMessage({ chatId: 'b', visitorOffset: 0, agentOffset: 0 }), status.INTERNAL);
    } finally {
      client.close();
      server.forceShutdown();
    }
    expect(lines.map((l) => l.msg)).to.deep.equal(['unexpected error', 'call failed']);
    expect(lines[1]).to.include({ level: 50, method: '/chat.v1.ChatService/GetNewMessage', chatId: 'b', code: 'INTERNAL' });
    expect(lines[1]!.ms).to.be.a('number');
  });
});
