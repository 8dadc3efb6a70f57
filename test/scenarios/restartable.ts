import { type ServerProcess, spawnServer } from '../support/servers.js';

/**
 * A chat server "machine" whose process can be SIGKILLed and started again on the same port,
 * so clients (and a load balancer) that know its address find it again, empty.
 */
export class RestartableServer {
  private current: ServerProcess | undefined;
  private starting: Promise<ServerProcess> | undefined;
  private disposed = false;
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

  get alive(): boolean {
    return this.current !== undefined;
  }

  /** Log lines of every incarnation so far. */
  allLogs(): Record<string, unknown>[] {
    return [...this.earlier, ...(this.current?.logs ?? [])];
  }

  /** SIGKILLs the process (if running) and waits until it is gone: its chats are lost. */
  async kill(): Promise<void> {
    await this.starting?.catch(() => undefined); // a restart under way is killed once it is up
    const dying = this.current;
    this.current = undefined;
    if (!dying) return;
    await dying.kill();
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
