import { randomUUID } from 'node:crypto';
import { EventEmitter, on } from 'node:events';
import { type ChatMessage, MessageType } from '../../generated/chat/v1/chat.js';
import { RetryingCaller } from './caller.js';
import { checkServers } from './addresses.js';
import { CatchUp } from './catch-up.js';
import { CLIENT_DEFAULTS } from './defaults.js';
import { ChatSdkError } from './errors.js';
import { LocalChat } from './local-chat.js';
import { MemoryStore, type PendingMessage } from './local-store.js';
import type { ChatSessionEvents, ChatSessionOptions, Role } from './options.js';
import { Outbox } from './outbox.js';
import { Receiver } from './receiver.js';
import { SerialQueue } from './serial.js';
import { linkSignals, untilAborted } from './signals.js';
import { ChatTransport, type Transport } from './transport.js';
import type { ClientOffsets } from './wire.js';

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
  private receiving: Promise<void> | undefined;

  private constructor(
    private readonly options: ChatSessionOptions,
    saved: Awaited<ReturnType<NonNullable<ChatSessionOptions['store']>['load']>>,
    store: NonNullable<ChatSessionOptions['store']>,
  ) {
    super();
    this.chat = new LocalChat(options.chatId, store, options.detectDivergence !== false, saved, options.visitor, {
      message: (message) => this.emit('message', message),
      epoch: () => {
        for (const listener of [...this.epochListeners]) listener();
      },
    });
    this.transport =
      options.transport ??
      new ChatTransport({ chatId: options.chatId, addresses: options.servers, callTimeoutMs: options.callTimeoutMs, credentials: options.credentials, channelOptions: options.channelOptions, token: options.token, homeProbe: options.homeProbe, random: options.random });
    const caller = new RetryingCaller(this.transport, options, {
      retry: (event) => this.emit('retry', event),
      connected: (address) => this.emit('connected', address),
    });
    this.catchUp = new CatchUp(this.chat, caller, this.transport, options.maxUploadBytes ?? CLIENT_DEFAULTS.maxUploadBytes, (event) => this.emit('rebuild', event));
    this.outbox = new Outbox(this.chat, this.queue, caller, this.catchUp, options.role, this.closing.signal);
    this.receiver = new Receiver(
      this.chat,
      this.queue,
      caller,
      this.catchUp,
      this.transport,
      { mode: options.receive ?? 'watch', pollIntervalMs: options.pollIntervalMs ?? CLIENT_DEFAULTS.pollIntervalMs, failure: (error) => this.emit('failure', error) },
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

  /**
   * Sends a message and resolves with it as the server stored it. The message is kept in the
   * outbox (durably, with a durable store) and resent with the same id until a server
   * acknowledges it, so a crash or failover loses and duplicates nothing. Aborting `signal`
   * stops the waiting, not the send: a message that may have reached a server cannot be unsent.
   */
  async send(content: string, options: { readonly signal?: AbortSignal; readonly id?: string } = {}): Promise<ChatMessage> {
    this.ensureOpen();
    const id = options.id ?? (this.options.newId ?? randomUUID)();
    const { stored } = await this.outbox.enqueue({ id, content, messageType: messageTypeOf(this.options.role) });
    return options.signal ? untilAborted(stored, options.signal, 'stopped waiting for the acknowledgement; the message stays queued') : stored;
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
    this.transport.close();
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
