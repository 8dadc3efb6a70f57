import {
  type Deadline,
  type Metadata,
  type ServerInterceptingCall,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
  type ServerMethodDefinition,
  type status,
} from '@grpc/grpc-js';

type Call = ServerInterceptingCallInterface;
type InterceptingServerListener = Parameters<Call['start']>[0];
/** A status as a call sends it (grpc-js does not export the type by name). */
export type PartialStatusObject = Parameters<Call['sendStatus']>[0];

/** How a call ended: the status the server sent, and how long after the call began. */
export interface CallEnd {
  readonly code: status;
  readonly details: string;
  readonly ms: number;
}

/** What hears one call, from its start to its end. */
export interface CallListener {
  /** Each request message, decoded. */
  readonly received?: (request: unknown) => void;
  /** Each response message sent (by the handler or an interceptor). */
  readonly sent?: () => void;
  /** The call's status went out, whoever sent it: the handler, an interceptor, or grpc-js itself. */
  readonly ended: (end: CallEnd) => void;
  /** The call was cancelled (by the client, or a reset of its stream) before any status went out; `ended` is not called. */
  readonly cancelled?: (ms: number) => void;
}

/** A method as grpc-js describes it to an interceptor. */
export type Method = ServerMethodDefinition<unknown, unknown>;

/** Starts hearing one call, as it begins (before its request): its method, and the call for its peer. */
export type CallTap = (method: Method, call: Pick<ServerInterceptingCallInterface, 'getPeer'>) => CallListener;

/** What the server's one interceptor does to each call, beside letting the taps hear it. */
export interface CallHooks {
  /** Who hears every call (the call log, the metrics). */
  readonly taps: readonly CallTap[];
  /**
   * The status a received request is refused with before any handler sees it (one that could
   * not be decoded: src/server/decoding.ts), or undefined to pass it on.
   */
  readonly refusal?: (method: Method, request: unknown) => PartialStatusObject | undefined;
  /**
   * Metadata every answer of a method carries, or undefined for none (the insecure mark:
   * src/server/insecure-marker.ts). It is merged in, never changed: one object serves every call.
   */
  readonly responseMetadata?: (method: Method) => Metadata | undefined;
}

/**
 * The server's interceptor: lets each tap hear every call, refuses requests `hooks.refusal`
 * names, and adds `hooks.responseMetadata`. It must be the server's first (and is its only)
 * interceptor, so the call it wraps is grpc-js's own: it replaces that call's `sendStatus`,
 * through which goes every status, the handlers', the refusals' and the ones grpc-js sends by
 * itself before any handler runs (a request larger than the receive limit, a deadline passed),
 * which no interceptor's responder sees. test/server/call-log.test.ts checks a refusal of each kind.
 *
 * One layer, written against grpc-js's call interface rather than its ServerInterceptingCall:
 * each ServerInterceptingCall layer costs a call a dozen objects and closures, and the health
 * check on this server took a quarter more CPU with the three interceptors these hooks were.
 */
export function interceptCalls(hooks: CallHooks, now: () => number = () => performance.now()): ServerInterceptor {
  // grpc-js types an interceptor's result as its ServerInterceptingCall class, and uses only
  // the call interface, which HookedCall implements.
  return (method, call) => new HookedCall(call, method, hooks, now) as unknown as ServerInterceptingCall;
}

/** One call through {@link interceptCalls}. */
class HookedCall implements ServerInterceptingCallInterface {
  private readonly started: number;
  private readonly listeners: CallListener[];
  private over = false;
  /** A request was refused: nothing more of the call reaches the handler. */
  private refused = false;
  private sentMetadata = false;
  /** What {@link CallHooks.responseMetadata} adds to this call's answer. */
  private readonly extraMetadata: Metadata | undefined;

  /** @param nextCall grpc-js's own call (the name src/server/reset-stream.ts walks to find its stream) */
  constructor(
    private readonly nextCall: ServerInterceptingCallInterface,
    private readonly method: Method,
    private readonly hooks: CallHooks,
    private readonly now: () => number,
  ) {
    this.started = now();
    this.extraMetadata = hooks.responseMetadata?.(method);
    this.listeners = hooks.taps.map((tap) => tap(method, nextCall));
    const send = nextCall.sendStatus.bind(nextCall);
    nextCall.sendStatus = (outcome) => {
      this.end(outcome);
      send(outcome);
    };
  }

  start(listener: InterceptingServerListener): void {
    this.nextCall.start({
      onReceiveMetadata: (metadata) => {
        if (!this.refused) listener.onReceiveMetadata(metadata);
      },
      onReceiveMessage: (message) => {
        if (this.refused) return;
        for (const tap of this.listeners) tap.received?.(message);
        const refusal = this.hooks.refusal?.(this.method, message);
        if (refusal === undefined) return listener.onReceiveMessage(message);
        this.refused = true;
        this.sendStatus(refusal);
      },
      onReceiveHalfClose: () => {
        if (!this.refused) listener.onReceiveHalfClose();
      },
      onCancel: () => {
        if (!this.over) {
          const ms = this.now() - this.started;
          for (const tap of this.listeners) tap.cancelled?.(ms);
        }
        this.over = true;
        listener.onCancel();
      },
    });
  }

  sendMetadata(metadata: Metadata): void {
    this.sentMetadata = true;
    if (this.extraMetadata) metadata.merge(this.extraMetadata);
    this.nextCall.sendMetadata(metadata);
  }

  sendMessage(message: unknown, callback: () => void): void {
    // The first message carries the response metadata: ours, when no handler sent any.
    if (!this.sentMetadata && this.extraMetadata) {
      this.sentMetadata = true;
      this.nextCall.sendMetadata(this.extraMetadata.clone());
    }
    for (const tap of this.listeners) tap.sent?.();
    this.nextCall.sendMessage(message, callback);
  }

  sendStatus(outcome: PartialStatusObject): void {
    this.nextCall.sendStatus(outcome); // through the replaced sendStatus: the taps hear it there
  }

  startRead(): void {
    this.nextCall.startRead();
  }

  getPeer(): string {
    return this.nextCall.getPeer();
  }

  getDeadline(): Deadline {
    return this.nextCall.getDeadline();
  }

  getHost(): string {
    return this.nextCall.getHost();
  }

  getAuthContext(): ReturnType<Call['getAuthContext']> {
    return this.nextCall.getAuthContext();
  }

  getConnectionInfo(): ReturnType<Call['getConnectionInfo']> {
    return this.nextCall.getConnectionInfo();
  }

  getMetricsRecorder(): ReturnType<Call['getMetricsRecorder']> {
    return this.nextCall.getMetricsRecorder();
  }

  /** Tells the taps how the call ended, once. */
  private end(outcome: PartialStatusObject): void {
    if (!this.over) {
      const end = { code: outcome.code, details: outcome.details, ms: this.now() - this.started };
      for (const tap of this.listeners) tap.ended(end);
    }
    this.over = true;
  }
}
