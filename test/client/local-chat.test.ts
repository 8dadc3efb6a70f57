import { expect } from 'chai';
import { type ChatMessage, MessageType } from '../../generated/chat/v1/chat.js';
import { LocalChat } from '../../src/client/local-chat.js';
import { MemoryStore } from '../../src/client/local-store.js';

const visitorMsg = (id: string, dataOffset: number): ChatMessage => ({
  id, dataOffset, content: id, messageType: MessageType.MESSAGE_TYPE_VISITOR, sendTime: new Date(Date.UTC(2026, 0, 1) + dataOffset * 1000), senderId: 'v', attachments: [],
});

function localChat(saved?: { messages: ChatMessage[]; epoch?: string }) {
  const announced: string[] = [];
  const epochs: string[] = [];
  const chat = new LocalChat('c', new MemoryStore(), true, saved && { chatId: 'c', outbox: [], ...saved }, undefined, {
    message: (m) => announced.push(m.id),
    epoch: (e) => epochs.push(e),
  });
  return { chat, announced, epochs };
}

describe('LocalChat: where placements may come from', () => {
  it('takes the first epoch it is given while it holds nothing, then only answers of that incarnation', () => {
    const { chat } = localChat();
    expect(chat.take([visitorMsg('m1', 1)], 'E1')).to.deep.equal([visitorMsg('m1', 1)]);
    expect(chat.epoch).to.equal('E1');
    // A stream still open on another incarnation pushes its offset 2: another history's numbering.
    expect(chat.take([visitorMsg('other', 2)], 'E2'), 'refused').to.equal(undefined);
    expect(chat.copy.conversation().map((m) => m.id)).to.deep.equal(['m1']);
    expect(chat.take([visitorMsg('m2', 2)], 'E1')).to.have.length(1);
    expect(chat.offsets).to.deep.equal({ visitor: 2, agent: 0 });
  });

  it('refuses every placement into an unverified copy (messages but no epoch) until a whole upload is adopted', () => {
    const { chat, epochs } = localChat({ messages: [visitorMsg('old', 1)] });
    expect(chat.unverified).to.equal(true);
    expect(chat.take([visitorMsg('x', 1)], 'E1')).to.equal(undefined);
    expect(chat.adopt([visitorMsg('x', 1), visitorMsg('old', 2)], 'E1')).to.deep.equal([visitorMsg('x', 1)]);
    expect(chat.unverified).to.equal(false);
    expect(chat.epoch).to.equal('E1');
    expect(epochs, 'learning a first epoch is not a change of incarnation').to.deep.equal([]);
  });

  it('reports a change of incarnation when it adopts another one, and from then on refuses the old one', () => {
    const { chat, epochs } = localChat();
    chat.take([visitorMsg('m1', 1)], 'E1');
    chat.adopt([visitorMsg('y', 1), visitorMsg('m1', 2)], 'E2');
    expect(epochs).to.deep.equal(['E2']);
    expect(chat.take([visitorMsg('late-push', 2)], 'E1'), 'a late push of E1').to.equal(undefined);
    expect(chat.copy.conversation().map((m) => `${m.id}@${m.dataOffset}`)).to.deep.equal(['y@1', 'm1@2']);
  });

  it('announces only after saving', async () => {
    const { chat, announced } = localChat();
    const fresh = chat.take([visitorMsg('m1', 1)], 'E1')!;
    const saving = chat.announce(fresh);
    expect(announced, 'not before the save').to.deep.equal([]);
    await saving;
    expect(announced).to.deep.equal(['m1']);
  });
});
