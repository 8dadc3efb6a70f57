import { type ServiceError, status } from '@grpc/grpc-js';

/** Why an SDK operation failed for good. */
export type ChatSdkErrorKind =
  /** The server refused the request (bad input, limits): retrying the same request cannot help. */
  | 'rejected'
  /** The caller's AbortSignal fired. */
  | 'aborted'
  /** The session was closed. */
  | 'closed';

/** The one error type the SDK rejects with. */
export class ChatSdkError extends Error {
  override readonly name = 'ChatSdkError';

  constructor(
    readonly kind: ChatSdkErrorKind,
    message: string,
    /** The gRPC status code, for `rejected`. */
    readonly code?: status,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * Statuses that say nothing about the request itself, so the same request may succeed on
 * another attempt or server: the server is gone or overloaded, or a proxy broke the call
 * (proxies surface a dead upstream as INTERNAL or UNKNOWN as often as UNAVAILABLE).
 */
const TRANSIENT = new Set<status>([
  status.UNAVAILABLE,
  status.DEADLINE_EXCEEDED,
  status.INTERNAL,
  status.UNKNOWN,
  status.RESOURCE_EXHAUSTED,
  status.ABORTED,
  status.CANCELLED,
]);

/** Whether a failed call is worth retrying (on this or another server). */
export function isTransient(error: unknown): boolean {
  const code = (error as Partial<ServiceError>).code;
  return typeof code === 'number' && TRANSIENT.has(code);
}

/** The error to reject with for a call that failed for good. */
export function rejected(error: ServiceError): ChatSdkError {
  return new ChatSdkError('rejected', `${status[error.code]}: ${error.details}`, error.code, { cause: error });
}
