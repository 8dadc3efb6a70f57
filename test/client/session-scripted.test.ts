import { Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { expect } from 'chai';
import { type ChatMessage, MessageType, ResultCode, type WatchChatResponse } from '../../generated/chat/v1/chat.js';
import { ChatSdkError, ChatSession, type ChatSessionOptions, MemoryStore, type RetryEvent } from '../../src/client/index.js';
import type { ChatMethod, RequestOf, ResponseOf, Transport } from '../../src/client/transport.js';
import { seeded } from '../support/random.js';

/** Answers each call with the next scripted step; records what was sent. */
class ScriptedTransport implements Transport {
  readonly address = 'scripted';
  readonly sent: { method: ChatMethod; request: unknown }[] = [];
  failovers = 0;

  constructor(private readonly steps: ((method: ChatMethod, request: unknown) => unknown)[]) {}

  async call<M extends ChatMethod>(method: M, request: RequestOf<M>): Promise<ResponseOf<M>> {
    this.sent.push({ method, request });
    const step = this.steps.shift();
    if (!step) throw new Error(`no step scripted for call ${this.sent.length} (${method})`);
    return step(method, request) as ResponseOf<M>;
  }

  failover(): void {
    this.failovers += 1;
  }

  close(): void {}
}

/** A failed call as grpc-js reports it, with `trailers` as its metadata. */
function serviceError(code: status, details: string, trailers: Record<string, string> = {}): ServiceError {
  const metadata = new Metadata();
  for (const [key, value] of Object.entries(trailers)) metadata.set(key, value);
  return Object.assign(new Error(`${code} ${status[code]}: ${details}`), { code, details, metadata });
}

/** A step that refuses the call for now, the server saying to come back in `pushback` ms. */
const pushedBack = (pushback: string) => () => {
  throw serviceError(status.RESOURCE_EXHAUSTED, `this server is admitting rebuild uploads at 1000 bytes/s (--rebuild-bytes-per-second); retry in ${pushback} ms`, {
    'grpc-retry-pushback-ms': pushback,
  });
};

const OK = ResultCode.RESULT_CODE_OK;
const REBUILD = ResultCode.RESULT_CODE_REBUILD_REQUIRED;
const message = (id: string, dataOffset: number, messageType = MessageType.MESSAGE_TYPE_AGENT): ChatMessage => ({
  id, dataOffset, content: `text of ${id}`, messageType, sendTime: new Date(Date.UTC(2026, 0, 1) + dataOffset * 1000), senderId: 'a', attachments: [],
});
const upToDate = () => ({ code: OK, visitorDataOffset: 0, agentDataOffset: 0, messages: [], epoch: 'e1' });
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

  it('retries a call the server pushed back at the same address, after the pushback plus jitter from `random`, however many servers it has', async () => {
    const transport = new ScriptedTransport([pushedBack('120'), pushedBack('120'), pushedBack('120'), upToDate]);
    const slept: number[] = [];
    const session = await open(transport, { servers: ['scripted', 'another'], random: () => 0.5, sleep: async (ms) => void slept.push(ms) });
    const retries: RetryEvent[] = [];
    session.on('retry', (event) => retries.push(event));
    await session.sync();
    // 120 ms and half the backoff ceiling, which grows while the server keeps pushing back (50, 100, 200 ms).
    expect(slept).to.deep.equal([145, 170, 220]);
    expect(retries.map(({ address, attempt, delayMs, pushbackMs }) => ({ address, attempt, delayMs, pushbackMs }))).to.deep.equal([
      { address: 'scripted', attempt: 0, delayMs: 145, pushbackMs: 120 },
      { address: 'scripted', attempt: 1, delayMs: 170, pushbackMs: 120 },
      { address: 'scripted', attempt: 2, delayMs: 220, pushbackMs: 120 },
    ]);
    expect(transport.failovers, 'a pushback is no reason to leave the server').to.equal(0);
    expect(transport.sent.map((c) => c.method)).to.deep.equal(['getNewMessage', 'getNewMessage', 'getNewMessage', 'getNewMessage']);
    await session.close();
  });

  it('takes a pushback that is negative or not a whole number as none (gRPC A6): a limit, refused once every server said so', async () => {
    for (const pushback of ['-1', 'soon', '1.5', '']) {
      const transport = new ScriptedTransport([pushedBack(pushback)]);
      const slept: number[] = [];
      const session = await open(transport, { sleep: async (ms) => void slept.push(ms) });
      const error = await session.sync().catch((e: unknown) => e);
      expect(error, pushback).to.be.instanceOf(ChatSdkError).and.include({ kind: 'rejected', code: status.RESOURCE_EXHAUSTED });
      expect(slept, pushback).to.deep.equal([]);
      await session.close();
    }
  });

  it('waits at most 30 s for a pushback, and stops waiting when the caller aborts', async () => {
    const transport = new ScriptedTransport([pushedBack('3600000'), upToDate]);
    const stop = new AbortController();
    const slept: number[] = [];
    const session = await open(transport, {
      random: () => 0,
      sleep: async (ms) => {
        slept.push(ms);
        stop.abort();
        throw new Error('the sleep was cut short');
      },
    });
    const error = await session.sync({ signal: stop.signal }).catch((e: unknown) => e);
    expect(error).to.be.instanceOf(ChatSdkError).and.include({ kind: 'aborted' });
    expect(slept).to.deep.equal([30_000]);
    expect(transport.sent).to.have.length(1);
    await session.close();
  });
});

