import { randomUUID } from 'node:crypto';
import { EventEmitter, on } from 'node:events';
import { status } from '@grpc/grpc-js';
import { type Attachment, type ChatEvent, type ChatMessage, EventKind, MessageType, type ReadPosition, type Typing } from '../../generated/chat/v1/chat.js';
import { participantsOf } from '../domain/conversation.js';
import type { EventKind as DomainEventKind } from '../domain/message.js';
import { RetryingCaller } from './caller.js';
import { checkServers } from './addresses.js';
import { CatchUp } from './catch-up.js';
import { CLIENT_DEFAULTS } from './defaults.js';
import { ChatSdkError, isTransient, rejected } from './errors.js';
import { LocalChat } from './local-chat.js';
import { MemoryStore, type PendingMessage } from './local-store.js';
import type { ChatSessionEvents, ChatSessionOptions, Role } from './options.js';
import { Outbox } from './outbox.js';
import { Receiver } from './receiver.js';
import { SerialQueue } from './serial.js';
import { linkSignals, untilAborted } from './signals.js';
import { ChatTransport, type Transport } from './transport.js';
import { TypingList, TypingThrottle } from './typing.js';
import { type ClientOffsets, markReadAnswer } from './wire.js';

/**
 * One chat in one role: keeps the local copy, sends through an ordered outbox (same id on every
 * retry, resend until success, rebuild when the server asks), reads and pages new messages,
 * receives in the background, and follows the chat's home across servers. Operations on the
 * copy run one at a time, in call order; each honours its own AbortSignal while it waits.
 *
 * This class is the facade: the rules live in LocalChat (the copy and where placements may come
 * from), Outbox (sending), CatchUp (reading and rebuilding), Receiver (watching and polling) and
 * ChatTransport (placement, failover and the return home).
 */
export class ChatSession extends EventEmitter<ChatSessionEvents> {
  private readonly closing = new AbortController();
  private readonly queue = new SerialQueue();
  private readonly epochListeners = new Set<() => void>();
  private readonly chat: LocalChat;
  private readonly transport: Transport;
  private readonly catchUp: CatchUp;
  private readonly outbox: Outbox;
  private readonly receiver: Receiver;
  private readonly caller: RetryingCaller;
  private receiving: Promise<void> | undefined;
  private readonly typers = new TypingList((typing) => this.emit('typing', typing));
  private readonly typingThrottle = new TypingThrottle();

  private constructor(
    private readonly options: ChatSessionOptions,
    saved: Awaited<ReturnType<NonNullable<ChatSessionOptions['store']>['load']>>,
    store: NonNullable<ChatSessionOptions['store']>,
  ) {
    super();
    this.chat = new LocalChat(options.chatId, store, options.detectDivergence !== false, saved, options.visitor, {
      message: (message) => this.announce(message),
      read: (position) => this.emit('read', position),
      epoch: () => {
        for (const listener of [...this.epochListeners]) listener();
      },
    });
    this.transport =
      options.transport ??
      new ChatTransport({ chatId: options.chatId, addresses: options.servers, callTimeoutMs: options.callTimeoutMs, credentials: options.credentials, channelOptions: options.channelOptions, token: options.token, homeProbe: options.homeProbe, random: options.random });
    const caller = (this.caller = new RetryingCaller(this.transport, options, {
      retry: (event) => this.emit('retry', event),
      connected: (address) => this.emit('connected', address),
    }));
    this.catchUp = new CatchUp(this.chat, caller, this.transport, options.maxUploadBytes ?? CLIENT_DEFAULTS.maxUploadBytes, (event) => this.emit('rebuild', event));
    this.outbox = new Outbox(this.chat, this.queue, caller, this.catchUp, options.role, this.closing.signal);
    this.receiver = new Receiver(
      this.chat,
      this.queue,
      caller,
      this.catchUp,
      this.transport,
      {
        mode: options.receive ?? 'watch',
        pollIntervalMs: options.pollIntervalMs ?? CLIENT_DEFAULTS.pollIntervalMs,
        failure: (error) => this.emit('failure', error),
        typing: (typing) => this.typers.update(typing),
      },
      this.closing.signal,
      (listener) => {
        this.epochListeners.add(listener);
        return () => this.epochListeners.delete(listener);
      },
    );
    options.signal?.addEventListener('abort', () => void this.close(), { once: true });
  }

