import type { Typing } from '../../generated/chat/v1/chat.js';

/**
 * Who is typing, as the watch last said, with each entry dropped here at its expire time: a
 * server that stops telling (it died, the watch broke) must not leave someone typing forever.
 * Typing is never stored or rebuilt; this list is only ever the latest word, lapsing on its own.
 */
export class TypingList {
  private current: Typing[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    /** Told the list whenever it changes (a watch's word, or a lapse). */
    private readonly changed: (typing: Typing[]) => void,
    private readonly now: () => number = Date.now,
  ) {}

  get typing(): Typing[] {
    return [...this.current];
  }

  /** Takes a watch's list (the whole list of typers now). */
  update(typing: readonly Typing[]): void {
    const now = this.now();
    this.replace(typing.filter((t) => !t.expireTime || t.expireTime.getTime() > now));
  }

  /** Stops the lapse timer (the session closes). */
  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private replace(next: Typing[]): void {
    // A renewal (a later expire time for the same typer) is no change of who is typing.
    const same = next.length === this.current.length && next.every((t, i) => t.participantId === this.current[i]!.participantId);
    this.current = next;
    this.schedule();
    if (!same) this.changed(this.typing);
  }

  private schedule(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const times = this.current.flatMap((t) => (t.expireTime ? [t.expireTime.getTime()] : []));
    if (times.length === 0) return;
    const delay = Math.max(0, Math.min(...times) - this.now());
    this.timer = setTimeout(() => this.lapse(), delay + 1);
    this.timer.unref();
  }

  private lapse(): void {
    const now = this.now();
    this.replace(this.current.filter((t) => !t.expireTime || t.expireTime.getTime() > now));
  }
}

/** Least time between two `typing: true` calls: a keystroke each is not worth a call each. */
export const TYPING_THROTTLE_MS = 1_500;

/**
 * Which typing indications are worth sending: a `true` at most once per {@link TYPING_THROTTLE_MS},
 * unless a `false` went in between (a new burst of typing is news); a `false` only after a `true`.
 */
export class TypingThrottle {
  private lastTrue: number | undefined;
  private typing = false;

  constructor(private readonly now: () => number = Date.now) {}

  /** Whether to send this indication now (and notes it as sent). */
  admit(isTyping: boolean): boolean {
    const now = this.now();
    if (!isTyping) {
      if (!this.typing) return false;
      this.typing = false;
      this.lastTrue = undefined;
      return true;
    }
    if (this.typing && this.lastTrue !== undefined && now - this.lastTrue < TYPING_THROTTLE_MS) return false;
    this.typing = true;
    this.lastTrue = now;
    return true;
  }
}