/** Answers every read up to date, and breaks every watch as a dead server would. */
class BreakingWatchTransport implements Transport {
  readonly address = 'breaking';
  watches = 0;

  async call<M extends ChatMethod>(): Promise<ResponseOf<M>> {
    return upToDate() as ResponseOf<M>;
  }

  async *watch(): AsyncIterable<WatchChatResponse> {
    this.watches += 1;
    throw serviceError(status.UNAVAILABLE, 'Connection dropped');
  }

  failover(): void {}
  close(): void {}
}

describe('ChatSession watching through a transport whose watches break', () => {
  const rewatchDelays = async (options: Partial<ChatSessionOptions>, draws: readonly number[]) => {
    const transport = new BreakingWatchTransport();
    const slept: number[] = [];
    let drawn = 0;
    let session: ChatSession | undefined;
    const done = new Promise<void>((resolve) => {
      const sleep = async (ms: number) => {
        slept.push(ms);
        if (slept.length === draws.length) resolve();
      };
      void ChatSession.open({ chatId: 'c', role: { kind: 'visitor' }, servers: [transport.address], transport, random: () => draws[drawn++ % draws.length]!, sleep, ...options }).then((opened) => {
        session = opened;
        opened.start();
      });
    });
    await done;
    await session!.close();
    expect(transport.watches).to.be.at.least(draws.length);
    return slept;
  };

  it('waits a jittered time before each re-watch, drawn from `random` over half the backoff cap and then all of it', async () => {
    // The default backoff caps at 2 s: ceilings of 1 s, then 2 s.
    expect(await rewatchDelays({}, [0.25, 0.5, 0.75, 0.999_999])).to.deep.equal([250, 1000, 1500, 1999]);
    expect(await rewatchDelays({ backoff: { initialMs: 5, maxMs: 50 } }, [0.5, 0.5, 0.999_999])).to.deep.equal([12, 25, 49]);
  });

  it('spreads the watchers of a server that died over the first second, where they would have come back within 50 ms', async () => {
    const firsts = await Promise.all(Array.from({ length: 100 }, async (_, i) => (await rewatchDelays({}, [seeded(i + 1)()]))[0]!));
    expect(Math.max(...firsts)).to.be.below(1000);
    const perMillisecond = new Map<number, number>();
    for (const ms of firsts) perMillisecond.set(ms, (perMillisecond.get(ms) ?? 0) + 1);
    expect(Math.max(...perMillisecond.values()), 'watchers coming back in one millisecond').to.be.at.most(2);
    expect(firsts.filter((ms) => ms >= 50), 'most wait longer than the first call backoff').to.have.length.above(90);
  });
});