  /** Loads the local copy (if the store has one) and resumes any sends left in its outbox. */
  static async open(options: ChatSessionOptions): Promise<ChatSession> {
    if (!options.transport) checkServers(options.servers);
    const store = options.store ?? new MemoryStore();
    const session = new ChatSession(options, await store.load(options.chatId), store);
    session.outbox.drain();
    session.resendReads();
    return session;
  }

  get chatId(): string {
    return this.options.chatId;
  }

  /** The messages held, in conversation order. */
  get messages(): ChatMessage[] {
    return this.chat.copy.conversation();
  }

  get offsets(): ClientOffsets {
    return this.chat.publicOffsets;
  }

  /** The server address the session's calls go to now: the chat's home, unless it is down. */
  get server(): string {
    return this.transport.address;
  }

  /** Sends not yet acknowledged, in order. */
  get pending(): readonly PendingMessage[] {
    return this.outbox.pending;
  }

  /** Whether the chat has ended: the copy holds its ENDED event, or a server said so. Sends are then refused. */
  get ended(): boolean {
    return this.chat.ended;
  }

  /**
   * The chat's participants on the agent side, derived from the events the copy holds, in
   * conversation order (the server derives them alike from the same history).
   */
  get participants(): string[] {
    // The wire's EventKind numbers are the domain's.
    return participantsOf(this.chat.copy.conversation().map((m) => ({ event: m.event && { ...m.event, kind: m.event.kind as number as DomainEventKind } })));
  }

  /** Each reader's furthest read message, as far as this session knows (its own marks included). */
  get readPositions(): ReadPosition[] {
    return this.chat.readPositions;
  }

  /** Who is typing now, as the watch last said (`start()` receives it), each lapsing at its expire time. */
  get typingNow(): Typing[] {
    return this.typers.typing;
  }

  /**
   * Sends a message and resolves with it as the server stored it. The message is kept in the
   * outbox (durably, with a durable store) and resent with the same id until a server
   * acknowledges it, so a crash or failover loses and duplicates nothing. Aborting `signal`
   * stops the waiting, not the send: a message that may have reached a server cannot be unsent.
   * `attachments` are references to files kept elsewhere (https URIs); content may then be empty.
   * After the chat ended the server refuses sends: they reject with `rejected`, FAILED_PRECONDITION.
   */
  async send(
    content: string,
    options: { readonly signal?: AbortSignal; readonly id?: string; readonly attachments?: readonly Attachment[] } = {},
  ): Promise<ChatMessage> {
    const attachments = options.attachments && options.attachments.length > 0 ? { attachments: options.attachments.map((a) => ({ ...a })) } : {};
    return this.enqueue({ content, messageType: messageTypeOf(this.options.role), ...attachments }, options);
  }

  /**
   * Ends the chat (agents and services): a SYSTEM message with an ENDED event, through the same
   * ordered outbox as sends, so it lands after every send made before it. Every server refuses
   * sends after it. Ending a chat that already ended resolves with the end the copy holds.
   */
  async end(options: { readonly reason?: string; readonly signal?: AbortSignal; readonly id?: string } = {}): Promise<ChatMessage> {
    const event = this.event(EventKind.EVENT_KIND_ENDED, options.reason);
    try {
      return await this.enqueue({ content: '', messageType: MessageType.MESSAGE_TYPE_SYSTEM, event }, options);
    } catch (error) {
      if (!(error instanceof ChatSdkError) || error.kind !== 'rejected' || error.code !== status.FAILED_PRECONDITION) throw error;
      // Refused because the chat had ended: the end is in the history, so read it if not held yet.
      if (!this.chat.endMessage()) await this.sync({ ...(options.signal && { signal: options.signal }) }).catch(() => undefined);
      const end = this.chat.endMessage();
      if (!end) throw error;
      return end;
    }
  }

