import { Metadata, status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { ResultCode } from '../../generated/chat/v1/chat.js';
import { ChatSession } from '../../src/client/index.js';
import { bearer, chatApi, expectStatus } from '../support/chat-api.js';
import { sessionToken, testToken } from '../support/security.js';
import { startTestServer, type TestServer, testClient } from '../support/servers.js';
import { WatchStream } from '../support/watch-stream.js';

/** A service token and, when given, `x-chat-id` values, as one call's metadata. */
async function metadata(...chatIds: string[]): Promise<Metadata> {
  const md = bearer(await testToken({ sub: 'svc', role: 'service' }));
  for (const id of chatIds) md.add('x-chat-id', id);
  return md;
}

describe('--require-chat-id-header: calls routed by the chat they name', () => {
  let server: TestServer;
  beforeEach(async () => {
    server = await startTestServer({ requireChatIdHeader: true });
  });
  afterEach(() => server.close());

  /** Every call about chat `c`, each with `md`. */
  const everyCall = (md: Metadata) => {
    const api = chatApi(server.client, md);
    return {
      GetNewMessage: () => api.getNewMessage({ chatId: 'c' }),
      AddAgentMessage: () => api.addAgentMessage({ chatId: 'c', message: { id: 'n1', content: 'notice', messageType: 4 } }),
      Rebuild: () => api.rebuild({ chat: { id: 'c' } }),
      WatchChat: () => new WatchStream(server.client, { chatId: 'c' }, md).ended.then((end) => Promise.reject(Object.assign(new Error(end.details), end))),
    };
  };

  it('refuses a call without x-chat-id with FAILED_PRECONDITION saying what to send, on every chat RPC, and changes nothing', async () => {
    for (const [rpc, call] of Object.entries(everyCall(await metadata()))) {
      const error = await expectStatus(call(), status.FAILED_PRECONDITION);
      expect(error.details, rpc).to.equal(
        'the call names chat "c" but carries no x-chat-id metadata; send "x-chat-id: c" with every call about the chat, so the load balancer routes it to the chat\'s one server',
      );
    }
    expect(server.server.store.size, 'chats created by refused calls').to.equal(0);
  });

  it('refuses an x-chat-id naming another chat, or given twice', async () => {
    const other = await expectStatus(chatApi(server.client, await metadata('d')).getNewMessage({ chatId: 'c' }), status.FAILED_PRECONDITION);
    expect(other.details).to.match(/^the call names chat "c" but its x-chat-id metadata says "d"; send "x-chat-id: c"/);
    const twice = await expectStatus(chatApi(server.client, await metadata('c', 'c')).getNewMessage({ chatId: 'c' }), status.FAILED_PRECONDITION);
    expect(twice.details).to.match(/metadata says "c, c"; send/); // HTTP/2 carries repeated values joined
    expect(server.server.store.size).to.equal(0);
  });

  it('serves a call whose x-chat-id is its chat id, and leaves a call naming no chat to the usual INVALID_ARGUMENT', async () => {
    const read = await chatApi(server.client, await metadata('c')).getNewMessage({ chatId: 'c' });
    expect(read.code).to.equal(ResultCode.RESULT_CODE_REBUILD_REQUIRED);
    const unnamed = await expectStatus(chatApi(server.client, await metadata()).getNewMessage({ chatId: '' }), status.INVALID_ARGUMENT);
    expect(unnamed.details).to.match(/chat_id is required/);
  });

  it('checks the token first: a call without one is UNAUTHENTICATED whatever its x-chat-id', async () => {
    const anonymous = testClient(server.address, { testTokens: false });
    try {
      await expectStatus(chatApi(anonymous, new Metadata()).getNewMessage({ chatId: 'c' }), status.UNAUTHENTICATED);
    } finally {
      anonymous.close();
    }
  });

  it('lets an SDK session talk: it sends x-chat-id on every call and watch', async () => {
    const role = { kind: 'visitor', visitorId: 'v1' } as const;
    const session = await ChatSession.open({ chatId: 'sdk', role, servers: [server.address], token: sessionToken('sdk', role) });
    try {
      session.start();
      const sent = await session.send('hello');
      expect(sent.dataOffset).to.equal(1);
      await session.sync();
    } finally {
      await session.close();
    }
  });
});

describe('without --require-chat-id-header (the default)', () => {
  it('serves a call without x-chat-id', async () => {
    const server = await startTestServer();
    try {
      const read = await chatApi(server.client, await metadata()).getNewMessage({ chatId: 'c' });
      expect(read.code).to.equal(ResultCode.RESULT_CODE_REBUILD_REQUIRED);
    } finally {
      await server.close();
    }
  });
});
