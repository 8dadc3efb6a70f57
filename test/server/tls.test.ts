import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ChannelCredentials, credentials, status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { ChatServiceClient, ResultCode } from '../../generated/chat/v1/chat.js';
import { ChatSession } from '../../src/client/index.js';
import { ChatTransport } from '../../src/client/transport.js';
import type { Config } from '../../src/server/config.js';
import { type Certificates, type Issued, makeCertificates } from '../support/certificates.js';
import { chatApi, expectStatus } from '../support/chat-api.js';
import { type Finished, finished } from '../support/child-output.js';
import { chatIdPlaced } from '../support/placement.js';
import { HEALTHCHECK_COMMAND, PRODUCTION_COMMAND, REPO, type ServerProcess, spawnServer, startTestServer, type TestServer, testClient } from '../support/servers.js';
import { sessionToken } from '../support/security.js';

/** Runs `script` (the server or its health probe) to its end: exit code and output. */
function run(script: string, args: readonly string[], env: Record<string, string> = {}): Promise<Finished> {
  return finished(spawn(process.execPath, [script, ...args], { cwd: REPO, env: { ...process.env, HOST: '127.0.0.1', PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'pipe'] }));
}

/** Asserts the server refused to start: status 2 and exactly one line on stderr; returns it. */
async function refusedLine(env: Record<string, string>): Promise<string> {
  const outcome = await run(PRODUCTION_COMMAND[1], [], env);
  expect(outcome.code, outcome.stderr).to.equal(2);
  const lines = outcome.stderr.split('\n').filter((line) => line !== '');
  expect(lines, outcome.stderr).to.have.length(1);
  expect(lines[0]).to.match(/^chat-rebuild: .* \(see --help\)$/);
  return lines[0]!;
}

