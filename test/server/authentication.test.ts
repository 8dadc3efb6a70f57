import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, Metadata, status, type StatusObject } from '@grpc/grpc-js';
import { expect } from 'chai';
import { exportJWK, generateKeyPair, type JWTPayload, SignJWT } from 'jose';
import { pino } from 'pino';
import { type ChatServiceClient, MessageType, ResultCode, WatchChatRequest, type WatchChatResponse } from '../../generated/chat/v1/chat.js';
import { type Config, ConfigError, DEFAULT_CONFIG } from '../../src/server/config.js';
import { HealthClient } from '../../generated/health/v1/health.js';
import { startServer } from '../../src/server/server.js';
import { bearer, type ChatApi, chatApi, expectStatus } from '../support/chat-api.js';
import { startTestServer, type TestServer } from '../support/servers.js';

const SECRET = randomBytes(32).toString('hex');
const key = new TextEncoder().encode(SECRET);

/** A temporary file holding `text` (the test secret by default), and its removal. */
function keyFile(text = `${SECRET}\n`): { readonly path: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'chat-auth-'));
  const path = join(dir, 'key');
  writeFileSync(path, text);
  return { path, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A token signed with the server's secret (or `signWith`), expiring in five minutes unless told (null: no exp). */
function token(claims: JWTPayload, { exp = '5m', signWith = key }: { exp?: string | number | null; signWith?: Uint8Array } = {}): Promise<string> {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt();
  if (exp !== null) jwt.setExpirationTime(exp);
  return jwt.sign(signWith);
}

const visitorOf = (chatId: string, sub = 'v1') => token({ sub, role: 'visitor', chat_id: chatId });
const agentToken = (sub = 'a1') => token({ sub, role: 'agent' });
const serviceToken = (sub = 'bot-1') => token({ sub, role: 'service' });

const visitorMessage = (id: string) => ({ id, content: `hello ${id}` });

/** Opens a watch with `metadata`; resolves with its first response, or with the status it ended with first. */
function firstOfWatch(client: ChatServiceClient, chatId: string, metadata: Metadata): Promise<WatchChatResponse | StatusObject> {
  const call = client.watchChat(WatchChatRequest.fromPartial({ chatId }), metadata);
  return new Promise((resolve) => {
    call.on('data', (response: WatchChatResponse) => {
      call.cancel();
      resolve(response);
    });
    call.on('error', () => {});
    call.on('status', resolve);
  });
}

describe('bearer tokens (HS256 secret file)', () => {
  const secret = keyFile();
  let server: TestServer;
  let as: (token: string) => ChatApi;

  before(async () => {
    server = await startTestServer({ authHs256SecretFile: secret.path });
    as = (jwt) => chatApi(server.client, bearer(jwt));
  });
  after(async () => {
    await server.close();
    secret.remove();
  });

  /** The chat as an agent reads it from 0/0. */
  const contents = async (chatId: string) => (await as(await agentToken()).getNewMessage({ chatId })).messages;

  /** Creates chat `chatId` with one visitor message from visitor v1. */
  async function chatWithOneMessage(chatId: string) {
    const visitor = as(await visitorOf(chatId));
    await visitor.rebuild({ chat: { id: chatId, visitor: { id: 'v1', name: 'Vi' } } });
    const sent = await visitor.addVisitorMessage({ chatId, message: visitorMessage(`${chatId}-m1`) });
    expect(sent.code).to.equal(ResultCode.RESULT_CODE_OK);
    return sent;
  }

  describe('UNAUTHENTICATED, saying what is wrong with the token', () => {
    it('no token', async () => {
      const error = await expectStatus(chatApi(server.client).getNewMessage({ chatId: 'c' }), status.UNAUTHENTICATED);
      expect(error.details).to.equal('no token: send the metadata "authorization: Bearer <token>"');
    });

    it('not a bearer token', async () => {
      const metadata = bearer('x');
      metadata.set('authorization', 'Basic dXNlcjpwYXNz');
      const error = await expectStatus(chatApi(server.client, metadata).getNewMessage({ chatId: 'c' }), status.UNAUTHENTICATED);
      expect(error.details).to.equal('the authorization metadata must read "Bearer <token>"');
    });

    it('a malformed token', async () => {
      const error = await expectStatus(as('not.a-jwt').getNewMessage({ chatId: 'c' }), status.UNAUTHENTICATED);
      expect(error.details).to.match(/^the token is malformed: /);
    });

    it('a bad signature', async () => {
      const forged = await token({ sub: 'a1', role: 'agent' }, { signWith: randomBytes(32) });
      const error = await expectStatus(as(forged).getNewMessage({ chatId: 'c' }), status.UNAUTHENTICATED);
      expect(error.details).to.equal("the token's signature does not verify with the server's keys");
    });

    it('an expired token (beyond the clock tolerance)', async () => {
      const exp = Math.floor(Date.now() / 1000) - 120;
      const error = await expectStatus(as(await token({ sub: 'a1', role: 'agent' }, { exp })).getNewMessage({ chatId: 'c' }), status.UNAUTHENTICATED);
      expect(error.details).to.equal(`the token expired at ${new Date(exp * 1000).toISOString()}; get a fresh one`);
    });

    it('a token without exp', async () => {
      const error = await expectStatus(as(await token({ sub: 'a1', role: 'agent' }, { exp: null })).getNewMessage({ chatId: 'c' }), status.UNAUTHENTICATED);
      expect(error.details).to.contain('"exp" claim');
    });

    it('a role the server does not know, and a visitor token without its chat', async () => {
      const admin = await expectStatus(as(await token({ sub: 'x', role: 'admin' })).getNewMessage({ chatId: 'c' }), status.UNAUTHENTICATED);
      expect(admin.details).to.equal('the token\'s role must be "visitor", "agent" or "service"; got "admin"');
      const chatless = await expectStatus(as(await token({ sub: 'v', role: 'visitor' })).getNewMessage({ chatId: 'c' }), status.UNAUTHENTICATED);
      expect(chatless.details).to.equal('a visitor token must name its chat (chat_id)');
    });

    it('a watch without a token', async () => {
      const ended = (await firstOfWatch(server.client, 'c', new Metadata())) as StatusObject;
      expect(ended).to.include({ code: status.UNAUTHENTICATED });
    });
  });

  describe('PERMISSION_DENIED for what the token does not grant, the chat unchanged', () => {
    it('a visitor on another chat: reads, watches, sends', async () => {
      await chatWithOneMessage('pd-other');
      const stranger = as(await visitorOf('mine', 'v9'));
      const read = await expectStatus(stranger.getNewMessage({ chatId: 'pd-other' }), status.PERMISSION_DENIED);
      expect(read.details).to.equal('a visitor token for chat "mine" cannot touch chat "pd-other"');
      await expectStatus(stranger.addVisitorMessage({ chatId: 'pd-other', message: visitorMessage('x') }), status.PERMISSION_DENIED);
      const watched = (await firstOfWatch(server.client, 'pd-other', bearer(await visitorOf('mine', 'v9')))) as StatusObject;
      expect(watched).to.include({ code: status.PERMISSION_DENIED });
      expect((await contents('pd-other')).map((m) => m.id)).to.deep.equal(['pd-other-m1']);
    });

    it('the wrong role for the message type, and an agent_id that is not the subject', async () => {
      await chatWithOneMessage('pd-roles');
      const agent = as(await agentToken());
      const service = as(await serviceToken());
      const asVisitor = await expectStatus(agent.addVisitorMessage({ chatId: 'pd-roles', message: visitorMessage('x1') }), status.PERMISSION_DENIED);
      expect(asVisitor.details).to.equal('an agent token cannot send visitor messages; only the chat\'s visitor can');
      const bot = await expectStatus(
        agent.addAgentMessage({ chatId: 'pd-roles', message: { id: 'x2', content: 'beep', messageType: MessageType.MESSAGE_TYPE_BOT } }),
        status.PERMISSION_DENIED,
      );
      expect(bot.details).to.contain('an agent token posts MESSAGE_TYPE_AGENT messages; got MESSAGE_TYPE_BOT');
      const serviceAsAgent = await expectStatus(
        service.addAgentMessage({ chatId: 'pd-roles', message: { id: 'x3', content: 'hi', messageType: MessageType.MESSAGE_TYPE_AGENT } }),
        status.PERMISSION_DENIED,
      );
      expect(serviceAsAgent.details).to.equal('a service token posts MESSAGE_TYPE_BOT or _SYSTEM messages; got MESSAGE_TYPE_AGENT');
      const impostor = await expectStatus(agent.addAgentMessage({ chatId: 'pd-roles', agentId: 'a2', message: { id: 'x4', content: 'hi' } }), status.PERMISSION_DENIED);
      expect(impostor.details).to.equal('agent_id "a2" is not the token\'s subject "a1"; leave it empty or send your own id');
      const visitorAsSomeoneElse = await expectStatus(
        as(await visitorOf('pd-roles')).addVisitorMessage({ chatId: 'pd-roles', message: { ...visitorMessage('x5'), senderId: 'admin' } }),
        status.PERMISSION_DENIED,
      );
      expect(visitorAsSomeoneElse.details).to.equal('message.sender_id "admin" is not the token\'s subject "v1"; leave it empty');
      expect((await contents('pd-roles')).map((m) => m.id)).to.deep.equal(['pd-roles-m1']);
    });
  });

  describe('the reported attacks, refused with the chat unchanged', () => {
    it('a Rebuild into someone else\'s chat with a visitor token of another chat', async () => {
      await chatWithOneMessage('victim');
      const before = await contents('victim');
      const attacker = as(await visitorOf('attacker-chat', 'mallory'));
      const error = await expectStatus(
        attacker.rebuild({
          chat: {
            id: 'victim',
            visitor: { id: 'mallory' },
            messages: [{ id: 'evil', dataOffset: 2, content: 'click here', messageType: MessageType.MESSAGE_TYPE_AGENT, senderId: 'a1' }],
          },
        }),
        status.PERMISSION_DENIED,
      );
      expect(error.details).to.equal('a visitor token for chat "attacker-chat" cannot touch chat "victim"');
      expect(await contents('victim')).to.deep.equal(before);
    });

    it('an upload naming visitor "admin": refused from a visitor, the visitor field ignored from an agent', async () => {
      const agentUpload = await as(await agentToken()).rebuild({ chat: { id: 'fresh', visitor: { id: 'admin', name: 'Administrator' } } });
      expect(agentUpload.chat?.visitor).to.equal(undefined);
      const visitor = as(await visitorOf('fresh', 'v1'));
      const error = await expectStatus(visitor.rebuild({ chat: { id: 'fresh', visitor: { id: 'admin' } } }), status.PERMISSION_DENIED);
      expect(error.details).to.contain('the upload names visitor "admin", but the token\'s subject is visitor "v1"');
      const own = await visitor.rebuild({ chat: { id: 'fresh', visitor: { id: '', name: 'Vi' } } });
      expect(own.chat?.visitor).to.deep.include({ id: 'v1', name: 'Vi' });
      const service = await as(await serviceToken()).rebuild({ chat: { id: 'crm-made', visitor: { id: 'v7', name: 'Seven' } } });
      expect(service.chat?.visitor).to.deep.include({ id: 'v7' });
    });

    it('a forged AGENT message via AddAgentMessage with a visitor token', async () => {
      await chatWithOneMessage('forge');
      const before = await contents('forge');
      const error = await expectStatus(
        as(await visitorOf('forge')).addAgentMessage({ chatId: 'forge', agentId: 'a1', message: { id: 'forged', content: 'your refund is approved' } }),
        status.PERMISSION_DENIED,
      );
      expect(error.details).to.equal('a visitor token cannot post on the agent side; send visitor messages');
      expect(await contents('forge')).to.deep.equal(before);
    });
  });

  it('takes every sender id from the token', async () => {
    const chatId = 'senders';
    const visitor = as(await visitorOf(chatId, 'v1'));
    await visitor.rebuild({ chat: { id: chatId } });
    const v = await visitor.addVisitorMessage({ chatId, message: visitorMessage('s1') });
    const a = await as(await agentToken('a1')).addAgentMessage({ chatId, visitorOffset: 1, message: { id: 's2', content: 'hi' } });
    const b = await as(await serviceToken('bot-1')).addAgentMessage({
      chatId,
      visitorOffset: 1,
      agentOffset: 1,
      message: { id: 's3', content: 'beep', messageType: MessageType.MESSAGE_TYPE_BOT },
    });
    expect([v, a, b].map((r) => r.message?.senderId)).to.deep.equal(['v1', 'a1', 'bot-1']);
    const watched = (await firstOfWatch(server.client, chatId, bearer(await visitorOf(chatId, 'v1')))) as WatchChatResponse;
    expect(watched.messages.map((m) => m.id)).to.deep.equal(['s1', 's2', 's3']);
  });
});

describe('bearer tokens (JWKS file, issuer and audience)', () => {
  let server: TestServer;
  let signKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
  let jwks: ReturnType<typeof keyFile>;

  before(async () => {
    const pair = await generateKeyPair('ES256');
    signKey = pair.privateKey;
    jwks = keyFile(JSON.stringify({ keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] }));
    server = await startTestServer({ authJwksFile: jwks.path, authIssuer: 'https://id.example', authAudience: 'chat' });
  });
  after(async () => {
    await server.close();
    jwks.remove();
  });

  const es256 = (claims: JWTPayload, aud = 'chat') =>
    new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer('https://id.example').setAudience(aud).setExpirationTime('5m').sign(signKey);

  it('accepts a token signed with a key of the set, and refuses another audience or an HS256 token', async () => {
    const read = await chatApi(server.client, bearer(await es256({ sub: 'a1', role: 'agent' }))).getNewMessage({ chatId: 'j' });
    expect(read.code).to.equal(ResultCode.RESULT_CODE_REBUILD_REQUIRED);
    const elsewhere = await expectStatus(chatApi(server.client, bearer(await es256({ sub: 'a1', role: 'agent' }, 'billing'))).getNewMessage({ chatId: 'j' }), status.UNAUTHENTICATED);
    expect(elsewhere.details).to.contain('"aud" claim');
    const hs = await expectStatus(chatApi(server.client, bearer(await agentToken())).getNewMessage({ chatId: 'j' }), status.UNAUTHENTICATED);
    expect(hs.details).to.contain("the token's algorithm is not accepted");
  });
});

