import { expect } from 'chai';
import { MessageType } from '../../generated/chat/v1/chat.js';
import { chatApi } from '../support/chat-api.js';
import { expectInvariants, stage } from './invariants.js';
import { RestartableServer } from './restartable.js';
import { testClient } from '../support/servers.js';

const visitorMessage = (id: string, dataOffset: number) => ({ id, dataOffset, content: `text of ${id}`, messageType: MessageType.MESSAGE_TYPE_VISITOR, sendTime: new Date(1_000 * dataOffset) });

/** The checker the scenarios rely on must be able to fail: each broken invariant is caught. */
describe('the scenario invariant checker', function () {
  this.timeout(20_000);
  const { cast, servers } = stage();

  const upload = async (server: RestartableServer, chatId: string, messages: ReturnType<typeof visitorMessage>[]) => {
    const client = testClient(server.address);
    try {
      await chatApi(client).rebuild({ chat: { id: chatId, messages } });
    } finally {
      client.close();
    }
  };
  const failure = (check: Promise<unknown>) => check.then(() => expect.fail('the invariants were said to hold'), (e: Error) => e.message);

  it('passes a chat whose copies equal the server, and fails one that lost a delivered message, holds a gap, or differs', async () => {
    const [a, b] = await Promise.all([RestartableServer.start('A'), RestartableServer.start('B')]);
    servers.push(a, b);
    const chatId = 'checked';
    const visitor = await cast.open('visitor', { kind: 'visitor', visitorId: 'vis-1' }, [a.address], { chatId });
    await visitor.send('v1');
    await visitor.send('v2');
    await expectInvariants(a.address, chatId, [visitor]);

    await upload(b, chatId, [visitorMessage('v1', 1)]);
    expect(await failure(expectInvariants(b.address, chatId, [visitor]))).to.match(/^durability/);

    await upload(b, chatId, [visitorMessage('v3', 3)]); // v3 sits beyond a gap at 2
    expect(await failure(expectInvariants(b.address, chatId, [visitor]))).to.match(/^density/);

    await upload(a, chatId, [visitorMessage('v3', 3)]); // A holds a message the copy lacks
    expect(await failure(expectInvariants(a.address, chatId, [visitor]))).to.match(/^convergence/);
  });

  it('fails when a device\'s messages sit out of its send order', async () => {
    const server = await RestartableServer.start('A');
    servers.push(server);
    const chatId = 'ordered';
    const phone = await cast.open('phone', { kind: 'visitor', visitorId: 'vis-1' }, [server.address], { chatId });
    await phone.send('first');
    await phone.send('second');
    phone.sent.reverse(); // as if the device had sent them the other way round
    expect(await failure(expectInvariants(server.address, chatId, [phone]))).to.match(/^sender order/);
  });
});
