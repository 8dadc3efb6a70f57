import { Metadata, type ServiceError, status, type StatusObject } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { ChatError, type ChatErrorKind } from '../domain/errors.js';

const CODES: Record<ChatErrorKind, status> = {
  'invalid-argument': status.INVALID_ARGUMENT,
  'not-found': status.NOT_FOUND,
  unauthenticated: status.UNAUTHENTICATED,
  'permission-denied': status.PERMISSION_DENIED,
  'failed-precondition': status.FAILED_PRECONDITION,
  'resource-exhausted': status.RESOURCE_EXHAUSTED,
  unavailable: status.UNAVAILABLE,
};

/**
 * The trailer that says when to retry a refused call, in whole milliseconds: gRPC's retry
 * pushback (proposal A6), which gRPC clients with a retry policy honour, and so does the SDK.
 */
export const RETRY_PUSHBACK_TRAILER = 'grpc-retry-pushback-ms';

/**
 * The one place an error becomes a gRPC status. Domain refusals keep their message, and one that
 * time lifts says when in its trailers ({@link RETRY_PUSHBACK_TRAILER}); anything else is a bug,
 * logged with its stack and answered INTERNAL with a generic message.
 */
export function toServiceError(error: unknown, method: string, logger: Logger): Partial<ServiceError> {
  if (error instanceof ChatError) {
    const metadata = new Metadata();
    if (error.retryAfterMs !== undefined) metadata.set(RETRY_PUSHBACK_TRAILER, String(error.retryAfterMs));
    return { code: CODES[error.kind], details: error.message, metadata };
  }
  logger.error({ err: error, method }, 'unexpected error');
  return { code: status.INTERNAL, details: 'internal error; the server logged the details', metadata: new Metadata() };
}

/**
 * Ends a watch whose client did not take a response for `stallMs`: it reads too slowly (or
 * not at all), and the server holds no backlog for it.
 */
export function watchFellBehind(chatId: string, stallMs: number): Partial<ServiceError> {
  return {
    code: status.RESOURCE_EXHAUSTED,
    details:
      `the watch of chat "${chatId}" fell behind: the client took no response for ${stallMs} ms; ` +
      'watch again from the offsets of the last response you received',
    metadata: new Metadata(),
  };
}

/** Ends a watch because the server is shutting down. */
export function serverStopping(): Partial<ServiceError> {
  return {
    code: status.UNAVAILABLE,
    details: 'the server is shutting down; watch again from your offsets, on another server if need be',
    metadata: new Metadata(),
  };
}

/**
 * Answers a request that could not be decoded (on any service): the client sent something
 * other than the method's request type, so it is INVALID_ARGUMENT, with the decoder's reason.
 *
 * @param path the method's path, /package.Service/Method
 */
export function undecodableRequest(path: string, reason: string): Pick<StatusObject, 'code' | 'details' | 'metadata'> {
  const method = path.slice(path.lastIndexOf('/') + 1);
  return { code: status.INVALID_ARGUMENT, details: `the ${method} request could not be decoded: ${reason}`, metadata: new Metadata() };
}
