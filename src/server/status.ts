import { Metadata, type ServiceError, status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { ChatError, type ChatErrorKind } from '../domain/errors.js';

const CODES: Record<ChatErrorKind, status> = {
  'invalid-argument': status.INVALID_ARGUMENT,
  'not-found': status.NOT_FOUND,
  'permission-denied': status.PERMISSION_DENIED,
  'resource-exhausted': status.RESOURCE_EXHAUSTED,
};

/**
 * The one place an error becomes a gRPC status. Domain refusals keep their message; anything
 * else is a bug, logged with its stack and answered INTERNAL with a generic message.
 */
export function toServiceError(error: unknown, method: string, logger: Logger): Partial<ServiceError> {
  if (error instanceof ChatError) {
    return { code: CODES[error.kind], details: error.message, metadata: new Metadata() };
  }
  logger.error({ err: error, method }, 'unexpected error');
  return { code: status.INTERNAL, details: 'internal error; the server logged the details', metadata: new Metadata() };
}
