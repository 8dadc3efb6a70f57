import { setTimeout as delay } from 'node:timers/promises';
import { type ServiceError, status } from '@grpc/grpc-js';
import { type BackoffOptions, backoffDelayMs } from './backoff.js';
import { CLIENT_DEFAULTS } from './defaults.js';
import { ChatSdkError, isTransient, rejected, retryPushbackMs } from './errors.js';
import { abortedBy } from './signals.js';
import type { ChatSessionOptions, RetryEvent } from './options.js';
import type { AnyMethod, ConversationMethod, RequestOf, ResponseOf, Transport } from './transport.js';

/** What a caller reports as it goes. */
export interface CallerEvents {
  retry(event: RetryEvent): void;
  /** A call succeeded on an address other than the last one that answered. */
  connected(address: string): void;
}

/**
 * Makes calls through a transport, retrying with capped exponential backoff and full jitter
 * (and a failover to the next server) while they fail for transient reasons. A server that
 * refuses a call for now and says when to come back (RESOURCE_EXHAUSTED with a retry pushback:
 * a rate limit, or its budget for Rebuild uploads) gets it again then, plus jitter, at the same
 * address: it is the chat's home, and behind a load-balanced address there is no next server.
 */
export class RetryingCaller {
  private connectedTo: string | undefined;

  constructor(
    private readonly transport: Transport,
    private readonly options: Pick<ChatSessionOptions, 'servers' | 'backoff' | 'random' | 'sleep'>,
    private readonly events: CallerEvents,
  ) {}

  /** One attempt, not retried: by the transport's call for the history, or for what lies beside it. */
  once<M extends AnyMethod>(method: M, request: RequestOf<M>, signal: AbortSignal): Promise<ResponseOf<M>> {
    if (method !== 'markRead' && method !== 'setTyping') {
      return (this.transport.call as (m: AnyMethod, r: unknown, s: AbortSignal) => Promise<ResponseOf<M>>)(method, request, signal);
    }
    if (!this.transport.callBeside) return Promise.reject(new ChatSdkError('rejected', `this transport cannot call ${method}`, status.UNIMPLEMENTED));
    return (this.transport.callBeside as (m: ConversationMethod, r: unknown, s: AbortSignal) => Promise<ResponseOf<M>>)(method, request, signal);
  }

  /** One call, retried until it succeeds, fails for good (`rejected`), or `signal` aborts. */
  async call<M extends AnyMethod>(method: M, request: RequestOf<M>, signal: AbortSignal): Promise<ResponseOf<M>> {
    let exhausted = 0;
    let pushedBack = 0;
    for (let attempt = 0; ; attempt += 1) {
      const address = this.transport.address;
      try {
        const response = await this.once(method, request, signal);
        if (this.connectedTo !== address) this.events.connected((this.connectedTo = address));
        return response;
      } catch (error) {
        if (error instanceof ChatSdkError) throw error;
        if (!isTransient(error)) throw rejected(error as ServiceError | Error);
        const pushbackMs = (error as ServiceError).code === status.RESOURCE_EXHAUSTED ? retryPushbackMs(error) : undefined;
        if (pushbackMs !== undefined) {
          // Not a limit reached for good: the same server admits it later. Jitter (growing while it
          // keeps pushing back) spreads the callers it told the same time.
          const delayMs = Math.min(pushbackMs, CLIENT_DEFAULTS.maxPushbackMs) + this.delayMs(pushedBack++);
          this.events.retry({ address, error: error as ServiceError, attempt, delayMs, pushbackMs });
          await this.sleep(delayMs, signal);
          continue;
        }
        // A full server is worth trying elsewhere; once every server said so, the limit is the chat's.
        if ((error as ServiceError).code === status.RESOURCE_EXHAUSTED && ++exhausted >= this.options.servers.length) {
          throw rejected(error as ServiceError);
        }
        const delayMs = this.delayMs(attempt);
        this.events.retry({ address, error: error as ServiceError, attempt, delayMs });
        this.connectedTo = undefined;
        this.transport.failover(address);
        await this.sleep(delayMs, signal);
      }
    }
  }

  /** Backs off after repeated REBUILD_REQUIRED answers (servers flapping), never before the first. */
  async pause(refusals: number, signal: AbortSignal): Promise<void> {
    if (refusals > 0) await this.sleep(this.delayMs(refusals - 1), signal);
  }

  /**
   * Waits before a watch is opened again after its `breaks`-th break (or silent end) in a row:
   * full jitter, as for calls, but over a ceiling that starts at half the backoff cap (0-1 s by
   * default) and doubles up to the cap. A server that dies breaks every watch it holds at once,
   * and this spreads their owners' catch-ups (and the rebuilds they lead to) over a second
   * instead of the first 50 ms.
   */
  async rewatchPause(breaks: number, signal: AbortSignal): Promise<void> {
    const backoff = this.backoff;
    await this.sleep(this.delayMs(breaks - 1, { ...backoff, initialMs: Math.max(backoff.initialMs, backoff.maxMs / 2) }), signal);
  }

  /** Waits `ms` (with the session's injectable sleep), rejecting with `aborted` when `signal` fires. */
  wait(ms: number, signal: AbortSignal): Promise<void> {
    return this.sleep(ms, signal);
  }

  private get backoff(): BackoffOptions {
    return { ...CLIENT_DEFAULTS.backoff, ...this.options.backoff };
  }

  private delayMs(attempt: number, backoff = this.backoff): number {
    return backoffDelayMs(attempt, backoff, this.options.random ?? Math.random);
  }

  private async sleep(ms: number, signal: AbortSignal): Promise<void> {
    try {
      await (this.options.sleep ? this.options.sleep(ms, signal) : delay(ms, undefined, { signal }));
    } catch {
      throw abortedBy(signal);
    }
  }
}
