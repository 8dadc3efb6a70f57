import { setTimeout as delay } from 'node:timers/promises';
import type { ClientReadableStream, Metadata, status, StatusObject } from '@grpc/grpc-js';
import { expect } from 'chai';
import { type ChatServiceClient, MessageType, ResultCode, WatchChatRequest, type WatchChatResponse } from '../../generated/chat/v1/chat.js';
import type { Loose } from './chat-api.js';

/** A client's position: its contiguous offsets on each side, and the epoch they refer to. */
export interface Held {
  readonly visitor: number;
  readonly agent: number;
  readonly epoch: string;
}

/**
 * A WatchChat stream under test: it records every response and how the stream ended, and
 * checks as each response arrives that it continues the previous one's position, per side,
 * without a gap or a repeat.
 */
export class WatchStream {
  readonly call: ClientReadableStream<WatchChatResponse>;
  readonly responses: WatchChatResponse[] = [];
  /** Every message id received, in order. */
  readonly ids: string[] = [];
  /** Settles with the final status: OK, or the error's code and details. */
  readonly ended: Promise<StatusObject>;
  private held: Held;
  private finished: StatusObject | undefined;
  private broken: Error | undefined;
  private readonly waiters = new Set<() => void>();

  /** Opens the watch of `request`, with `metadata` when given (the client's interceptors add the rest). */
  constructor(client: ChatServiceClient, request: Loose<WatchChatRequest>, metadata?: Metadata) {
    const full = WatchChatRequest.fromPartial(request);
    this.held = { visitor: full.visitorOffset, agent: full.agentOffset, epoch: full.epoch };
    this.call = metadata ? client.watchChat(full, metadata) : client.watchChat(full);
    this.call.on('data', (response: WatchChatResponse) => this.take(response));
    this.call.on('error', () => {}); // the status event carries it
    this.ended = new Promise((resolve) =>
      this.call.on('status', (s: StatusObject) => {
        this.finished = s;
        resolve(s);
        this.wake();
      }),
    );
  }

  /** The first broken promise of the protocol seen (a gap, a repeat, a response after the status). */
  get problem(): Error | undefined {
    return this.broken;
  }

  /** Where the client stands after the responses so far. */
  get position(): Held {
    return this.held;
  }

  /** Resolves once `done()` holds; rejects if the stream ends first or after `timeoutMs`. */
  until(done: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => finish(new Error(`timed out waiting for ${what}; at ${JSON.stringify(this.held)}`)), timeoutMs);
      const finish = (error?: Error) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        return error ? reject(error) : resolve();
      };
      const check = () => {
        if (this.broken) return finish(this.broken);
        if (done()) return finish();
        if (this.finished) finish(new Error(`the stream ended (${this.finished.code} ${this.finished.details}) before ${what}`));
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Resolves once the client holds `visitor`/`agent`. */
  reach(visitor: number, agent: number, timeoutMs?: number): Promise<void> {
    return this.until(() => this.held.visitor >= visitor && this.held.agent >= agent, `offsets ${visitor}/${agent}`, timeoutMs);
  }

  /** Resolves with the first response (the watch is then established). */
  async established(): Promise<WatchChatResponse> {
    await this.until(() => this.responses.length > 0, 'the first response');
    return this.responses[0]!;
  }

  /** Cancels the call (if still open) and waits for its status. */
  async cancel(): Promise<StatusObject> {
    this.call.cancel();
    return this.ended;
  }

  private take(response: WatchChatResponse): void {
    this.responses.push(response);
    try {
      if (this.finished) throw new Error('a response after the status');
      if (response.code === ResultCode.RESULT_CODE_OK) this.advance(response);
    } catch (error) {
      this.broken ??= error as Error;
    }
    this.wake();
  }

  private advance(response: WatchChatResponse): void {
    if (this.held.epoch) expect(response.epoch, 'the epoch of an OK response').to.equal(this.held.epoch);
    let { visitor, agent } = this.held;
    for (const message of response.messages) {
      const expected = message.messageType === MessageType.MESSAGE_TYPE_VISITOR ? (visitor += 1) : (agent += 1);
      expect(message.dataOffset, `message ${message.id} in response ${this.responses.length}`).to.equal(expected);
      this.ids.push(message.id);
    }
    expect(visitor, 'visitor offset beyond the server').to.be.at.most(response.visitorDataOffset);
    expect(agent, 'agent offset beyond the server').to.be.at.most(response.agentDataOffset);
    this.held = { visitor, agent, epoch: response.epoch };
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}

/** Waits until `condition()` holds, checking every few milliseconds, for at most `timeoutMs`. */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(5); // poll the condition; the deadline above bounds the wait
  }
}

/** Asserts a stream ended with `code`, and returns its details. */
export async function expectEnd(stream: WatchStream, code: status): Promise<string> {
  const end = await stream.ended;
  expect(end.code, end.details).to.equal(code);
  return end.details;
}
