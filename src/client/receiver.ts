import { type ServiceError, status } from '@grpc/grpc-js';
import type { Typing } from '../../generated/chat/v1/chat.js';
import type { RetryingCaller } from './caller.js';
import type { CatchUp } from './catch-up.js';
import { ChatSdkError, isTransient, rejected } from './errors.js';
import type { LocalChat } from './local-chat.js';
import type { SerialQueue } from './serial.js';
import { linkSignals } from './signals.js';
import type { Transport } from './transport.js';
import { readAnswer } from './wire.js';

/** How a receiver gets new messages, and what it reports. */
export interface ReceiverOptions {
  readonly mode: 'watch' | 'poll';
  readonly pollIntervalMs: number;
  /** Background receiving failed for good (the server refused a request); it goes on. */
  readonly failure: (error: ChatSdkError) => void;
  /** A watch said who is typing now. */
  readonly typing?: (typing: readonly Typing[]) => void;
}

/** Why a watch stream was stopped by the receiver itself, to be opened again at once. */
class Rehome extends Error {
  constructor(readonly why: string) {
    super(why);
  }
}

/**
 * Receives in the background until the session closes: by watching (WatchChat) or by polling.
 *
 * A watch follows one server incarnation from the copy's position. It is opened again, after a
 * catch-up (which rebuilds the server if it asks), whenever it ends or breaks, and also
 * whenever it would follow the wrong server: when the transport moves to another address (a
 * failover by any call of the session, or a return to the chat's home), when the copy adopts
 * another incarnation's order (a send or a sync rebuilt a server), or when the stream pushes
 * an answer of an incarnation that is not the copy's. So a watch never pins a client to an old
 * home (docs/protocol.md, re-homing).
 */
export class Receiver {
  private running: Promise<void> | undefined;

  constructor(
    private readonly chat: LocalChat,
    private readonly queue: SerialQueue,
    private readonly caller: RetryingCaller,
    private readonly catchUp: CatchUp,
    private readonly transport: Transport,
    private readonly options: ReceiverOptions,
    private readonly closing: AbortSignal,
    /** Called with a listener for the copy's epoch changes; returns the unsubscribe. */
    private readonly onEpochChange: (listener: () => void) => () => void,
  ) {}

  /** Starts receiving (once); settles when it has stopped, after the session closed. */
  start(): Promise<void> {
    return (this.running ??= this.options.mode === 'watch' && this.transport.watch ? this.watchLoop() : this.pollLoop());
  }

  private async pollLoop(): Promise<void> {
    const signal = this.closing;
    while (!signal.aborted) {
      try {
        await this.queue.run(() => this.catchUp.run(signal), signal);
      } catch (error) {
        if (error instanceof ChatSdkError && error.kind === 'rejected') this.options.failure(error);
      }
      await this.caller.wait(this.options.pollIntervalMs, signal).catch(() => undefined);
    }
  }

  private async watchLoop(): Promise<void> {
    for (let breaks = 0; !this.closing.aborted; ) {
      const outcome = await this.watchOnce();
      if (outcome === 'answered' || outcome === 'rehome') breaks = 0;
      // A watch that ended without a word, or broke: wait a jittered while (backing off) before the next.
      if (outcome === 'silent' || outcome === 'broken') await this.caller.rewatchPause(++breaks, this.closing).catch(() => undefined);
    }
  }

  /** One catch-up and one watch stream, until it ends, breaks, or must be opened elsewhere. */
  private async watchOnce(): Promise<'answered' | 'silent' | 'broken' | 'rehome'> {
    const stream = new AbortController();
    const link = linkSignals(this.closing, stream.signal);
    const signal = link.signal;
    const stopListening: (() => void)[] = [];
    let address = this.transport.address;
    try {
      await this.queue.run(() => this.catchUp.run(signal), signal);
      // From here on, a move or an adopted order makes this stream the wrong one.
      address = this.transport.address;
      if (this.transport.onMove) stopListening.push(this.transport.onMove(() => stream.abort(new Rehome('the transport moved'))));
      stopListening.push(this.onEpochChange(() => stream.abort(new Rehome('the copy adopted another incarnation'))));
      let answered = false;
      for await (const response of this.transport.watch!(this.chat.position(), signal)) {
        answered = true;
        const answer = readAnswer(response);
        if (answer.rebuild) return 'answered'; // the server's last word: catch up (rebuild) and watch again
        const placed = await this.queue.run(async () => {
          const fresh = this.chat.take(answer.messages, answer.epoch);
          if (!fresh) return false;
          await this.chat.announce(fresh);
          this.chat.noteEnded(answer.ended);
          await this.chat.takeReads(answer.readPositions);
          if (answer.typing) this.options.typing?.(answer.typing);
          return true;
        }, signal);
        if (!placed) return 'rehome'; // pushed by another incarnation than the copy's
      }
      return answered ? 'answered' : 'silent';
    } catch (error) {
      if (this.closing.aborted) return 'answered';
      if (stream.signal.aborted && stream.signal.reason instanceof Rehome) return 'rehome';
      if (error instanceof ChatSdkError) {
        if (error.kind === 'rejected') this.options.failure(error);
      } else if (!isTransient(error)) {
        this.options.failure(rejected(error as ServiceError));
      } else if ((error as ServiceError).code !== status.RESOURCE_EXHAUSTED) {
        // The server died, or a proxy broke the stream (a cut-off slow watcher just resumes).
        this.transport.failover(address);
      }
      return 'broken';
    } finally {
      for (const stop of stopListening) stop();
      stream.abort();
      link.dispose();
    }
  }
}
