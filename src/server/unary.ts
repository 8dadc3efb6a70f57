import type { handleUnaryCall } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { toServiceError } from './status.js';

/** A handler as the service writes it: a request in, a response (or a thrown error) out. */
export type UnaryHandler<Req, Res> = (request: Req) => Res | Promise<Res>;

/** Adapts an async handler to grpc-js's callback style, mapping every error in one place. */
export function unary<Req, Res>(method: string, handler: UnaryHandler<Req, Res>, logger: Logger): handleUnaryCall<Req, Res> {
  return (call, callback) => {
    Promise.resolve()
      .then(() => handler(call.request))
      .then(
        (response) => callback(null, response),
        (error: unknown) => callback(toServiceError(error, method, logger)),
      );
  };
}