  /** Says that this agent or bot joined the chat (a JOINED event): it is then among the participants. */
  async join(options: { readonly reason?: string; readonly signal?: AbortSignal; readonly id?: string } = {}): Promise<ChatMessage> {
    return this.enqueue({ content: '', messageType: MessageType.MESSAGE_TYPE_SYSTEM, event: this.event(EventKind.EVENT_KIND_JOINED, options.reason) }, options);
  }

  /** Says that this agent or bot left the chat (a LEFT event). */
  async leave(options: { readonly reason?: string; readonly signal?: AbortSignal; readonly id?: string } = {}): Promise<ChatMessage> {
    return this.enqueue({ content: '', messageType: MessageType.MESSAGE_TYPE_SYSTEM, event: this.event(EventKind.EVENT_KIND_LEFT, options.reason) }, options);
  }

  /** Hands the chat over to `toParticipantId` (a TRANSFERRED event): it replaces this one among the participants. */
  async transfer(toParticipantId: string, options: { readonly reason?: string; readonly signal?: AbortSignal; readonly id?: string } = {}): Promise<ChatMessage> {
    const event = this.event(EventKind.EVENT_KIND_TRANSFERRED, options.reason, toParticipantId);
    return this.enqueue({ content: '', messageType: MessageType.MESSAGE_TYPE_SYSTEM, event }, options);
  }

  /**
   * Marks `messageId` (a message of this chat) as read by this session's participant: kept in
   * the copy first (so a rebuild carries it), then told the server, which keeps each reader's
   * furthest. A server that lacks the chat or holds another incarnation is rebuilt first. The
   * server refuses (NOT_FOUND) a message it does not hold.
   */
  async markRead(messageId: string, options: { readonly signal?: AbortSignal } = {}): Promise<void> {
    this.ensureOpen();
    const link = linkSignals(options.signal, this.closing.signal);
    const { signal } = link;
    const readerId = this.participantId;
    try {
      await this.queue.run(async () => {
        await this.chat.takeReads([{ readerId, messageId }], true);
        if (this.chat.unverified) await this.catchUp.run(signal); // a copy without an epoch is checked first
        for (let refusals = 0; ; refusals += 1) {
          const answer = markReadAnswer(await this.caller.call('markRead', { chatId: this.chatId, readerId, messageId, epoch: this.chat.marker }, signal));
          if (!answer.rebuild) {
            // Not `follow(answer.epoch)`: a MarkRead places nothing, so it proves nothing about the copy.
            await this.chat.takeReads(answer.readPositions);
            return;
          }
          if (refusals > 0) await this.caller.pause(refusals - 1, signal);
          await this.catchUp.run(signal);
        }
      }, signal);
    } finally {
      link.dispose();
    }
  }

  /**
   * Marks again, in the background, what this participant marked read but no server
   * acknowledged before the last run ended; a refusal leaves the mark local (it is never uploaded).
   */
  private resendReads(): void {
    for (const { readerId, messageId } of this.chat.unsentReads) {
      if (readerId === this.participantId) this.markRead(messageId).catch(() => undefined);
    }
  }

  /**
   * Says whether this session's participant is typing. Best effort: a `true` goes at most once
   * per 1.5 s (unless a `false` went in between), and a server that cannot take it (no such chat
   * there, the chat ended, the server is down) is not an error. Watchers see it until it lapses.
   */
  async typing(isTyping = true): Promise<void> {
    this.ensureOpen();
    if (!this.typingThrottle.admit(isTyping)) return;
    try {
      await this.caller.once('setTyping', { chatId: this.chatId, participantId: this.participantId, typing: isTyping }, this.closing.signal);
    } catch (error) {
      if (error instanceof ChatSdkError) {
        if (error.kind === 'rejected' && error.code === status.UNIMPLEMENTED) return;
        throw error;
      }
      const { code } = error as { code?: number };
      if (code === status.NOT_FOUND || code === status.FAILED_PRECONDITION || isTransient(error)) return;
      throw rejected(error as Error);
    }
  }

  /** Reads until caught up with the server (rebuilding it first if it asks); returns what is new. */
  async sync(options: { readonly signal?: AbortSignal } = {}): Promise<ChatMessage[]> {
    this.ensureOpen();
    const link = linkSignals(options.signal, this.closing.signal);
    try {
      return await this.queue.run(() => this.catchUp.run(link.signal), link.signal);
    } finally {
      link.dispose();
    }
  }