describe('bearer tokens (JWKS URL)', () => {
  const closers: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });

  /** An identity provider on 127.0.0.1:0 serving `jwks` at /jwks.json, counting its fetches. */
  async function identityProvider(jwks: object): Promise<{ url: string; fetches: () => number }> {
    let fetches = 0;
    const provider = createHttpServer((request, response) => {
      fetches += 1;
      if (request.url !== '/jwks.json') return void response.writeHead(404).end();
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(jwks));
    });
    provider.listen(0, '127.0.0.1');
    await once(provider, 'listening');
    closers.push(() => new Promise((resolve) => provider.close(resolve)));
    return { url: `http://127.0.0.1:${(provider.address() as AddressInfo).port}/jwks.json`, fetches: () => fetches };
  }

  async function chatServer(authJwksUrl: string): Promise<TestServer> {
    const server = await startTestServer({ authJwksUrl });
    closers.push(() => server.close());
    return server;
  }

  it('takes the keys from the URL, fetched once and cached, and refuses a token signed with a key it does not hold', async () => {
    const pair = await generateKeyPair('ES256');
    const stranger = await generateKeyPair('ES256');
    const provider = await identityProvider({ keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] });
    const server = await chatServer(provider.url);
    const signed = (key: typeof pair.privateKey, sub: string) => new SignJWT({ role: 'agent' }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setSubject(sub).setExpirationTime('5m').sign(key);
    for (const sub of ['a1', 'a2', 'a3']) {
      const read = await chatApi(server.client, bearer(await signed(pair.privateKey, sub))).getNewMessage({ chatId: `url-${sub}` });
      expect(read.code).to.equal(ResultCode.RESULT_CODE_REBUILD_REQUIRED);
    }
    expect(provider.fetches(), 'fetches of the JWKS for three calls').to.equal(1);
    const forged = await expectStatus(chatApi(server.client, bearer(await signed(stranger.privateKey, 'a1'))).getNewMessage({ chatId: 'url' }), status.UNAUTHENTICATED);
    expect(forged.details).to.equal("the token's signature does not verify with the server's keys");
  });

  it('answers UNAVAILABLE, saying it cannot fetch its token keys, while the JWKS URL cannot be reached, and serves once it can', async () => {
    const pair = await generateKeyPair('ES256');
    const jwks = { keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] };
    // A port nothing listens on: taken, then given back.
    const probe = createHttpServer();
    probe.listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const { port } = probe.address() as AddressInfo;
    await new Promise((resolve) => probe.close(resolve));
    const server = await chatServer(`http://127.0.0.1:${port}/jwks.json`);
    const token = await new SignJWT({ role: 'agent' }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setSubject('a1').setExpirationTime('5m').sign(pair.privateKey);
    const error = await expectStatus(chatApi(server.client, bearer(token)).getNewMessage({ chatId: 'down' }), status.UNAVAILABLE);
    expect(error.details).to.match(/^the server cannot fetch its token keys from --auth-jwks-url http:\/\/127\.0\.0\.1:\d+\/jwks\.json \(.+\); try again, or another server$/);

    // The same URL, now served: the next call fetches the keys and is answered.
    const provider = createHttpServer((_request, response) => response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(jwks)));
    provider.listen(port, '127.0.0.1');
    await once(provider, 'listening');
    closers.push(() => new Promise((resolve) => provider.close(resolve)));
    const read = await chatApi(server.client, bearer(token)).getNewMessage({ chatId: 'down' });
    expect(read.code).to.equal(ResultCode.RESULT_CODE_REBUILD_REQUIRED);
  });
});

