import { randomUUID } from 'node:crypto';
import { EventEmitter, on } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import {
  type Chat,
  type ChatMessage,
  type GetNewMessageResponse,
  MessageType,
  ResultCode,
  type Visitor,
} from '../../generated/chat/v1/chat.js';
import { RetryingCaller } from './caller.js';
import { type ServiceError, status } from '@grpc/grpc-js';
import { ChatSdkError, isTransient, rejected } from './errors.js';
import { type ClientOffsets, LocalCopy } from './local-copy.js';
import { type LocalStore, MemoryStore, type PendingMessage } from './local-store.js';
import type { ChatSessionEvents, ChatSessionOptions } from './options.js';
import { ChatTransport, type Transport } from './transport.js';
import { splitUploads } from './upload.js';

const REBUILD = ResultCode.RESULT_CODE_REBUILD_REQUIRED;

/**
 * One chat in one role: keeps the local copy, sends through an ordered outbox (same id on every
 * retry, resend until success, rebuild when the server asks), reads and pages new messages,
 * and fails over across servers. Operations run one at a time, in call order.
 */
export class ChatSession extends EventEmitter<ChatSessionEvents> {
  private readonly transport: Transport;
  private readonly caller: RetryingCaller;
  private readonly closing = new AbortController();
  private readonly waiters = new Map<string, { resolve(m: ChatMessage): void; reject(e: Error): void }>();
  private queue: Promise<unknown> = Promise.resolve();
  private draining: Promise<void> | undefined;
  private receiving: Promise<void> | undefined;
  /** The copy holds messages but no epoch: it must be checked against a server before use. */
  private unverified: boolean;

  private constructor(
    private readonly options: ChatSessionOptions,
    private readonly store: LocalStore,
    private readonly copy: LocalCopy,
    private outbox: PendingMessage[],
    private visitor: Visitor | undefined,
    private beginTime: Date | undefined,
    /** The server chat incarnation the copy's offsets refer to; undefined until a server says. */
    private epoch: string | undefined,
  ) {
    super();
    this.unverified = this.detects && epoch === undefined && copy.size > 0;
    this.transport = options.transport ?? new ChatTransport(options.servers, options.callTimeoutMs ?? 5_000, options.credentials);
    this.caller = new RetryingCaller(this.transport, options, {
      retry: (event) => this.emit('retry', event),
      connected: (address) => this.emit('connected', address),
    });
    options.signal?.addEventListener('abort', () => void this.close(), { once: true });
  }

  /** Loads the local copy (if the store has one) and resumes any sends left in its outbox. */
  static async open(options: ChatSessionOptions): Promise<ChatSession> {
    const store = options.store ?? new MemoryStore();
    const saved = await store.load(options.chatId);
    const session = new ChatSession(
      options,
      store,
      new LocalCopy(saved?.messages ?? []),
      [...(saved?.outbox ?? [])],
      saved?.visitor ?? options.visitor,
      saved?.beginTime,
      saved?.epoch,
    );
    if (session.outbox.length > 0) session.drain();
    return session;
  }

  get chatId(): string {
    return this.options.chatId;
  }

  /** The messages held, in conversation order. */
  get messages(): ChatMessage[] {
    return this.copy.conversation();
  }

  get offsets(): ClientOffsets {
    return this.copy.offsets;
  }

  /** Sends not yet acknowledged, in order. */
  get pending(): readonly PendingMessage[] {
    return this.outbox;
  }

  /**
   * Sends a message and resolves with it as the server stored it. The message is kept in the
   * outbox (durably, with a durable store) and resent with the same id until a server
   * acknowledges it, so a crash or failover loses and duplicates nothing. Aborting `signal`
   * stops the waiting, not the send: a message that may have reached a server cannot be unsent.
   */
  async send(content: string, options: { readonly signal?: AbortSignal; readonly id?: string } = {}): Promise<ChatMessage> {
    this.ensureOpen();
    const message: PendingMessage = { id: options.id ?? (this.options.newId ?? randomUUID)(), content, messageType: this.messageType() };
    const stored = new Promise<ChatMessage>((resolve, reject) => this.waiters.set(message.id, { resolve, reject }));
    await this.exclusive(async () => {
      this.outbox.push(message);
      await this.persist();
    });
    this.drain();
    return options.signal ? abortable(stored, options.signal) : stored;
  }