  /**
   * Receives in the background until `close()`, new messages arriving as events and through
   * `updates()`: by watching (a WatchChat stream the server pushes to, opened again after it
   * ends or breaks, and on the chat's new home whenever that changes, with a rebuild when
   * needed), or by polling every `pollIntervalMs` with `receive: 'poll'` or a transport that
   * cannot watch.
   */
  start(): void {
    this.ensureOpen();
    this.receiving ??= this.receiver.start();
  }

  /**
   * New messages, from this call on, as an async iterator that ends when `signal` aborts or
   * the session closes. Call it before `start()` or `sync()` to see what they bring.
   */
  updates(options: { readonly signal?: AbortSignal } = {}): AsyncGenerator<ChatMessage> {
    const link = linkSignals(options.signal, this.closing.signal);
    const events = on(this, 'message', { signal: link.signal }); // listens from this call on, not from the first next()
    return (async function* () {
      try {
        for await (const [message] of events) yield message as ChatMessage;
      } catch (error) {
        if (!link.signal.aborted) throw error;
      } finally {
        link.dispose();
      }
    })();
  }

  /** Stops receiving and pending waits, and closes the channels. Unsent messages stay in the store. */
  async close(): Promise<void> {
    if (this.closing.signal.aborted) return;
    this.closing.abort(new ChatSdkError('closed', 'the session was closed'));
    this.outbox.rejectAll(new ChatSdkError('closed', 'the session was closed before the server acknowledged the message'));
    await Promise.allSettled([this.outbox.idle, this.receiving, this.queue.run(async () => undefined)]);
    this.typers.close();
    this.transport.close();
  }

  /** Queues a send (a message or an event) and waits for its acknowledgement, as `send` says. */
  private async enqueue(
    message: Omit<PendingMessage, 'id'>,
    options: { readonly signal?: AbortSignal | undefined; readonly id?: string | undefined },
  ): Promise<ChatMessage> {
    this.ensureOpen();
    const id = options.id ?? (this.options.newId ?? randomUUID)();
    const { stored } = await this.outbox.enqueue({ id, ...message });
    return options.signal ? untilAborted(stored, options.signal, 'stopped waiting for the acknowledgement; the message stays queued') : stored;
  }

  /** An event about this agent or service (visitors post none: the server refuses them). */
  private event(kind: EventKind, reason = '', toParticipantId = ''): ChatEvent {
    this.ensureOpen();
    if (this.options.role.kind === 'visitor') throw new ChatSdkError('rejected', 'a visitor cannot post events; agents and services can', status.PERMISSION_DENIED);
    return { kind, participantId: this.participantId, toParticipantId, reason };
  }

  /** Who this session speaks as: the reader of its marks, the typer, and the subject of its events. */
  private get participantId(): string {
    const { role } = this.options;
    return role.kind === 'visitor' ? (role.visitorId ?? '') : role.kind === 'agent' ? role.agentId : role.serviceId;
  }

  /** Reports a message new to the copy, and what its event (if any) says happened. */
  private announce(message: ChatMessage): void {
    this.emit('message', message);
    const { event } = message;
    if (!event) return;
    if (event.kind === EventKind.EVENT_KIND_JOINED) this.emit('joined', event.participantId, message);
    else if (event.kind === EventKind.EVENT_KIND_LEFT) this.emit('left', event.participantId, message);
    else if (event.kind === EventKind.EVENT_KIND_TRANSFERRED) this.emit('transferred', { from: event.participantId, to: event.toParticipantId }, message);
    else if (event.kind === EventKind.EVENT_KIND_ENDED) this.emit('ended', message);
  }

  private ensureOpen(): void {
    if (this.closing.signal.aborted) throw new ChatSdkError('closed', 'the session is closed');
  }
}

function messageTypeOf(role: Role): MessageType {
  if (role.kind === 'visitor') return MessageType.MESSAGE_TYPE_VISITOR;
  if (role.kind === 'agent') return MessageType.MESSAGE_TYPE_AGENT;
  return role.messageType === 'system' ? MessageType.MESSAGE_TYPE_SYSTEM : MessageType.MESSAGE_TYPE_BOT;
}
