import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { credentials } from '@grpc/grpc-js';
import { expect } from 'chai';
import { ChatServiceClient, ResultCode } from '../../generated/chat/v1/chat.js';
import { chatApi } from '../support/chat-api.js';
import { spawnServer, type ServerProcess } from '../support/servers.js';

const MAIN = fileURLToPath(new URL('../../dist/src/server/main.js', import.meta.url));

describe('the server process', () => {
  let server: ServerProcess | undefined;
  afterEach(async () => server?.kill());

  it('logs its effective configuration once, serves, and stops cleanly on SIGTERM', async () => {
    server = await spawnServer({ MAX_CONTENT_BYTES: '1000' });
    const started = server.logs.filter((l) => l.msg === 'chat server listening');
    expect(started).to.have.length(1);
    expect(started[0]!.config).to.include({ host: '127.0.0.1', maxContentBytes: 1000 });

    const client = new ChatServiceClient(server.address, credentials.createInsecure());
    const read = await chatApi(client).getNewMessage({ chatId: 'p', visitorOffset: 0, agentOffset: 0 });
    expect(read.code).to.equal(ResultCode.RESULT_CODE_REBUILD_REQUIRED);
    client.close();

    expect(await server.terminate()).to.equal(0);
    expect(server.logs.map((l) => l.msg)).to.include.members(['shutting down', 'stopped']);
  });

  it('listens on the PORT it is given', async () => {
    const probe = await spawnServer();
    const port = probe.port;
    await probe.kill();
    server = await spawnServer({ PORT: String(port) });
    expect(server.port).to.equal(port);
  });

  it('exits with status 2 and says why when a setting is wrong', () => {
    const run = spawnSync(process.execPath, [MAIN, '--port', 'eighty'], { encoding: 'utf8' });
    expect(run.status).to.equal(2);
    expect(run.stderr).to.contain('port (PORT) must be a whole number >= 0; got "eighty"');
    expect(run.stderr).to.contain('--max-content-bytes');
  });
});