  /** Reads until caught up with the server (rebuilding it first if it asks); returns what is new. */
  sync(options: { readonly signal?: AbortSignal } = {}): Promise<ChatMessage[]> {
    this.ensureOpen();
    return this.exclusive(() => this.catchUp(this.signalFor(options.signal)));
  }

  /**
   * Receives in the background until `close()`, new messages arriving as events and through
   * `updates()`: by watching (a WatchChat stream the server pushes to, resumed after it breaks,
   * on another server if need be, with a rebuild when needed), or by polling every
   * `pollIntervalMs` with `receive: 'poll'` or a transport that cannot watch.
   */
  start(): void {
    this.ensureOpen();
    this.receiving ??= this.options.receive !== 'poll' && this.transport.watch ? this.watch() : this.poll();
  }

  /**
   * New messages, from this call on, as an async iterator that ends when `signal` aborts or
   * the session closes. Call it before `start()` or `sync()` to see what they bring.
   */
  updates(options: { readonly signal?: AbortSignal } = {}): AsyncGenerator<ChatMessage> {
    const signal = this.signalFor(options.signal);
    const events = on(this, 'message', { signal }); // listens from this call on, not from the first next()
    return (async function* () {
      try {
        for await (const [message] of events) yield message as ChatMessage;
      } catch (error) {
        if (!signal.aborted) throw error;
      }
    })();
  }

  /** Stops polling and pending waits, and closes the channels. Unsent messages stay in the store. */
  async close(): Promise<void> {
    if (this.closing.signal.aborted) return;
    this.closing.abort(new ChatSdkError('closed', 'the session was closed'));
    for (const waiter of this.waiters.values()) waiter.reject(new ChatSdkError('closed', 'the session was closed before the server acknowledged the message'));
    this.waiters.clear();
    await Promise.allSettled([this.draining, this.receiving, this.queue]);
    this.transport.close();
  }

  /** Catches up (rebuilding if asked), watches from there, and starts over whenever the watch ends or breaks. */
  private async watch(): Promise<void> {
    const signal = this.closing.signal;
    for (let breaks = 0; !signal.aborted; ) {
      try {
        await this.exclusive(() => this.catchUp(signal));
        const stream = this.transport.watch!({ chatId: this.chatId, ...this.offsets, epoch: this.marker }, signal);
        let answered = false;
        for await (const response of stream) {
          answered = true;
          breaks = 0;
          if (response.code === REBUILD) break; // the server's last word: catch up and watch again
          await this.exclusive(() => this.takePushed(response.messages, response.epoch));
        }
        if (!answered) await this.caller.pause(++breaks, signal); // ended at once: do not spin
      } catch (error) {
        if (signal.aborted) return;
        if (error instanceof ChatSdkError) {
          if (error.kind === 'rejected') this.emit('failure', error);
        } else if (!isTransient(error)) {
          this.emit('failure', rejected(error as ServiceError));
        } else if ((error as ServiceError).code !== status.RESOURCE_EXHAUSTED) {
          this.transport.failover(); // the server died or a proxy broke the stream; a cut-off slow watcher just resumes
        }
        await this.caller.pause(++breaks, signal).catch(() => undefined);
      }
    }
  }

  /** Takes pushed messages into the copy, stores and announces the new ones. */
  private async takePushed(messages: readonly ChatMessage[], epoch: string): Promise<void> {
    this.learnEpoch(epoch);
    const fresh = this.copy.take(messages);
    if (fresh.length === 0) return;
    await this.persist();
    for (const message of fresh) this.emit('message', message);
  }

  private async poll(): Promise<void> {
    const signal = this.closing.signal;
    while (!signal.aborted) {
      try {
        await this.exclusive(() => this.catchUp(signal));
      } catch (error) {
        if (error instanceof ChatSdkError && error.kind === 'rejected') this.emit('failure', error);
      }
      await delay(this.options.pollIntervalMs ?? 1_000, undefined, { signal }).catch(() => undefined);
    }
  }

  private drain(): void {
    this.draining ??= (async () => {
      try {
        while (this.outbox.length > 0 && !this.closing.signal.aborted) {
          const next = this.outbox[0]!;
          try {
            const stored = await this.exclusive(() => this.deliver(next));
            this.waiters.get(next.id)?.resolve(stored);
          } catch (error) {
            if (!(error instanceof ChatSdkError)) this.waiters.get(next.id)?.reject(error as Error); // e.g. the store failed
            if (!(error instanceof ChatSdkError) || error.kind !== 'rejected') return;
            await this.exclusive(async () => {
              this.outbox = this.outbox.filter((m) => m.id !== next.id);
              await this.persist();
            });
            this.waiters.get(next.id)?.reject(error);
          } finally {
            this.waiters.delete(next.id);
          }
        }
      } finally {
        this.draining = undefined;
      }
    })();
  }

