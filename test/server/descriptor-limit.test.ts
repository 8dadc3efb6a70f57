import { execFileSync } from 'node:child_process';
import { Metadata, type ServiceError } from '@grpc/grpc-js';
import { expect } from 'chai';
import { ChatServiceClient, GetNewMessageRequest, type GetNewMessageResponse } from '../../generated/chat/v1/chat.js';
import { connectionCapFor, DEFAULT_CONFIG, loadConfig, usage, withDerivedBudgets } from '../../src/server/config.js';
import { openFilesLimit, parseOpenFilesLimit } from '../../src/server/connection-cap.js';
import { RawConnection } from '../support/raw-http2.js';
import { type ServerProcess, spawnServer, testClient } from '../support/servers.js';
import { describeSettlement, settleWithin } from '../support/settle.js';

/** The descriptor limit of the reported run, and more idle connections than it allows. */
const OPEN_FILES = 256;
const IDLE_CONNECTIONS = 300;

/** /proc/self/limits of a Linux process under `ulimit -n` 1024 (hard limit 4096), cut to a few rows. */
const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max stack size            8388608              unlimited            bytes
Max processes             96365                96365                processes
Max open files            1024                 4096                 files
Max locked memory         8388608              8388608              bytes
`;

describe('the connection cap derived from the open-file limit', () => {
  it('reads the soft "Max open files" of /proc/self/limits, and nothing from text without one', () => {
    expect(parseOpenFilesLimit(LIMITS)).to.equal(1024);
    expect(parseOpenFilesLimit(LIMITS.replace('1024 ', 'unlimited'))).to.equal(undefined);
    expect(parseOpenFilesLimit(LIMITS.replace(/^Max open files.*$/m, ''))).to.equal(undefined);
    expect(parseOpenFilesLimit('')).to.equal(undefined);
  });

  it("reads this process's own limit, as the shell reports it", () => {
    const soft = Number(execFileSync('bash', ['-c', 'ulimit -Sn'], { encoding: 'utf8' }));
    expect(openFilesLimit()).to.equal(soft);
  });

  it('leaves the larger of 32 descriptors and an eighth of the limit to the rest of the process', () => {
    expect(connectionCapFor(256)).to.equal(224);
    expect(connectionCapFor(1024)).to.equal(896);
    expect(connectionCapFor(65_536)).to.equal(57_344);
    expect(connectionCapFor(20)).to.equal(1);
    expect(connectionCapFor(undefined), 'the limit unknown').to.equal(20_000);
  });

  it('derives the cap at start-up when it is 0 (the default), and keeps one given', () => {
    expect(DEFAULT_CONFIG.maxConnections).to.equal(0);
    expect(withDerivedBudgets(DEFAULT_CONFIG, 1_000_000, 1024).maxConnections).to.equal(896);
    expect(withDerivedBudgets(DEFAULT_CONFIG, 1_000_000).maxConnections, 'the limit unknown').to.equal(20_000);
    expect(withDerivedBudgets(loadConfig(['--max-connections', '5000'], {}), 1_000_000, 1024).maxConnections).to.equal(5000);
    expect(usage()).to.match(/--max-connections \(MAX_CONNECTIONS\), default 0 \(the open-file limit less the larger of 32 and an eighth of it; 20000 where the limit is unknown\)/);
  });
});

describe(`a server with ${OPEN_FILES} descriptors, against ${IDLE_CONNECTIONS} idle connections`, function () {
  this.timeout(30_000);
  let server: ServerProcess | undefined;
  const raws: RawConnection[] = [];
  let client: ChatServiceClient | undefined;

  afterEach(async () => {
    for (const connection of raws.splice(0)) connection.close();
    client?.close();
    await server?.kill();
  });

  it('still serves a new client: idle connections make room instead of exhausting the descriptors', async () => {
    server = await spawnServer({}, { openFilesLimit: OPEN_FILES });
    const listening = server.logs.find((l) => l.msg === 'chat server listening')!;
    expect((listening.config as { maxConnections: number }).maxConnections, 'the cap in effect, in the start-up log').to.equal(connectionCapFor(OPEN_FILES));
    // Connections that answer pings (node's HTTP/2 stack does by itself) and send nothing.
    for (let i = 0; i < IDLE_CONNECTIONS; i += 1) raws.push(RawConnection.open(server.address));
    const answered = await settleWithin(Promise.all(raws.map((c) => Promise.race([c.accepted(), c.closed]))), 10_000);
    expect(answered.state, `every idle connection accepted or closed: ${describeSettlement(answered)}`).to.equal('resolved');

    client = testClient(server.address);
    const request = GetNewMessageRequest.fromPartial({ chatId: 'c' });
    const call = new Promise<GetNewMessageResponse>((resolve, reject) =>
      client!.getNewMessage(request, new Metadata(), { deadline: Date.now() + 5_000 }, (error: ServiceError | null, response) => (error ? reject(error) : resolve(response))),
    );
    const served = await settleWithin(call, 6_000);
    expect(served.state, `GetNewMessage from a new client ${describeSettlement(served)}`).to.equal('resolved');
    expect(server.child.exitCode, `the server exited: ${server.stderr()}`).to.equal(null);
    expect(server.child.signalCode).to.equal(null);
    expect(server.logs.some((l) => l.msg === 'closed idle connections to make room: the server holds its maximum'), 'the idle closes logged').to.equal(true);
  });
});
