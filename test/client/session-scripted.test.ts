import { expect } from 'chai';
import { type ChatMessage, MessageType, ResultCode } from '../../generated/chat/v1/chat.js';
import { ChatSdkError, ChatSession, type ChatSessionOptions, MemoryStore } from '../../src/client/index.js';
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

  it('sends each later part of a whole copy as extending the incarnation the first part reached, and adopts nothing when one is refused', async () => {
    const store = new MemoryStore();
    const mine = [message('v1', 1, MessageType.MESSAGE_TYPE_VISITOR), message('v2', 2, MessageType.MESSAGE_TYPE_VISITOR)];
    await store.save({ chatId: 'c', messages: mine, outbox: [], epoch: 'old' });
    const visitorChat = (epoch: string) => ({ ...chat(mine, epoch, 0), visitorDataOffset: 2 });
    const transport = new ScriptedTransport([
      () => ({ code: REBUILD, visitorDataOffset: 0, agentDataOffset: 0, messages: [], epoch: 'e2' }),
      () => ({ code: OK, chat: { ...visitorChat('e2'), messages: mine.slice(0, 1), visitorDataOffset: 1 }, truncated: false }),
      // e2's server restarted before the second part arrived: an empty incarnation refuses it.
      () => ({ code: REBUILD, chat: { ...chat([], ''), visitorDataOffset: -1, agentDataOffset: -1 }, truncated: false }),
      () => ({ code: REBUILD, visitorDataOffset: -1, agentDataOffset: -1, messages: [], epoch: 'e3' }),
      () => ({ code: OK, chat: { ...visitorChat('e3'), messages: mine.slice(0, 1), visitorDataOffset: 1 }, truncated: false }),
      () => ({ code: OK, chat: visitorChat('e3'), truncated: false }),
      () => ({ code: OK, visitorDataOffset: 2, agentDataOffset: 0, messages: [], epoch: 'e3' }),
    ]);
    const session = await open(transport, { store, maxUploadBytes: 1024 + 60 });
    await session.sync();
    const calls = transport.sent.map(({ method, request }) => {
      const epoch = method === 'rebuild' ? (request as { chat: { epoch: string } }).chat.epoch : (request as { epoch: string }).epoch;
      return `${method} ${epoch || '(none)'}`;
    });
    expect(calls).to.deep.equal([
      'getNewMessage old',
      'rebuild (none)', // a whole copy's first part merges anywhere
      'rebuild e2', // the second extends what the first reached
      'getNewMessage old', // refused: nothing adopted, the copy still refers to its old epoch
      'rebuild (none)',
      'rebuild e3',
      'getNewMessage e3',
    ]);
    expect(session.messages.map((m) => `${m.id}@${m.dataOffset}`)).to.deep.equal(['v1@1', 'v2@2']);
    await session.close();
  });

  it('after a whole upload too large for one answer, reads the whole chat before taking any placement from it', async () => {
    const store = new MemoryStore();
    const mine = [message('v1', 1, MessageType.MESSAGE_TYPE_VISITOR), message('v2', 2, MessageType.MESSAGE_TYPE_VISITOR)];
    await store.save({ chatId: 'c', messages: mine, outbox: [], epoch: 'old' });
    const stop = new AbortController();
    const x = message('x', 1, MessageType.MESSAGE_TYPE_VISITOR);
    const transport = new ScriptedTransport([
      () => ({ code: REBUILD, visitorDataOffset: 1, agentDataOffset: 0, messages: [], epoch: 'e2' }),
      // e2 held x at 1 and put v1, v2 after it; the answer holds only its first page.
      () => ({ code: OK, chat: { ...chat([x], 'e2', 0), visitorDataOffset: 3 }, truncated: true }),
      () => ({ code: OK, visitorDataOffset: 3, agentDataOffset: 0, messages: [x, { ...mine[0]!, dataOffset: 2 }], epoch: 'e2' }),
      () => {
        stop.abort();
        throw new ChatSdkError('aborted', 'the caller stopped waiting');
      },
      () => ({ code: REBUILD, visitorDataOffset: 3, agentDataOffset: 0, messages: [], epoch: 'e2' }),
      () => ({ code: OK, chat: { ...chat([x], 'e2', 0), visitorDataOffset: 3 }, truncated: true }),
      () => ({ code: OK, visitorDataOffset: 3, agentDataOffset: 0, messages: [x, { ...mine[0]!, dataOffset: 2 }], epoch: 'e2' }),
      () => ({ code: OK, visitorDataOffset: 3, agentDataOffset: 0, messages: [{ ...mine[1]!, dataOffset: 3 }], epoch: 'e2' }),
      () => ({ code: OK, visitorDataOffset: 3, agentDataOffset: 0, messages: [], epoch: 'e2' }),
      () => ({ code: OK, visitorDataOffset: 3, agentDataOffset: 0, messages: [], epoch: 'e2' }),
    ]);
    const session = await open(transport, { store });
    const held = () => session.messages.map((m) => `${m.id}@${m.dataOffset}`);

    const error = await session.sync({ signal: stop.signal }).catch((e: unknown) => e);
    expect(error).to.be.instanceOf(ChatSdkError).and.include({ kind: 'aborted' });
    // Half a view taken would hold x@1 and v1@2 with v2 unplaced: v2 would then go up after
    // whatever the copy places next. The copy keeps its old placement until it has the whole view.
    expect(held()).to.deep.equal(['v1@1', 'v2@2']);

    await session.sync();
    expect(held()).to.deep.equal(['x@1', 'v1@2', 'v2@3']);
    const epochs = transport.sent.map(({ method, request }) =>
      method === 'rebuild' ? 'rebuild' : `${method} ${(request as { epoch: string }).epoch} from ${(request as { visitorOffset: number }).visitorOffset}`,
    );
    expect(epochs).to.deep.equal([
      'getNewMessage old from 2',
      'rebuild',
      'getNewMessage e2 from 0',
      'getNewMessage e2 from 2',
      'getNewMessage old from 2', // nothing adopted: still the old epoch
      'rebuild',
      'getNewMessage e2 from 0',
      'getNewMessage e2 from 2',
      'getNewMessage e2 from 3',
      'getNewMessage e2 from 3',
    ]);
    await session.close();
  });
});