  /** Sends the outbox's head until a server stores it. */
  private async deliver(pending: PendingMessage): Promise<ChatMessage> {
    const signal = this.closing.signal;
    const message = { id: pending.id, content: pending.content, messageType: pending.messageType, dataOffset: 0, sendTime: undefined, senderId: '' };
    if (this.unverified) await this.catchUp(signal);
    for (let refusals = 0; ; refusals += 1) {
      const { role } = this.options;
      const position = { chatId: this.chatId, ...this.offsets, epoch: this.marker };
      const response =
        role.kind === 'visitor'
          ? await this.caller.call('addVisitorMessage', { ...position, message: { ...message, senderId: role.visitorId ?? '' } }, signal)
          : await this.caller.call('addAgentMessage', { ...position, agentId: role.kind === 'agent' ? role.agentId : role.serviceId, message }, signal);
      if (response.code !== REBUILD && response.message) {
        this.learnEpoch(response.epoch);
        this.outbox = this.outbox.filter((m) => m.id !== pending.id);
        const fresh = this.copy.take([response.message]);
        await this.persist();
        for (const m of fresh) this.emit('message', m);
        return response.message;
      }
      await this.caller.pause(refusals, signal);
      await this.catchUp(signal);
    }
  }

  /** Reads until caught up; rebuilds the server whenever it asks (or when this copy is unverified). */
  private async catchUp(signal: AbortSignal): Promise<ChatMessage[]> {
    const fresh: ChatMessage[] = [];
    try {
      // A copy with messages but no epoch (say, restored from an old backup) may not be any
      // server's history: never let the missing marker skip the check.
      while (this.unverified) fresh.push(...(await this.rebuild({ visitor: -1, agent: -1 }, '', signal)));
      let straysSent = false;
      for (let refusals = 0; ; ) {
        const read: GetNewMessageResponse = await this.caller.call('getNewMessage', { chatId: this.chatId, ...this.offsets, epoch: this.marker }, signal);
        const server = { visitor: read.visitorDataOffset, agent: read.agentDataOffset };
        if (read.code === REBUILD) {
          await this.caller.pause(refusals++, signal);
          fresh.push(...(await this.rebuild(server, read.epoch, signal)));
          continue;
        }
        this.learnEpoch(read.epoch);
        fresh.push(...this.copy.take(read.messages));
        const { visitorOffset, agentOffset } = this.offsets;
        const caughtUp = read.messages.length === 0 || (visitorOffset >= server.visitor && agentOffset >= server.agent);
        if (!caughtUp) continue;
        if (this.copy.strayMessages.length === 0 || straysSent) break;
        // A message of ours lost its offset to another one: have the server place it anew.
        straysSent = true;
        fresh.push(...(await this.rebuild(server, read.epoch, signal)));
      }
    } finally {
      // Even when a later call fails (the caller aborted, say), what the copy took is held now
      // and no later read reports it as new: announce it here or never.
      if (fresh.length > 0) await this.persist();
      for (const message of fresh) this.emit('message', message);
    }
    return fresh;
  }

