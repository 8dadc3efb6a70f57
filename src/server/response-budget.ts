import { ChatError } from '../domain/errors.js';
import type { Config } from './config.js';

/** The budgets a {@link ResponseBudget} enforces. */
export type ResponseBudgetConfig = Pick<Config, 'maxResponseBytesInFlightPerConnection' | 'maxResponseBytesInFlight'>;

/**
 * Bytes of answers in flight: encoded, handed to the transport, not yet taken by the client.
 * A client that reads nothing leaves its answers in the server's memory; these budgets bound
 * that per connection and per server. A read is admitted while what is in flight is below
 * both budgets, so each holds at most its budget plus one answer.
 *
 * A connection is named by its peer address (`call.getPeer()`, remote address:port): public
 * grpc-js API, and unique per open TCP connection. A port reused after a connection closed is
 * harmless: that connection's answers were released when their streams closed.
 */
export class ResponseBudget {
  private readonly perConnection = new Map<string, number>();
  private total = 0;

  constructor(private readonly config: ResponseBudgetConfig) {}

  /** Bytes in flight over the whole server. */
  get bytesInFlight(): number {
    return this.total;
  }

  /** Throws RESOURCE_EXHAUSTED when `peer`'s connection, or the server, is at its budget. */
  admit(peer: string): void {
    const { maxResponseBytesInFlightPerConnection: perConnection, maxResponseBytesInFlight: total } = this.config;
    const held = this.perConnection.get(peer) ?? 0;
    if (perConnection > 0 && held >= perConnection) {
      throw new ChatError(
        'resource-exhausted',
        `this connection has ${held} bytes of answers it has not read, its budget ` +
          `(${perConnection}, --max-response-bytes-in-flight-per-connection); read your responses before asking for more`,
      );
    }
    if (total > 0 && this.total >= total) {
      throw new ChatError(
        'resource-exhausted',
        `this server has ${this.total} bytes of answers in flight, its budget (${total}, --max-response-bytes-in-flight); ` +
          'try another server, or again shortly',
      );
    }
  }

  /** Counts `bytes` against `peer` until the returned function is called (once; later calls do nothing). */
  hold(peer: string, bytes: number): () => void {
    this.perConnection.set(peer, (this.perConnection.get(peer) ?? 0) + bytes);
    this.total += bytes;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total -= bytes;
      const left = (this.perConnection.get(peer) ?? 0) - bytes;
      if (left > 0) this.perConnection.set(peer, left);
      else this.perConnection.delete(peer);
    };
  }
}
