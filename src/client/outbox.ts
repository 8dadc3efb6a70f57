import type { ChatMessage, MessageType } from '../../generated/chat/v1/chat.js';
import type { RetryingCaller } from './caller.js';
import type { CatchUp } from './catch-up.js';
import { ChatSdkError } from './errors.js';
import type { LocalChat } from './local-chat.js';
import type { PendingMessage } from './local-store.js';
import type { Role } from './options.js';
import type { SerialQueue } from './serial.js';
import { sendAnswer } from './wire.js';

interface Waiter {
  resolve(message: ChatMessage): void;
  reject(error: Error): void;
}

/**
 * A device's ordered outbox: each message keeps one id on every retry, and is sent only once
 * the one before it was acknowledged, so a device's messages reach every server in the order
 * it sent them (docs/protocol.md, sender order). The head is resent, with a rebuild whenever
 * the server asks, until a server stores it or refuses it for good.
 */
export class Outbox {
  private readonly waiters = new Map<string, Waiter>();
  private draining: Promise<void> | undefined;

  constructor(
    private readonly chat: LocalChat,
    private readonly queue: SerialQueue,
    private readonly caller: RetryingCaller,
    private readonly catchUp: CatchUp,
    private readonly role: Role,
    /** Fires when the session closes: delivery stops, the outbox stays in the store. */
    private readonly closing: AbortSignal,
  ) {}

  /** Sends not yet acknowledged, in order. */
  get pending(): readonly PendingMessage[] {
    return this.chat.outbox;
  }

  /** Settles once the delivery under way (if any) has stopped. */
  get idle(): Promise<void> {
    return this.draining ?? Promise.resolve();
  }

  /**
   * Queues `message` (saved before this resolves, so it survives a crash) and starts delivery;
   * resolves with `stored`, the promise of the message as the server stores it (wrapped: a
   * promise that resolved with a promise would wait for it).
   */
  async enqueue(message: PendingMessage): Promise<{ readonly stored: Promise<ChatMessage> }> {
    const stored = new Promise<ChatMessage>((resolve, reject) => this.waiters.set(message.id, { resolve, reject }));
    stored.catch(() => undefined); // the caller may stop waiting; the send goes on
    this.chat.outbox = [...this.chat.outbox, message];
    await this.chat.persist();
    this.drain();
    return { stored };
  }

  /** Delivers whatever is queued (sends left in the store by an earlier run, say). */
  drain(): void {
    if (this.chat.outbox.length === 0 || this.closing.aborted) return;
    this.draining ??= this.deliverAll().finally(() => (this.draining = undefined));
  }

  /** Rejects every waiting send with `error` (the session closes; the messages stay queued). */
  rejectAll(error: ChatSdkError): void {
    for (const waiter of this.waiters.values()) waiter.reject(error);
    this.waiters.clear();
  }

  private async deliverAll(): Promise<void> {
    while (this.chat.outbox.length > 0 && !this.closing.aborted) {
      const next = this.chat.outbox[0]!;
      try {
        const stored = await this.queue.run(() => this.deliver(next), this.closing);
        this.settle(next.id)?.resolve(stored);
      } catch (error) {
        if (!(error instanceof ChatSdkError)) {
          this.settle(next.id)?.reject(error as Error); // e.g. the store failed
          return;
        }
        if (error.kind !== 'rejected') return; // closed or aborted: it stays queued
        // Refused for good (bad input, a limit): drop it, and go on with the next one.
        await this.queue.run(async () => {
          this.chat.outbox = this.chat.outbox.filter((m) => m.id !== next.id);
          await this.chat.persist();
        });
        this.settle(next.id)?.reject(error);
      }
    }
  }

  /** Sends the outbox's head until a server stores it. */
  private async deliver(pending: PendingMessage): Promise<ChatMessage> {
    const signal = this.closing;
    if (this.chat.unverified) await this.catchUp.run(signal);
    for (let refusals = 0; ; refusals += 1) {
      const answer = sendAnswer(await this.send(pending, signal));
      const fresh = answer.stored && this.chat.take([answer.stored], answer.epoch);
      if (answer.stored && fresh) {
        this.chat.outbox = this.chat.outbox.filter((m) => m.id !== pending.id);
        await this.chat.save(fresh);
        return answer.stored;
      }
      await this.caller.pause(refusals, signal);
      await this.catchUp.run(signal);
    }
  }

  private send(pending: PendingMessage, signal: AbortSignal) {
    const message: ChatMessage = {
      id: pending.id,
      content: pending.content,
      messageType: pending.messageType as MessageType,
      dataOffset: 0,
      sendTime: undefined,
      senderId: '',
      attachments: [...(pending.attachments ?? [])],
      event: pending.event,
    };
    const at = this.chat.position();
    const { role } = this;
    return role.kind === 'visitor'
      ? this.caller.call('addVisitorMessage', { ...at, message: { ...message, senderId: role.visitorId ?? '' } }, signal)
      : this.caller.call('addAgentMessage', { ...at, agentId: role.kind === 'agent' ? role.agentId : role.serviceId, message }, signal);
  }

  private settle(id: string): Waiter | undefined {
    const waiter = this.waiters.get(id);
    this.waiters.delete(id);
    return waiter;
  }
}
