import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { type ChatMessage, ChatServiceClient } from '../../generated/chat/v1/chat.js';
import { MemoryStore, placement } from '../../src/client/index.js';
import { ConfigError, DEFAULT_CONFIG } from '../../src/server/config.js';
import { startServer } from '../../src/server/server.js';
import { type ChatApi, chatApi, expectStatus } from '../support/chat-api.js';
import { memoryLogger } from '../support/memory-log.js';
import { startTestServer, type TestServer } from '../support/servers.js';
import { sessionHarness } from '../support/sessions.js';

const origin = { visitorOffset: 0, agentOffset: 0 };

describe('sealed history (--seal-keys-file)', function () {
  this.timeout(20_000);
  const directories: string[] = [];
  const servers: TestServer[] = [];
  const harness = sessionHarness();
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
    for (const dir of directories.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  /** A temporary keys file: `keys` (id to base64) and `current`, or `text` as it is. */
  function keysFile(content: { current: string; keys: Record<string, string> } | string): string {
    const dir = mkdtempSync(join(tmpdir(), 'chat-seal-'));
    directories.push(dir);
    const path = join(dir, 'seal-keys.json');
    writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
    return path;
  }

  async function sealing(sealKeysFile: string): Promise<{ server: TestServer; api: ChatApi }> {
    const server = await startTestServer({ sealKeysFile });
    servers.push(server);
    return { server, api: chatApi(server.client) };
  }

  const k1 = randomBytes(32).toString('base64');
  const k2 = randomBytes(32).toString('base64');

  /** Creates chat `chatId` and sends a visitor and an agent message; returns them as answered. */
  async function converse(api: ChatApi, chatId: string): Promise<ChatMessage[]> {
    await api.getNewMessage({ chatId, ...origin });
    const v = await api.addVisitorMessage({ chatId, ...origin, message: { id: 'v1', content: 'hello', senderId: 'vis' } });
    const a = await api.addAgentMessage({ chatId, visitorOffset: 1, agentOffset: 0, agentId: 'ag', message: { id: 'a1', content: 'hi there' } });
    return [v.message!, a.message!];
  }

  /** The server's whole chat, as a Rebuild of nothing answers it. */
  const snapshot = async (api: ChatApi, chatId: string) => (await api.rebuild({ chat: { id: chatId, messages: [] } })).chat;

  /** Uploads `messages` to chat `chatId`; expects PERMISSION_DENIED with `details` and the chat as it was. */
  async function expectForgery(api: ChatApi, chatId: string, messages: ChatMessage[], details: RegExp): Promise<void> {
    const before = await snapshot(api, chatId);
    const error = await expectStatus(api.rebuild({ chat: { id: chatId, messages } }), status.PERMISSION_DENIED);
    expect(error.details).to.match(details);
    expect(await snapshot(api, chatId)).to.deep.equal(before);
  }

  it("seals a send's answer, and reads and rebuild snapshots return the seal", async () => {
    const { api } = await sealing(keysFile({ current: 'k1', keys: { k1 } }));
    const [v1, a1] = await converse(api, 'c');
    expect(v1!.seal).to.match(/^k1\.[A-Za-z0-9_-]{43}$/);
    expect(a1!.seal).to.match(/^k1\./).and.not.equal(v1!.seal);
    const read = await api.getNewMessage({ chatId: 'c', ...origin });
    expect(read.messages.map((m) => m.seal)).to.deep.equal([v1!.seal, a1!.seal]);
    expect((await snapshot(api, 'c'))!.messages.map((m) => m.seal)).to.deep.equal([v1!.seal, a1!.seal]);
  });

  it('seals nothing on an insecure server without a keys file (a secure one needs keys)', async () => {
    const server = await startTestServer({ insecure: true });
    servers.push(server);
    const [v1] = await converse(chatApi(server.client), 'c');
    expect(v1!.seal).to.equal(undefined);
  });

  it('refuses (PERMISSION_DENIED) a forged AGENT message, unsealed or sealed under another key, logs it, and leaves the chat as it was', async () => {
    const log = memoryLogger('warn');
    const started = await startServer({ ...DEFAULT_CONFIG, host: '127.0.0.1', port: 0, insecure: true, sealKeysFile: keysFile({ current: 'k1', keys: { k1 } }) }, log.logger);
    const client = new ChatServiceClient(`127.0.0.1:${started.port}`, credentials.createInsecure());
    servers.push({ address: '', server: started, client, close: async () => (client.close(), await started.stop(0)) });
    const api = chatApi(client);
    const [v1, a1] = await converse(api, 'c');
    const forged: ChatMessage = { ...a1!, id: 'a2', dataOffset: 2, content: 'your refund is approved', seal: undefined };
    await expectForgery(api, 'c', [v1!, a1!, forged], /^chat\.messages\[2\] \(id "a2"\) has no seal/);
    const warned = log.lines.filter((l) => l.msg === 'forged or altered messages refused');
    expect(warned.map(({ level, chatId, refused }) => ({ level, chatId, refused }))).to.deep.equal([{ level: 40, chatId: 'c', refused: 1 }]);

    // Sealed by a server with another key of the same id.
    const other = await sealing(keysFile({ current: 'k1', keys: { k1: k2 } }));
    const [, elsewhere] = await converse(other.api, 'c');
    await expectForgery(api, 'c', [{ ...elsewhere!, id: 'a2', dataOffset: 2 }], /^chat\.messages\[0\] \(id "a2"\) has a seal that does not match it: /);
    // Sealed under a key id this server does not know.
    const unknown = await sealing(keysFile({ current: 'k0', keys: { k0: k2 } }));
    const [, foreign] = await converse(unknown.api, 'c');
    await expectForgery(api, 'c', [{ ...foreign!, id: 'a2', dataOffset: 2 }], /\(id "a2"\) is sealed under a key this server does not know \("k0"\)/);
  });

  it('refuses a sealed message with altered content, or with a forged send time (new id, or its own id into a server lacking it)', async () => {
    const file = keysFile({ current: 'k1', keys: { k1 } });
    const { api } = await sealing(file);
    const [v1, a1] = await converse(api, 'c');
    const b = await sealing(file);
    await b.api.getNewMessage({ chatId: 'c', ...origin });
    await expectForgery(b.api, 'c', [v1!, { ...a1!, content: 'hi there, your refund is approved' }], /^chat\.messages\[1\] \(id "a1"\) has a seal that does not match it/);
    const later = new Date(a1!.sendTime!.getTime() - 60_000);
    await expectForgery(b.api, 'c', [v1!, { ...a1!, sendTime: later }], /\(id "a1"\) has a seal that does not match it/);
    await expectForgery(api, 'c', [v1!, a1!, { ...a1!, id: 'a0', dataOffset: 2, sendTime: later }], /\(id "a0"\) has a seal that does not match it/);
    // As sealed, the same messages are taken back.
    const taken = await b.api.rebuild({ chat: { id: 'c', messages: [v1!, a1!] } });
    expect(taken.chat!.messages).to.deep.equal([v1, a1]);
  });

  it('accepts, after a key rotation, messages sealed under the old key while it is kept, and refuses them once it is removed', async () => {
    const { api } = await sealing(keysFile({ current: 'k1', keys: { k1 } }));
    const messages = await converse(api, 'c');
    const rotated = await sealing(keysFile({ current: 'k2', keys: { k1, k2 } }));
    const taken = await rotated.api.rebuild({ chat: { id: 'c', messages } });
    expect(taken.chat!.messages.map((m) => m.id)).to.deep.equal(['v1', 'a1']);
    const next = await rotated.api.addVisitorMessage({ chatId: 'c', visitorOffset: 1, agentOffset: 1, epoch: taken.chat!.epoch, message: { id: 'v2', content: 'thanks' } });
    expect(next.message!.seal).to.match(/^k2\./);
    const retired = await sealing(keysFile({ current: 'k2', keys: { k2 } }));
    await retired.api.getNewMessage({ chatId: 'c', ...origin });
    await expectForgery(retired.api, 'c', messages, /^chat\.messages\[0\] \(id "v1"\) is sealed under a key this server does not know \("k1"\) \(and 1 more\)/);
  });

  it('lets an SDK session fail over: B, with the same keys, takes back what A sealed, and the session carries on', async () => {
    const file = keysFile({ current: 'k1', keys: { k1 } });
    const started = [await harness.server({ sealKeysFile: file }), await harness.server({ sealKeysFile: file })];
    const addresses = placement('sealed-fo', started.map((s) => s.address));
    const [a, b] = addresses.map((address) => started.find((s) => s.address === address)!);
    const visitor = await harness.open({ chatId: 'sealed-fo', role: { kind: 'visitor', visitorId: 'vis' }, servers: addresses, store: new MemoryStore() });
    await visitor.send('before', { id: 'v1' });
    await visitor.send('again', { id: 'v2' });
    expect(visitor.messages.every((m) => m.seal?.startsWith('k1.'))).to.equal(true);
    const rebuilt: string[] = [];
    visitor.on('rebuild', (event) => rebuilt.push(event.address));
    await a!.close();
    await visitor.send('after', { id: 'v3' });
    expect(rebuilt).to.include(b!.address);
    const onB = await chatApi(b!.client).getNewMessage({ chatId: 'sealed-fo', ...origin });
    expect(onB.messages.map((m) => m.id)).to.deep.equal(['v1', 'v2', 'v3']);
    expect(onB.messages.slice(0, 2).map((m) => m.seal)).to.deep.equal(visitor.messages.slice(0, 2).map((m) => m.seal));
  });

  describe('the keys file', () => {
    const refused = async (sealKeysFile: string, reason: RegExp) => {
      const error = await startServer({ ...DEFAULT_CONFIG, host: '127.0.0.1', port: 0, insecure: true, sealKeysFile }, memoryLogger('silent').logger).then(
        (server) => server.stop(0).then(() => expect.fail('started')),
        (e: unknown) => e,
      );
      expect(error).to.be.instanceOf(ConfigError);
      expect((error as Error).message).to.include(`seal-keys-file "${sealKeysFile}"`).and.match(reason);
    };

    it('refuses to start with a file it cannot read, not JSON, without a current key, or with a short key', async () => {
      await refused('/no/such/seal-keys.json', /cannot be read: ENOENT/);
      await refused(keysFile('{"current": '), /is not JSON/);
      await refused(keysFile({ current: '', keys: { k1 } }), /has no "current" key id/);
      await refused(keysFile(JSON.stringify({ keys: { k1 } })), /has no "current" key id/);
      await refused(keysFile({ current: 'k2', keys: { k1 } }), /names "k2" as current, which is not among its keys \(k1\)/);
      await refused(keysFile({ current: 'k1', keys: { k1: randomBytes(31).toString('base64') } }), /key "k1" of 31 bytes; a seal key needs at least 32/);
      await refused(keysFile({ current: 'k1', keys: { k1: '!!not base64!!' } }), /key "k1" that is not a base64 string/);
    });

    it('says in the server what it seals with: the key ids, never the keys', async () => {
      const { server } = await sealing(keysFile({ current: 'k2', keys: { k1, k2 } }));
      expect(server.server.seals).to.deep.equal({ seals: 'on', sealKeyIds: ['k2', 'k1'] });
      const plain = await startTestServer({ insecure: true });
      servers.push(plain);
      expect(plain.server.seals).to.deep.equal({ seals: 'off', sealKeyIds: [] });
    });
  });
});
