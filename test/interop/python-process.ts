import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';

/** One JSON line a Python example printed: `event` says what happened. */
export interface PyEvent {
  readonly event: string;
  readonly [field: string]: unknown;
}

/**
 * A Python example running as a child process that prints one JSON object per line (its events)
 * and takes commands on stdin: the test waits for events with deadlines instead of sleeping.
 */
export class PythonProcess {
  readonly events: PyEvent[] = [];
  private stdout = '';
  private stderr = '';
  private readonly waiters = new Set<() => void>();
  private readonly exited: Promise<[number | null, NodeJS.Signals | null]>;
  private exitedWith: string | undefined;

  private constructor(
    readonly name: string,
    private readonly child: ChildProcess,
  ) {
    child.stderr!.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      this.stdout += `${line}\n`;
      try {
        this.events.push(JSON.parse(line) as PyEvent);
      } catch {
        this.events.push({ event: 'unparsed', line });
      }
      this.wake();
    });
    this.exited = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>;
    void this.exited.then(([code, signal]) => {
      this.exitedWith = String(code ?? signal);
      this.wake();
    });
  }

  static start(name: string, python: string, args: readonly string[], cwd: string, env: Record<string, string> = {}): PythonProcess {
    return new PythonProcess(name, spawn(python, [...args], { cwd, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] }));
  }

  /** Everything the process printed, for a failure message. */
  output(): string {
    return `\n--- ${this.name} stdout ---\n${this.stdout}--- ${this.name} stderr ---\n${this.stderr}`;
  }

  /** Sends one command line. */
  command(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }

  /**
   * The first event from index `from` on that matches, waiting for it until `timeoutMs`; fails
   * with the process's output when the deadline passes or the process exits first.
   */
  async waitFor(what: string, match: (event: PyEvent) => boolean, timeoutMs: number, from = 0): Promise<PyEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.slice(from).find(match);
      if (found) return found;
      if (this.exitedWith !== undefined) throw new Error(`${this.name} exited (${this.exitedWith}) before ${what}${this.output()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.name}: no ${what} within ${timeoutMs} ms${this.output()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, left);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.waiters.add(done);
      });
    }
  }

  /** Sends a command and waits for the event it leads to (counted from this command on). */
  async ask(line: string, what: string, match: (event: PyEvent) => boolean, timeoutMs: number): Promise<PyEvent> {
    const from = this.events.length;
    this.command(line);
    return this.waitFor(what, (event) => match(event) || event.event === 'error', timeoutMs, from).then((event) => {
      if (event.event === 'error' && !match(event)) throw new Error(`${this.name}: ${line} -> ${JSON.stringify(event)}${this.output()}`);
      return event;
    });
  }

  /** Asks the process to quit and waits for it; SIGKILLs it if it has not exited within `graceMs`. */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.exitedWith !== undefined) return;
    this.child.stdin!.end('quit\n');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
    this.waiters.clear();
  }
}