describe('per-subject rate limits on the wire', () => {
  it('refuses the send past the burst with RESOURCE_EXHAUSTED, naming the limit and when to retry; others go on', async () => {
    const secret = keyFile();
    const server = await startTestServer({ authHs256SecretFile: secret.path, rateSendsPerSecond: 1, rateSendsBurst: 2 });
    try {
      const chatId = 'rl';
      const visitor = chatApi(server.client, bearer(await visitorOf(chatId)));
      await visitor.rebuild({ chat: { id: chatId } });
      await visitor.addVisitorMessage({ chatId, message: visitorMessage('r1') });
      await visitor.addVisitorMessage({ chatId, visitorOffset: 1, message: visitorMessage('r2') });
      const error = await expectStatus(visitor.addVisitorMessage({ chatId, visitorOffset: 2, message: visitorMessage('r3') }), status.RESOURCE_EXHAUSTED);
      const [, retryMs] = /^"visitor:v1" reached the send rate limit \(1 per second, bursts of 2\); retry in (\d+) ms$/.exec(error.details) ?? expect.fail(error.details);
      expect(error.metadata.get('grpc-retry-pushback-ms'), 'the same wait, as gRPC retry pushback').to.deep.equal([retryMs]);
      const agent = await chatApi(server.client, bearer(await agentToken())).addAgentMessage({ chatId, visitorOffset: 2, message: { id: 'r4', content: 'hi' } });
      expect(agent.code).to.equal(ResultCode.RESULT_CODE_OK);
    } finally {
      await server.close();
      secret.remove();
    }
  });
});