describe('TLS', () => {
  let certs: Certificates;
  let ca: Issued;
  let serverCert: Issued;
  let clientCa: Issued;
  let clientCert: Issued;
  let otherCa: Issued;
  let strangerCert: Issued;
  before(() => {
    certs = makeCertificates();
    ca = certs.ca('server-ca');
    serverCert = certs.issue(ca, 'server', 'server');
    clientCa = certs.ca('client-ca');
    clientCert = certs.issue(clientCa, 'client', 'client');
    otherCa = certs.ca('other-ca');
    strangerCert = certs.issue(otherCa, 'stranger', 'client');
  });
  after(() => certs.remove());

  const tls = (): Partial<Config> => ({ tlsCertFile: serverCert.cert.path, tlsKeyFile: serverCert.key.path });
  const mtls = (): Partial<Config> => ({ ...tls(), tlsClientCaFile: clientCa.cert.path });
  const trusting = (root: Issued, client?: Issued) => credentials.createSsl(root.cert.pem, client?.key.pem ?? null, client?.cert.pem ?? null);

  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });
  async function server(overrides: Partial<Config>): Promise<TestServer> {
    const started = await startTestServer(overrides);
    cleanup.push(() => started.close());
    return started;
  }
  function clientOf(address: string, channelCredentials: ChannelCredentials): ChatServiceClient {
    // A channel of its own, so each test's handshake is its own and not a shared subchannel's.
    const client = testClient(address, { channel: channelCredentials, options: { 'grpc.use_local_subchannel_pool': 1 } });
    cleanup.push(() => client.close());
    return client;
  }
  const read = (client: ChatServiceClient) => chatApi(client).getNewMessage({ chatId: 'c', visitorOffset: 0, agentOffset: 0 });

  it('serves the generated client over TLS, trusting the CA that signed the certificate', async () => {
    const { address } = await server(tls());
    const api = chatApi(clientOf(address, trusting(ca)));
    expect((await api.rebuild({ chat: { id: 'c' } })).code).to.equal(ResultCode.RESULT_CODE_OK);
    const sent = await api.addVisitorMessage({ chatId: 'c', visitorOffset: 0, agentOffset: 0, message: { id: 'm1', content: 'over TLS' } });
    expect(sent.code).to.equal(ResultCode.RESULT_CODE_OK);
    const answer = await api.getNewMessage({ chatId: 'c', visitorOffset: 0, agentOffset: 0 });
    expect(answer.messages.map((m) => [m.id, m.content])).to.deep.equal([['m1', 'over TLS']]);
  });

  it('serves a ChatSession given TLS credentials: a send, and a second session syncs it', async () => {
    const { address } = await server(tls());
    const open = (visitorId: string) => ChatSession.open({ chatId: 'tls-chat', role: { kind: 'visitor', visitorId }, servers: [address], credentials: trusting(ca), callTimeoutMs: 5_000, token: sessionToken('tls-chat', { kind: 'visitor', visitorId }) });
    const sender = await open('v1');
    cleanup.push(() => sender.close());
    const stored = await sender.send('hello over TLS');
    expect(stored.dataOffset).to.equal(1);
    const reader = await open('v1');
    cleanup.push(() => reader.close());
    expect((await reader.sync()).map((m) => m.content)).to.deep.equal(['hello over TLS']);
  });

  it('refuses a plaintext client and a TLS client that trusts another CA (UNAVAILABLE)', async () => {
    const { address } = await server(tls());
    await expectStatus(read(clientOf(address, credentials.createInsecure())), status.UNAVAILABLE);
    await expectStatus(read(clientOf(address, trusting(otherCa))), status.UNAVAILABLE);
  });

  it('with a client CA, serves a client whose certificate it signed and refuses one without a certificate or with another CA\'s', async () => {
    const { address } = await server(mtls());
    expect((await read(clientOf(address, trusting(ca, clientCert)))).code, 'answered: there is no such chat yet').to.equal(ResultCode.RESULT_CODE_REBUILD_REQUIRED);
    await expectStatus(read(clientOf(address, trusting(ca))), status.UNAVAILABLE);
    await expectStatus(read(clientOf(address, trusting(ca, strangerCert))), status.UNAVAILABLE);
  });

  it('caps connections over TLS too: at the cap a new one closes the one idle longest', async () => {
    const { address, server: chat } = await server({ ...tls(), maxConnections: 1 });
    await read(clientOf(address, trusting(ca)));
    expect(chat.connections).to.include({ open: 1, closedIdle: 0 });
    await read(clientOf(address, trusting(ca)));
    expect(chat.connections).to.include({ open: 1, closedIdle: 1 });
  });

  it("the SDK transport's home probe health-checks over TLS and returns to the home", async () => {
    const [first, second] = [await server(tls()), await server(tls())];
    const addresses = [first!.address, second!.address];
    const chatId = chatIdPlaced('tls-homing', addresses); // first is its home
    const transport = new ChatTransport({ chatId, addresses, credentials: trusting(ca), callTimeoutMs: 5_000, homeProbe: { firstMs: 20, maxMs: 100 }, token: sessionToken(chatId, { kind: 'visitor' }) });
    cleanup.push(() => transport.close());
    await transport.call('getNewMessage', { chatId, visitorOffset: 0, agentOffset: 0, epoch: '' });
    const back = new Promise<void>((resolve) => {
      const stop = transport.onMove((address) => address === first!.address && (stop(), resolve()));
    });
    transport.failover(first!.address); // as after a failed call: the home is still up, so the probe finds it SERVING
    expect(transport.address).to.equal(second!.address);
    await back;
    await transport.call('getNewMessage', { chatId, visitorOffset: 0, agentOffset: 0, epoch: '' });
  });

  describe('the server process', () => {
    let process_: ServerProcess | undefined;
    afterEach(async () => process_?.kill());

    it('refuses a certificate without its key, or a key without its certificate: one line, exit 2', async () => {
      expect(await refusedLine({ TLS_CERT_FILE: serverCert.cert.path })).to.equal(
        'chat-rebuild: tls-cert-file is given without tls-key-file (TLS_KEY_FILE): TLS needs both (see --help)',
      );
      expect(await refusedLine({ TLS_KEY_FILE: serverCert.key.path })).to.match(/tls-key-file is given without tls-cert-file/);
    });

    it('refuses a file it cannot read, one that is not PEM, and a key of another certificate, naming the file', async () => {
      const missing = join(certs.dir, 'missing.crt');
      expect(await refusedLine({ TLS_CERT_FILE: missing, TLS_KEY_FILE: serverCert.key.path })).to.equal(
        `chat-rebuild: tls-cert-file "${missing}" cannot be read: ENOENT (see --help)`,
      );
      const garbage = join(certs.dir, 'garbage.pem');
      writeFileSync(garbage, 'not a certificate\n');
      expect(await refusedLine({ TLS_CERT_FILE: serverCert.cert.path, TLS_KEY_FILE: garbage })).to.equal(
        `chat-rebuild: tls-key-file "${garbage}" is not PEM (no -----BEGIN line) (see --help)`,
      );
      expect(await refusedLine({ TLS_CERT_FILE: serverCert.cert.path, TLS_KEY_FILE: clientCert.key.path })).to.contain(
        `tls-key-file "${clientCert.key.path}" is not the key of the certificate in tls-cert-file "${serverCert.cert.path}"`,
      );
      expect(await refusedLine({ TLS_CERT_FILE: serverCert.cert.path, TLS_KEY_FILE: serverCert.key.path, TLS_CLIENT_CA_FILE: serverCert.key.path })).to.match(
        /tls-client-ca-file ".*server\.key" does not hold a usable PEM certificate/,
      );
    });

    it('logs that TLS is on with the file paths, and the health probe given the CA finds it SERVING', async () => {
      process_ = await spawnServer({ TLS_CERT_FILE: serverCert.cert.path, TLS_KEY_FILE: serverCert.key.path });
      const listening = await process_.waitForLog('chat server listening');
      expect(listening.tls).to.equal('tls');
      expect(listening.config).to.include({ tlsCertFile: serverCert.cert.path, tlsKeyFile: serverCert.key.path, tlsClientCaFile: '' });
      const [, probe] = HEALTHCHECK_COMMAND;
      const byFlag = await run(probe, ['--address', process_.address, '--ca-file', ca.cert.path]);
      expect(byFlag.code, byFlag.stderr).to.equal(0);
      expect(byFlag.stdout).to.equal(`healthcheck: ${process_.address} is SERVING\n`);
      // As in the container: the server's own TLS_CERT_FILE turns TLS on, HEALTHCHECK_CA_FILE names the CA, and the name to check is localhost.
      const byEnv = await run(probe, ['--address', `127.0.0.1:${process_.port}`], {
        TLS_CERT_FILE: serverCert.cert.path,
        TLS_KEY_FILE: serverCert.key.path,
        HEALTHCHECK_CA_FILE: ca.cert.path,
        HEALTHCHECK_SERVER_NAME: 'localhost',
      });
      expect(byEnv.code, byEnv.stderr).to.equal(0);
      const misnamed = await run(probe, ['--address', process_.address, '--ca-file', ca.cert.path, '--server-name', 'elsewhere.example', '--timeout-ms', '10000']);
      expect(misnamed.code, 'the certificate does not name elsewhere.example').to.equal(1);
      const untrusted = await run(probe, ['--address', process_.address, '--timeout-ms', '10000']);
      expect(untrusted.code, 'plaintext against TLS').to.equal(1);
      expect(untrusted.stderr).to.match(/did not answer: UNAVAILABLE /);
    });

    it('with a client CA logs mtls, and the health probe presents its client certificate', async () => {
      process_ = await spawnServer({ TLS_CERT_FILE: serverCert.cert.path, TLS_KEY_FILE: serverCert.key.path, TLS_CLIENT_CA_FILE: clientCa.cert.path });
      expect((await process_.waitForLog('chat server listening')).tls).to.equal('mtls');
      const [, probe] = HEALTHCHECK_COMMAND;
      const withCert = await run(probe, ['--address', process_.address, '--ca-file', ca.cert.path, '--cert-file', clientCert.cert.path, '--key-file', clientCert.key.path]);
      expect(withCert.code, withCert.stderr).to.equal(0);
      const without = await run(probe, ['--address', process_.address, '--ca-file', ca.cert.path, '--timeout-ms', '10000']);
      expect(without.code).to.equal(1);
      expect(without.stderr).to.match(/did not answer: UNAVAILABLE /);
    });
  });
});
