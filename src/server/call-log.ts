import { ServerInterceptingCall, type ServerInterceptingCallInterface, type ServerInterceptor, status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Config } from './config.js';

/** The statuses that mean the server failed (a bug), logged at error; every other one but OK is a refusal, logged at debug. */
const FAILURES: ReadonlySet<status> = new Set([status.INTERNAL, status.UNKNOWN, status.DATA_LOSS]);

/**
 * A server interceptor that logs one line per call that does not end OK: "call refused" at
 * debug for a status that is the client's doing (INVALID_ARGUMENT, NOT_FOUND,
 * RESOURCE_EXHAUSTED, ... and UNAVAILABLE for a watch ended by a shutdown), "call failed" at
 * error for INTERNAL, UNKNOWN or DATA_LOSS. Each line has the method, the chat id when the
 * request names one (cut to `maxIdBytes` characters), the code's name, the reason sent to the
 * client and the call's duration in ms. A call the client cancelled logs nothing.
 *
 * It must be the server's first interceptor, so the call it wraps is grpc-js's own: it
 * replaces that call's `sendStatus`, through which goes every status, the handlers', other
 * interceptors' (the undecodable requests refuseUndecodable answers) and the ones grpc-js
 * sends by itself before any handler runs (a request larger than the receive limit, a
 * deadline passed), which no interceptor's responder sees.
 * test/server/call-log.test.ts checks a refusal of each kind.
 */
export function logCalls(logger: Logger, { maxIdBytes }: Pick<Config, 'maxIdBytes'>, now: () => number = () => performance.now()): ServerInterceptor {
  return (method, call) => {
    const started = now();
    let chatId: string | undefined;
    let over = false;
    const send = call.sendStatus.bind(call);
    call.sendStatus = (outcome: Parameters<ServerInterceptingCallInterface['sendStatus']>[0]) => {
      if (!over && outcome.code !== status.OK) {
        const failed = FAILURES.has(outcome.code);
        logger[failed ? 'error' : 'debug'](
          {
            method: method.path,
            ...(chatId !== undefined && { chatId }),
            code: status[outcome.code] ?? String(outcome.code),
            details: outcome.details,
            ms: Math.round((now() - started) * 10) / 10,
            peer: call.getPeer(),
          },
          failed ? 'call failed' : 'call refused',
        );
      }
      over = true;
      send(outcome);
    };
    return new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMessage: (message, pass) => {
            chatId ??= chatIdOf(message, maxIdBytes);
            pass(message);
          },
          onCancel: () => {
            over = true;
          },
        }),
    });
  };
}

/** The chat a request names: `chat_id`, or a Rebuild's `chat.id`; none for an empty one or another service's request. */
function chatIdOf(request: unknown, maxChars: number): string | undefined {
  if (typeof request !== 'object' || request === null) return undefined;
  const { chatId, chat } = request as { chatId?: unknown; chat?: { id?: unknown } | null };
  const id = chatId ?? chat?.id;
  if (typeof id !== 'string' || id === '') return undefined;
  return id.length > maxChars ? `${id.slice(0, maxChars)}…` : id;
}
