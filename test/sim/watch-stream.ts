import type { ServiceError } from '@grpc/grpc-js';
import type { WatchChatRequest, WatchChatResponse } from '../../generated/chat/v1/chat.js';
import type { WatchFeed } from '../../src/server/watch-feed.js';
import type { SimServer } from './sim-server.js';

type Arrival = { readonly response: WatchChatResponse } | { readonly end: true } | { readonly error: ServiceError };

/**
 * One simulated WatchChat stream: the server side (the feed the real handler returned, and
 * whether a response is in flight) and the client side (an async iterator over what the
 * network delivered). The network moves it along; see SimNetwork.
 */
export class SimStream implements AsyncIterable<WatchChatResponse> {
  /** The server's feed, once the network delivered the open. */
  feed: WatchFeed | undefined;
  state: 'opening' | 'open' | 'closed' = 'opening';
  /** A response (or the end) is in the network, or arrived and was not taken yet. */
  busy = false;
  private readonly arrived: Arrival[] = [];
  private waiter: { resolve(r: IteratorResult<WatchChatResponse>): void; reject(e: Error): void } | undefined;
  private finished = false;
  private readonly finishListeners: (() => void)[] = [];

  constructor(
    readonly id: number,
    readonly client: string,
    readonly server: SimServer,
    readonly incarnation: number,
    readonly request: WatchChatRequest,
    /** Called when the client's iterator took a response: the server may pull the next one. */
    private readonly onTaken: (stream: SimStream) => void,
    /** Called when the client gives up the stream (abort, or leaving the loop). */
    private readonly onCancel: (stream: SimStream) => void,
  ) {}

  /** Tells `listener` once the client's side is over (ended, broken or cancelled). */
  onFinished(listener: () => void): void {
    this.finishListeners.push(listener);
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    for (const listener of this.finishListeners.splice(0)) listener();
  }

  /** Closes the server side: the feed and its subscription. */
  closeFeed(): void {
    this.state = 'closed';
    this.feed?.close();
  }

  /** Something reached the client. */
  arrive(arrival: Arrival): void {
    this.arrived.push(arrival);
    this.hand();
  }

  /** The client stopped: the iterator ends, whatever is still on its way is dropped. */
  cancelled(): void {
    this.finish();
    this.arrived.length = 0;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.resolve({ done: true, value: undefined });
  }

  [Symbol.asyncIterator](): AsyncIterator<WatchChatResponse> {
    return {
      next: () =>
        new Promise<IteratorResult<WatchChatResponse>>((resolve, reject) => {
          if (this.finished) return resolve({ done: true, value: undefined });
          this.waiter = { resolve, reject };
          this.hand();
        }),
      return: async () => {
        this.onCancel(this);
        return { done: true, value: undefined };
      },
    };
  }

  private hand(): void {
    const waiter = this.waiter;
    const arrival = this.arrived[0];
    if (!waiter || !arrival) return;
    this.waiter = undefined;
    this.arrived.shift();
    if ('response' in arrival) {
      waiter.resolve({ done: false, value: arrival.response });
      this.onTaken(this);
    } else {
      this.finish();
      if ('error' in arrival) waiter.reject(arrival.error);
      else waiter.resolve({ done: true, value: undefined });
    }
  }
}