  /**
   * Uploads what the server lacks, in uploads under the size limit, and adopts the server's
   * order. Under the same epoch the server's history extends this copy's, so only what lies
   * above its offsets goes up (an incremental rebuild). Under another epoch (or none) the
   * histories may differ anywhere: everything goes up, and the copy then takes the server's
   * placement of every message, from the answer when it holds the whole chat, else from
   * reading the whole chat from offset 0 first.
   */
  private async rebuild(server: { visitor: number; agent: number }, serverEpoch: string, signal: AbortSignal): Promise<ChatMessage[]> {
    const maxBytes = this.options.maxUploadBytes ?? 3 * 1024 * 1024;
    const diverged = this.detects && serverEpoch !== (this.epoch ?? '');
    const whole = server.visitor < 0 || diverged;
    const strays = this.copy.strayMessages.length;
    const uploads = splitUploads(whole ? this.copy.whole() : this.copy.above(server), maxBytes);
    let answer: Chat | undefined;
    let complete = false;
    // Every upload but a whole copy's first extends one incarnation. Should it reach another
    // (a failover, a restart in between), the server refuses it: taken there, it would be a
    // piece of history without what comes before it. The next read then says what to do.
    let base = whole || !this.detects ? '' : serverEpoch;
    for (const messages of uploads.length > 0 ? uploads : [[]]) {
      const response = await this.caller.call('rebuild', { chat: this.chatCopy(messages, base) }, signal);
      if (response.code === REBUILD) return [];
      answer = response.chat;
      complete = !response.truncated;
      if (this.detects) base = answer?.epoch ?? '';
    }
    this.visitor ??= answer?.visitor;
    this.beginTime ??= answer?.beginTime;
    // After a whole upload the copy takes the server's placement of every message at once:
    // placing some and keeping the rest where another history put them would mix two
    // numberings, and a later upload would send messages up out of order.
    const view = complete ? answer?.messages : whole ? await this.readAll(answer?.epoch ?? '', signal) : undefined;
    if (whole && !view) return []; // that incarnation is gone: the next read says what to do
    if (this.detects && answer?.epoch) this.epoch = answer.epoch;
    this.unverified = false;
    const fresh = view ? this.copy.adopt(view) : [];
    await this.persist();
    const uploaded = uploads.flat().length;
    const reason = server.visitor < 0 ? 'missing' : diverged ? 'diverged' : uploaded === strays && strays > 0 ? 'strays' : 'behind';
    this.emit('rebuild', { address: this.transport.address, serverBefore: server, reason, uploaded });
    return fresh;
  }

  /**
   * The whole chat as incarnation `epoch` holds it, read page by page from offset 0;
   * undefined when the server no longer holds that incarnation.
   */
  private async readAll(epoch: string, signal: AbortSignal): Promise<ChatMessage[] | undefined> {
    const messages: ChatMessage[] = [];
    const at = { visitorOffset: 0, agentOffset: 0 };
    for (;;) {
      const page = await this.caller.call('getNewMessage', { chatId: this.chatId, ...at, epoch: this.detects ? epoch : '' }, signal);
      if (page.code === REBUILD) return undefined;
      if (page.messages.length === 0) return messages;
      for (const m of page.messages) {
        messages.push(m);
        const side = m.messageType === MessageType.MESSAGE_TYPE_VISITOR ? 'visitorOffset' : 'agentOffset';
        at[side] = Math.max(at[side], m.dataOffset);
      }
    }
  }

  /** Whether this session carries epochs (the default). */
  private get detects(): boolean {
    return this.options.detectDivergence !== false;
  }

  /** The epoch to send: this copy's, or none in offsets-only mode. */
  private get marker(): string {
    return this.detects ? (this.epoch ?? '') : '';
  }

  /** Takes the epoch of an OK answer when the copy has none yet (it is empty or was just checked). */
  private learnEpoch(epoch: string): void {
    if (this.detects && this.epoch === undefined && epoch) this.epoch = epoch;
  }


  /** An upload; `base` is the incarnation it extends, empty for (the first part of) a whole copy. */
  private chatCopy(messages: ChatMessage[], base: string): Chat {
    const { visitorOffset, agentOffset } = this.offsets;
    return { id: this.chatId, visitorDataOffset: visitorOffset, agentDataOffset: agentOffset, messages, visitor: this.visitor, beginTime: this.beginTime, epoch: base };
  }

  private messageType(): MessageType {
    const { role } = this.options;
    if (role.kind === 'visitor') return MessageType.MESSAGE_TYPE_VISITOR;
    if (role.kind === 'agent') return MessageType.MESSAGE_TYPE_AGENT;
    return role.messageType === 'system' ? MessageType.MESSAGE_TYPE_SYSTEM : MessageType.MESSAGE_TYPE_BOT;
  }

  private persist(): Promise<void> {
    return this.store.save({ chatId: this.chatId, messages: this.copy.all(), outbox: this.outbox, visitor: this.visitor, beginTime: this.beginTime, epoch: this.epoch });
  }

  /** Runs `task` after every earlier one: the session's operations never interleave. */
  private exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task, task);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private signalFor(signal: AbortSignal | undefined): AbortSignal {
    return signal ? AbortSignal.any([signal, this.closing.signal]) : this.closing.signal;
  }

  private ensureOpen(): void {
    if (this.closing.signal.aborted) throw new ChatSdkError('closed', 'the session is closed');
  }
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new ChatSdkError('aborted', 'stopped waiting for the acknowledgement; the message stays queued', undefined, { cause: signal.reason }));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
