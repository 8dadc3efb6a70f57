import type { handleUnaryCall } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Caller } from '../domain/access.js';
import type { Config } from './config.js';
import type { CallGate } from './placement.js';
import { http2StreamOf, resetCall } from './reset-stream.js';
import type { ResponseBudget } from './response-budget.js';
import { toServiceError } from './status.js';

/** A handler as the service writes it: a request and its authenticated caller in, a response (or a thrown error) out. */
export type UnaryHandler<Req, Res> = (request: Req, caller: Caller) => Res | Promise<Res>;

/** What every unary adapter shares: the logger, the answers in flight, the unary deadline, the gate a call passes. */
export interface UnaryContext extends Pick<Config, 'unaryDeadlineMs'> {
  readonly logger: Logger;
  readonly responses: ResponseBudget;
  readonly gate: CallGate;
}

/** How one method is adapted: its answer's encoder, whether it is a read (refused over budget), the chat its request names. */
export interface UnaryMethod<Req, Res> {
  readonly encode: (response: Res) => Buffer;
  readonly read: boolean;
  readonly chatId: (request: Req) => string;
}

/**
 * Adapts a handler (synchronous or not) to grpc-js's callback style, mapping every error in one place. The
 * call passes the gate first (a call without a good token, or misrouted, is refused before
 * anything else). A
 * read is refused (RESOURCE_EXHAUSTED) while its connection or the server has too many bytes
 * of answers in flight; every answer counts from when it is encoded until its stream closes,
 * and one its client has not taken within `unaryDeadlineMs` is dropped by resetting the stream,
 * which frees it (the client sees RESOURCE_EXHAUSTED, as for a watch cut off).
 */
export function unary<Req, Res>(
  method: string,
  handler: UnaryHandler<Req, Res>,
  { encode, read, chatId }: UnaryMethod<Req, Res>,
  context: UnaryContext,
): handleUnaryCall<Req, Res> {
  const { logger, responses, unaryDeadlineMs, gate } = context;
  return (call, callback) => {
    const peer = call.getPeer();
    const fail = (error: unknown) => callback(toServiceError(error, method, logger));
    const answer = (response: Res) => {
      let bytes: Buffer;
      try {
        bytes = encode(response);
      } catch (error) {
        return fail(error);
      }
      const stream = http2StreamOf(call);
      if (stream !== undefined && !stream.closed) {
        const release = responses.hold(peer, bytes.length);
        const deadline =
          unaryDeadlineMs > 0
            ? setTimeout(() => {
                logger.warn({ method, peer, bytes: bytes.length, unaryDeadlineMs }, 'unary answer dropped: the client did not take it in time');
                resetCall(call);
                release();
              }, unaryDeadlineMs).unref()
            : undefined;
        stream.once('close', () => {
          clearTimeout(deadline);
          release();
        });
      }
      callback(null, bytes as unknown as Res); // withEncodedResponses sends a Buffer as it is
    };
    const run = (caller: Caller) => {
      let response: Res | Promise<Res>;
      try {
        if (read) responses.admit(peer);
        response = handler(call.request, caller);
      } catch (error) {
        return fail(error);
      }
      if (response instanceof Promise) response.then(answer, fail);
      else answer(response);
    };
    // Synchronous when the gate and the handler are (an insecure server, a cached token): a
    // call then costs no promise, and its answer goes out in the same turn.
    let gated: Caller | Promise<Caller>;
    try {
      gated = gate(call.metadata, chatId(call.request));
    } catch (error) {
      return fail(error);
    }
    if (gated instanceof Promise) gated.then(run, fail);
    else run(gated);
  };
}