describe('an insecure server', () => {
  it('marks every chat call x-chat-insecure: true', async () => {
    const server = await startTestServer({ insecure: true });
    try {
      const metadata = await new Promise<Metadata>((resolve, reject) => {
        const call = server.client.getNewMessage({ chatId: 'i', visitorOffset: 0, agentOffset: 0, epoch: '' }, (error) => error && reject(error));
        call.on('metadata', resolve);
      });
      expect(metadata.get('x-chat-insecure')).to.deep.equal(['true']);
    } finally {
      await server.close();
    }
  });

  it('says so in health answers too, so a balancer or a probe can see it', async () => {
    const server = await startTestServer({ insecure: true });
    const health = new HealthClient(server.address, credentials.createInsecure());
    try {
      const metadata = await new Promise<Metadata>((resolve, reject) => {
        const call = health.check({ service: 'chat.v1.ChatService' }, (error) => error && reject(error));
        call.on('metadata', resolve);
      });
      expect(metadata.get('x-chat-insecure')).to.deep.equal(['true']);
    } finally {
      health.close();
      await server.close();
    }
  });

  it('marks nothing on a server that checks tokens', async () => {
    const secret = keyFile(randomBytes(32).toString('base64'));
    const server = await startTestServer({ authHs256SecretFile: secret.path });
    const health = new HealthClient(server.address, credentials.createInsecure());
    try {
      const metadata = await new Promise<Metadata>((resolve, reject) => {
        const call = health.check({ service: 'chat.v1.ChatService' }, (error) => error && reject(error));
        call.on('metadata', resolve);
      });
      expect(metadata.get('x-chat-insecure')).to.deep.equal([]);
    } finally {
      health.close();
      await server.close();
      secret.remove();
    }
  });
});

