import {
  ServerInterceptingCall,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
  type ServerMethodDefinition,
  type status,
} from '@grpc/grpc-js';

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

/** Starts hearing one call, as it begins (before its request): its method, and the call for its peer. */
export type CallTap = (method: ServerMethodDefinition<unknown, unknown>, call: Pick<ServerInterceptingCallInterface, 'getPeer'>) => CallListener;

/**
 * A server interceptor that lets each tap hear every call (the call log, the metrics). It must
 * be the server's first interceptor, so the call it wraps is grpc-js's own: it replaces that
 * call's `sendStatus`, through which goes every status, the handlers', other interceptors' (the
 * undecodable requests refuseUndecodable answers) and the ones grpc-js sends by itself before
 * any handler runs (a request larger than the receive limit, a deadline passed), which no
 * interceptor's responder sees. Only the first interceptor gets that call, which is why every
 * tap shares this one. test/server/call-log.test.ts checks a refusal of each kind.
 */
export function tapCalls(taps: readonly CallTap[], now: () => number = () => performance.now()): ServerInterceptor {
  return (method, call) => {
    const started = now();
    const listeners = taps.map((tap) => tap(method, call));
    let over = false;
    const send = call.sendStatus.bind(call);
    call.sendStatus = (outcome: Parameters<ServerInterceptingCallInterface['sendStatus']>[0]) => {
      if (!over) {
        const end = { code: outcome.code, details: outcome.details, ms: now() - started };
        for (const listener of listeners) listener.ended(end);
      }
      over = true;
      send(outcome);
    };
    return new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMessage: (message, pass) => {
            for (const listener of listeners) listener.received?.(message);
            pass(message);
          },
          onCancel: () => {
            if (!over) {
              const ms = now() - started;
              for (const listener of listeners) listener.cancelled?.(ms);
            }
            over = true;
          },
        }),
      sendMessage: (message, next) => {
        for (const listener of listeners) listener.sent?.();
        next(message);
      },
    });
  };
}
