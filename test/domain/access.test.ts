import { expect } from 'chai';
import { agentSender, authoriseUpload, INSECURE, type Principal, requireChatAccess, visitorSender } from '../../src/domain/access.js';
import type { ChatCopy } from '../../src/domain/chat.js';
import { ChatError } from '../../src/domain/errors.js';
import { MessageType } from '../../src/domain/message.js';

const visitor: Principal = { sub: 'v1', role: 'visitor', chatId: 'c1' };
const agent: Principal = { sub: 'a1', role: 'agent' };
const service: Principal = { sub: 'bot', role: 'service' };

function deniedWith(run: () => unknown, message: string): void {
  expect(run).to.throw(ChatError, message).with.property('kind', 'permission-denied');
}

const copy = (visitorId: string | undefined): ChatCopy => ({
  id: 'c1',
  epoch: '',
  visitor: visitorId === undefined ? undefined : { id: visitorId, name: 'Vi', email: 'vi@example.com' },
  beginTime: undefined,
  messages: [],
});

describe('access rules', () => {
  it('keeps a visitor to its own chat; agents and services reach any', () => {
    requireChatAccess(visitor, 'c1');
    requireChatAccess(agent, 'c2');
    requireChatAccess(service, 'c2');
    requireChatAccess(INSECURE, 'c2');
    deniedWith(() => requireChatAccess(visitor, 'c2'), 'a visitor token for chat "c1" cannot touch chat "c2"');
  });

  it('lets only the chat visitor send visitor messages, as its subject', () => {
    expect(visitorSender(visitor, 'c1', '')).to.equal('v1');
    expect(visitorSender(visitor, 'c1', 'v1')).to.equal('v1');
    expect(visitorSender(INSECURE, 'c1', 'anyone')).to.equal('anyone');
    deniedWith(() => visitorSender(visitor, 'c1', 'admin'), 'message.sender_id "admin" is not the token\'s subject "v1"');
    deniedWith(() => visitorSender(visitor, 'c2', ''), 'cannot touch chat "c2"');
    deniedWith(() => visitorSender(agent, 'c1', ''), 'an agent token cannot send visitor messages');
    deniedWith(() => visitorSender(service, 'c1', ''), 'a service token cannot send visitor messages');
  });

  it('lets an agent post AGENT messages and a service BOT or SYSTEM ones, as their subjects', () => {
    expect(agentSender(agent, 'c1', '', undefined)).to.equal('a1');
    expect(agentSender(agent, 'c1', 'a1', MessageType.Agent)).to.equal('a1');
    expect(agentSender(service, 'c1', '', MessageType.Bot)).to.equal('bot');
    expect(agentSender(service, 'c1', 'bot', MessageType.System)).to.equal('bot');
    expect(agentSender(INSECURE, 'c1', 'x', MessageType.Agent)).to.equal('x');
    deniedWith(() => agentSender(agent, 'c1', 'a2', undefined), 'agent_id "a2" is not the token\'s subject "a1"');
    deniedWith(() => agentSender(agent, 'c1', '', MessageType.Bot), 'an agent token posts MESSAGE_TYPE_AGENT messages; got MESSAGE_TYPE_BOT');
    deniedWith(() => agentSender(service, 'c1', '', MessageType.Agent), 'a service token posts MESSAGE_TYPE_BOT or _SYSTEM messages; got MESSAGE_TYPE_AGENT');
    deniedWith(() => agentSender(service, 'c1', '', undefined), 'got MESSAGE_TYPE_AGENT (what an unset message_type means)');
    deniedWith(() => agentSender(visitor, 'c1', '', MessageType.Agent), 'a visitor token cannot post on the agent side');
  });

  it('leaves a type that names none to the store (INVALID_ARGUMENT there)', () => {
    expect(agentSender(agent, 'c1', '', 9)).to.equal('a1');
  });

  it("takes a chat's visitor details from its visitor (as its subject) and from services, and drops an agent's", () => {
    expect(authoriseUpload(visitor, copy('v1')).visitor?.id).to.equal('v1');
    expect(authoriseUpload(visitor, copy('')).visitor).to.deep.equal({ id: 'v1', name: 'Vi', email: 'vi@example.com' });
    expect(authoriseUpload(service, copy('someone')).visitor?.id).to.equal('someone');
    expect(authoriseUpload(agent, copy('admin')).visitor).to.equal(undefined);
    expect(authoriseUpload(INSECURE, copy('admin')).visitor?.id).to.equal('admin');
    deniedWith(() => authoriseUpload(visitor, copy('admin')), 'the upload names visitor "admin", but the token\'s subject is visitor "v1"');
    deniedWith(() => authoriseUpload({ ...visitor, chatId: 'c2' }, copy(undefined)), 'a visitor token for chat "c2" cannot touch chat "c1"');
  });
});