describe('start-up without a usable key source', () => {
  const start = (overrides: Partial<Config>) => startServer({ ...DEFAULT_CONFIG, host: '127.0.0.1', port: 0, ...overrides }, pino({ level: 'silent' }));

  const refusal = (overrides: Partial<Config>) => start(overrides).then(() => expect.fail('started'), (e: unknown) => e as Error);

  it('refuses to start insecure by default: without --insecure it needs a key source and seal keys, and says what to give', async () => {
    const none = await refusal({});
    expect(none).to.be.instanceOf(ConfigError);
    expect(none.message).to.equal(
      'no key source for bearer tokens: give --auth-hs256-secret-file, --auth-jwks-file or --auth-jwks-url (with --seal-keys-file), or --insecure for a development server that checks nobody',
    );
    const secret = keyFile(randomBytes(32).toString('base64'));
    try {
      const unsealed = await refusal({ authHs256SecretFile: secret.path });
      expect(unsealed).to.be.instanceOf(ConfigError);
      expect(unsealed.message).to.equal(
        '--auth-hs256-secret-file without --seal-keys-file would let any caller upload history nobody sent: give the seal keys all instances share (README, "Sealed history")',
      );
    } finally {
      secret.remove();
    }
    const server = await start({ insecure: true });
    try {
      expect(server.config.insecure).to.equal(true);
    } finally {
      await server.stop(0);
    }
  });

  it('is refused with a ConfigError saying what to give', async () => {
    const both = await refusal({ insecure: true, authHs256SecretFile: '/run/secret' });
    expect(both).to.be.instanceOf(ConfigError);
    expect(both.message).to.equal('--insecure checks no tokens, so it cannot go with --auth-hs256-secret-file: choose one');
    const two = await refusal({ authHs256SecretFile: '/run/secret', authJwksUrl: 'https://id.example/jwks' });
    expect(two.message).to.equal('give one key source; got --auth-hs256-secret-file and --auth-jwks-url');
    const shortSecret = keyFile('too-short');
    try {
      expect((await refusal({ authHs256SecretFile: shortSecret.path })).message).to.contain('holds 9 bytes; an HS256 secret needs at least 32');
    } finally {
      shortSecret.remove();
    }
    const missing = await refusal({ authJwksFile: join(tmpdir(), 'no-such-jwks.json') });
    expect(missing.message).to.match(/auth-jwks-file ".*no-such-jwks.json" cannot be read: ENOENT/);
  });
});
