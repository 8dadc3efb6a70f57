import * as wire from '../../generated/chat/v1/chat.js';
import { ChatSdkError } from '../../src/client/errors.js';
import type { ChatMethod, RequestOf, ResponseOf, Transport } from '../../src/client/transport.js';
import type { SimNetwork } from './sim-network.js';
import type { SimServer } from './sim-server.js';
import { CODECS, type Codec, overTheWire } from './wire-codec.js';

/**
 * A client's way to the servers: calls go to the server the schedule routed it to, and a
 * failover moves on to the next one in the list (unless the client is pinned to one, as
 * behind a load balancer). Each call is asynchronous and waits in the network, and so does
 * each watch stream's every event. `onMove` listeners hear each change of address.
 */
export class SimTransport implements Transport {
  private current: number;
  private pinned = false;
  private readonly moveListeners = new Set<(address: string) => void>();
  /**
   * Rewrites each request before it goes on the wire: the simulation uses it to add what the
   * SDK cannot send yet (a lifecycle event on a SYSTEM message), keyed by message id.
   */
  rewrite: (<M extends ChatMethod>(method: M, request: RequestOf<M>) => RequestOf<M>) | undefined;

  constructor(
    private readonly client: string,
    private readonly network: SimNetwork,
    private readonly servers: readonly SimServer[],
    first: number,
  ) {
    this.current = first;
  }

  get address(): string {
    return this.servers[this.current]!.name;
  }

  /** Sends later calls to `server`; `pin` keeps them there even after failures. */
  routeTo(server: number, pin = false): void {
    this.pinned = pin;
    this.moveTo(server);
  }

  failover(): void {
    if (!this.pinned) this.moveTo((this.current + 1) % this.servers.length);
  }

  /** Tells `listener` whenever calls start going to another address; returns the unsubscribe. */
  onMove(listener: (address: string) => void): () => void {
    this.moveListeners.add(listener);
    return () => this.moveListeners.delete(listener);
  }

  async call<M extends ChatMethod>(method: M, request: RequestOf<M>, signal?: AbortSignal): Promise<ResponseOf<M>> {
    await Promise.resolve();
    if (signal?.aborted) throw new ChatSdkError('aborted', 'the operation was aborted', undefined, { cause: signal.reason });
    const outgoing = this.rewrite ? this.rewrite(method, request) : request;
    const sent = overTheWire(CODECS[method][0] as Codec<RequestOf<M>>, outgoing);
    return (await this.network.send(this.client, this.servers[this.current]!, method, sent, signal)) as ResponseOf<M>;
  }

  watch(request: wire.WatchChatRequest, signal: AbortSignal): AsyncIterable<wire.WatchChatResponse> {
    return this.network.watch(this.client, this.servers[this.current]!, overTheWire(wire.WatchChatRequest, request), signal);
  }

  close(): void {}

  private moveTo(server: number): void {
    if (server === this.current) return;
    this.current = server;
    for (const listener of [...this.moveListeners]) listener(this.address);
  }
}
