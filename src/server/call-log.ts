import { status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { CallTap } from './call-taps.js';
import type { Config } from './config.js';

/** The statuses that mean the server failed (a bug), logged at error; every other one but OK is a refusal, logged at debug. */
const FAILURES: ReadonlySet<status> = new Set([status.INTERNAL, status.UNKNOWN, status.DATA_LOSS]);

/**
 * A call tap (src/server/call-taps.ts, which hears every status, grpc-js's own refusals too)
 * that logs one line per call that does not end OK: "call refused" at debug for a status that is
 * the client's doing (INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED, ... and UNAVAILABLE for a
 * watch ended by a shutdown), "call failed" at error for INTERNAL, UNKNOWN or DATA_LOSS. Each line
 * has the method, the chat id when the request names one (cut to `maxIdBytes` characters), the
 * code's name, the reason sent to the client and the call's duration in ms. A call the client
 * cancelled logs nothing.
 */
export function logCalls(logger: Logger, { maxIdBytes }: Pick<Config, 'maxIdBytes'>): CallTap {
  return (method, call) => {
    let chatId: string | undefined;
    return {
      received: (request) => {
        chatId ??= chatIdOf(request, maxIdBytes);
      },
      ended: ({ code, details, ms }) => {
        if (code === status.OK) return;
        const failed = FAILURES.has(code);
        logger[failed ? 'error' : 'debug'](
          {
            method: method.path,
            ...(chatId !== undefined && { chatId }),
            code: status[code] ?? String(code),
            details,
            ms: Math.round(ms * 10) / 10,
            peer: call.getPeer(),
          },
          failed ? 'call failed' : 'call refused',
        );
      },
    };
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
