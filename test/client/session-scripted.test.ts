import { expect } from 'chai';
import { type ChatMessage, MessageType, ResultCode } from '../../generated/chat/v1/chat.js';
import { ChatSdkError, ChatSession, type ChatSessionOptions } from '../../src/client/index.js';
import type { ChatMethod, RequestOf, ResponseOf, Transport } from '../../src/client/transport.js';

/** Answers each call with the next scripted step; records what was sent. */
class ScriptedTransport implements Transport {
  readonly address = 'scripted';
  readonly sent: { method: ChatMethod; request: unknown }[] = [];

  constructor(private readonly steps: ((method: ChatMethod, request: unknown) => unknown)[]) {}

  async call<M extends ChatMethod>(method: M, request: RequestOf<M>): Promise<ResponseOf<M>> {
    this.sent.push({ method, request });
    const step = this.steps.shift();
    if (!step) throw new Error(`no step scripted for call ${this.sent.length} (${method})`);
    return step(method, request) as ResponseOf<M>;
  }

  failover(): void {}
  close(): void {}
}

const OK = ResultCode.RESULT_CODE_OK;
const REBUILD = ResultCode.RESULT_CODE_REBUILD_REQUIRED;
const message = (id: string, dataOffset: number, messageType = MessageType.MESSAGE_TYPE_AGENT): ChatMessage => ({
  id, dataOffset, content: `text of ${id}`, messageType, sendTime: new Date(Date.UTC(2026, 0, 1) + dataOffset * 1000), senderId: 'a',
});
const chat = (messages: ChatMessage[], epoch: string, agent = messages.length) => ({
  id: 'c', visitorDataOffset: 0, agentDataOffset: agent, messages, visitor: undefined, beginTime: undefined, epoch,
});

function open(transport: Transport, options: Partial<ChatSessionOptions> = {}): Promise<ChatSession> {
  return ChatSession.open({ chatId: 'c', role: { kind: 'visitor' }, servers: [transport.address], transport, sleep: async () => {}, ...options });
}

describe('ChatSession with a scripted transport', () => {
  it('announces what a rebuild brought in even when the rest of that sync is aborted', async () => {
    const stop = new AbortController();
    const transport = new ScriptedTransport([
      () => ({ code: REBUILD, visitorDataOffset: -1, agentDataOffset: -1, messages: [], epoch: 'e1' }),
      () => ({ code: OK, chat: chat([message('a1', 1)], 'e1'), truncated: false }),
      () => {
        stop.abort();
        throw new ChatSdkError('aborted', 'the caller stopped waiting');
      },
    ]);
    const session = await open(transport);
    const announced: string[] = [];
    session.on('message', (m) => announced.push(m.id));

    const error = await session.sync({ signal: stop.signal }).catch((e: unknown) => e);
    expect(error).to.be.instanceOf(ChatSdkError).and.include({ kind: 'aborted' });
    expect(session.messages.map((m) => m.id)).to.deep.equal(['a1']);
    expect(announced).to.deep.equal(['a1']);
    await session.close();
  });
});
