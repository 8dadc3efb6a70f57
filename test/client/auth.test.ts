import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { SignJWT } from 'jose';
import { ChatSdkError, MessageType, type RetryEvent } from '../../src/client/index.js';
import { sessionHarness } from '../support/sessions.js';

const SECRET = new TextEncoder().encode(randomBytes(32).toString('hex'));

const sign = (claims: Record<string, unknown>, expiresIn: string | number = '5m') =>
  new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(expiresIn).sign(SECRET);

describe('ChatSession with bearer tokens', () => {
  const harness = sessionHarness();
  const dir = mkdtempSync(join(tmpdir(), 'chat-sdk-auth-'));
  const secretFile = join(dir, 'secret');
  writeFileSync(secretFile, SECRET);
  after(() => rmSync(dir, { recursive: true, force: true }));

  const server = () => harness.server({ authHs256SecretFile: secretFile });

  it('lets a visitor, an agent and a service talk, the visitor with a token function called for each call', async () => {
    const { address } = await server();
    const chatId = 'sdk-auth';
    let visitorTokens = 0;
    const visitor = await harness.open({
      chatId,
      role: { kind: 'visitor', visitorId: 'v1' },
      servers: [address],
      token: async () => {
        visitorTokens += 1;
        return sign({ sub: 'v1', role: 'visitor', chat_id: chatId });
      },
    });
    const agent = await harness.open({ chatId, role: { kind: 'agent', agentId: 'a1' }, servers: [address], token: await sign({ sub: 'a1', role: 'agent' }) });
    const bot = await harness.open({
      chatId,
      role: { kind: 'service', serviceId: 'bot-1', messageType: 'bot' },
      servers: [address],
      token: () => sign({ sub: 'bot-1', role: 'service' }),
    });

    expect(await visitor.send('hello', { id: 'm1' })).to.include({ senderId: 'v1', messageType: MessageType.MESSAGE_TYPE_VISITOR });
    await agent.sync();
    expect(await agent.send('hi, how can I help?', { id: 'm2' })).to.include({ senderId: 'a1', messageType: MessageType.MESSAGE_TYPE_AGENT });
    await bot.sync();
    expect(await bot.send('ticket #42 opened', { id: 'm3' })).to.include({ senderId: 'bot-1', messageType: MessageType.MESSAGE_TYPE_BOT });
    await visitor.sync();
    expect(visitor.messages.map((m) => `${m.id}:${m.senderId}`)).to.deep.equal(['m1:v1', 'm2:a1', 'm3:bot-1']);
    const calls = visitorTokens;
    await visitor.sync();
    expect(visitorTokens, 'a fresh token for each call').to.be.greaterThan(calls);
  });

  it('watches with a token function: the watch delivers what others send', async () => {
    const { address } = await server();
    const chatId = 'sdk-watch';
    const visitor = await harness.open({ chatId, role: { kind: 'visitor', visitorId: 'v1' }, servers: [address], token: () => sign({ sub: 'v1', role: 'visitor', chat_id: chatId }) });
    const agent = await harness.open({ chatId, role: { kind: 'agent', agentId: 'a1' }, servers: [address], token: () => sign({ sub: 'a1', role: 'agent' }) });
    await visitor.sync();
    visitor.start();
    await agent.sync();
    const heard = new Promise<string>((resolve) => visitor.on('message', (m) => m.id === 'w1' && resolve(m.senderId)));
    await agent.send('pushed', { id: 'w1' });
    expect(await heard).to.equal('a1');
  });

  it('rejects at once, without a retry, when the token is refused (UNAUTHENTICATED) or does not grant the call (PERMISSION_DENIED)', async () => {
    const { address } = await server();
    const retries: RetryEvent[] = [];
    const expired = await harness.open({
      chatId: 'sdk-refused',
      role: { kind: 'agent', agentId: 'a1' },
      servers: [address],
      token: await sign({ sub: 'a1', role: 'agent' }, Math.floor(Date.now() / 1000) - 3600),
    });
    expired.on('retry', (event) => retries.push(event));
    const error = await expired.sync().then(() => expect.fail('synced'), (e: unknown) => e as ChatSdkError);
    expect(error).to.be.instanceOf(ChatSdkError).and.include({ kind: 'rejected', code: status.UNAUTHENTICATED });
    expect(error.message).to.match(/^UNAUTHENTICATED: the token expired at .*; get a fresh one$/);

    const elsewhere = await harness.open({
      chatId: 'sdk-refused',
      role: { kind: 'visitor', visitorId: 'v1' },
      servers: [address],
      token: await sign({ sub: 'v1', role: 'visitor', chat_id: 'another-chat' }),
    });
    elsewhere.on('retry', (event) => retries.push(event));
    const denied = await elsewhere.sync().then(() => expect.fail('synced'), (e: unknown) => e as ChatSdkError);
    expect(denied).to.include({ kind: 'rejected', code: status.PERMISSION_DENIED });
    expect(denied.message).to.contain('a visitor token for chat "another-chat" cannot touch chat "sdk-refused"');
    expect(retries).to.deep.equal([]);
  });
});
