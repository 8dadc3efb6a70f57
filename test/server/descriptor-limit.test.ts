import { credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { expect } from 'chai';
import { ChatServiceClient, GetNewMessageRequest, type GetNewMessageResponse } from '../../generated/chat/v1/chat.js';
import { RawConnection } from '../support/raw-http2.js';
import { type ServerProcess, spawnServer } from '../support/servers.js';
import { describeSettlement, settleWithin } from '../support/settle.js';

/** The descriptor limit of the reported run, and more idle connections than it allows. */
const OPEN_FILES = 256;
const IDLE_CONNECTIONS = 300;

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
    // Connections that answer pings (node's HTTP/2 stack does by itself) and send nothing.
    for (let i = 0; i < IDLE_CONNECTIONS; i += 1) raws.push(RawConnection.open(server.address));
    const answered = await settleWithin(Promise.all(raws.map((c) => Promise.race([c.accepted(), c.closed]))), 10_000);
    expect(answered.state, `every idle connection accepted or closed: ${describeSettlement(answered)}`).to.equal('resolved');

    client = new ChatServiceClient(server.address, credentials.createInsecure());
    const request = GetNewMessageRequest.fromPartial({ chatId: 'c' });
    const call = new Promise<GetNewMessageResponse>((resolve, reject) =>
      client!.getNewMessage(request, new Metadata(), { deadline: Date.now() + 5_000 }, (error: ServiceError | null, response) => (error ? reject(error) : resolve(response))),
    );
    const served = await settleWithin(call, 6_000);
    expect(served.state, `GetNewMessage from a new client ${describeSettlement(served)}`).to.equal('resolved');
    expect(server.child.exitCode, `the server exited: ${server.stderr()}`).to.equal(null);
    expect(server.child.signalCode).to.equal(null);
  });
});
