import { type ServerProcess, spawnServer } from '../support/servers.js';

/**
 * A chat server "machine" whose process can be SIGKILLed and started again on the same port,
 * so clients (and a load balancer) that know its address find it again, empty.
 */
export class RestartableServer {
  private current: ServerProcess | undefined;
  private starting: Promise<ServerProcess> | undefined;
  private disposed = false;
  private stopped = false;
  /** Log lines of the incarnations before the current one. */
  private readonly earlier: Record<string, unknown>[] = [];

  private constructor(
    readonly name: string,
    readonly port: number,
    private readonly env: Record<string, string>,
    first: ServerProcess,
  ) {
    this.current = first;
  }

  /** Starts the first incarnation on a free port. */
  static async start(name: string, env: Record<string, string> = {}): Promise<RestartableServer> {
    const first = await spawnServer(env);
    return new RestartableServer(name, first.port, env, first);
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Running (frozen or not). */
  get alive(): boolean {
    return this.current !== undefined;
  }

  /** Running but stopped with SIGSTOP: it holds its chats and connections and answers nothing. */
  get frozen(): boolean {
    return this.stopped;
  }

  /** Running and not frozen: it answers calls. */
  get serving(): boolean {
    return this.alive && !this.stopped;
  }

  /** Log lines of every incarnation so far. */
  allLogs(): Record<string, unknown>[] {
    return [...this.earlier, ...(this.current?.logs ?? [])];
  }

  /**
   * Stops the process with SIGSTOP, as a machine that hangs (a long GC pause, a stalled VM):
   * its sockets stay open, so clients notice only by deadlines and keepalive.
   */
  freeze(): void {
    if (!this.current || this.stopped) throw new Error(`${this.name} is not running, or already frozen`);
    this.current.child.kill('SIGSTOP');
    this.stopped = true;
  }

  /** Resumes a frozen process with SIGCONT: it carries on with its chats as they were. */
  thaw(): void {
    if (!this.current || !this.stopped) throw new Error(`${this.name} is not frozen`);
    this.current.child.kill('SIGCONT');
    this.stopped = false;
  }

  /** SIGKILLs the process (if running, frozen or not) and waits until it is gone: its chats are lost. */
  async kill(): Promise<void> {
    await this.starting?.catch(() => undefined); // a restart under way is killed once it is up
    const dying = this.current;
    this.current = undefined;
    this.stopped = false;
    if (!dying) return;
    await dying.kill(); // SIGKILL ends a stopped process too
    this.earlier.push(...dying.logs);
  }

  /** Starts a new, empty incarnation on the same port. */
  async restart(): Promise<void> {
    if (this.disposed) throw new Error(`${this.name} was disposed of; it does not restart`);
    if (this.current || this.starting) throw new Error(`${this.name} is running or starting`);
    this.starting = spawnServer({ ...this.env, PORT: String(this.port) });
    try {
      this.current = await this.starting;
    } finally {
      this.starting = undefined;
    }
    if (this.disposed) await this.kill(); // disposed of while starting
  }

  /** Kills the process for good: a restart still under way ends killed, and none follows. */
  async dispose(): Promise<void> {
    this.disposed = true;
    await this.kill();
  }
}
