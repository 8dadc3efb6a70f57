import { type ServiceError, status } from '@grpc/grpc-js';

/** Why an SDK operation failed for good. */
export type ChatSdkErrorKind =
  /** The server refused the request (bad input, limits): retrying the same request cannot help. */
  | 'rejected'
  /** The caller's AbortSignal fired. */
  | 'aborted'
  /** The session was closed. */
  | 'closed'
  /** The session's options cannot work (an empty or malformed server list): fix them and open again. */
  | 'invalid-options';

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

/**
 * How gRPC servers word the refusal of a request above their max receive message length
 * (grpc-js: "Received message larger than max (N vs M)", grpc-go: "grpc: received message
 * larger than max (N vs. M)"). The same request fails the same way on every attempt.
 */
const TOO_LARGE = /received message larger than max/i;

/** Whether a failed call is worth retrying (on this or another server). */
export function isTransient(error: unknown): boolean {
  const { code, details } = error as Partial<ServiceError>;
  return typeof code === 'number' && TRANSIENT.has(code) && !(code === status.RESOURCE_EXHAUSTED && TOO_LARGE.test(details ?? ''));
}

/** The trailer in which a server says when to retry a refused call: gRPC's retry pushback (proposal A6), in whole milliseconds. */
export const RETRY_PUSHBACK_TRAILER = 'grpc-retry-pushback-ms';

/**
 * How long the server asked before the call is tried again: its {@link RETRY_PUSHBACK_TRAILER},
 * when that is a whole number of milliseconds. Undefined without one, and for a negative or
 * malformed one, which A6 reads as "do not retry": the call is then treated as if it had none.
 */
export function retryPushbackMs(error: unknown): number | undefined {
  const [value] = (error as Partial<ServiceError>).metadata?.get(RETRY_PUSHBACK_TRAILER) ?? [];
  return typeof value === 'string' && /^\d+$/.test(value) && Number.isSafeInteger(Number(value)) ? Number(value) : undefined;
}

/** Whether the server refused a request for its size (its max receive message length). */
export function isTooLarge(error: unknown): boolean {
  return error instanceof ChatSdkError && error.code === status.RESOURCE_EXHAUSTED && TOO_LARGE.test(error.message);
}

/** The error to reject with for a call that failed for good (a failure without a gRPC status keeps its own message). */
export function rejected(error: ServiceError | Error): ChatSdkError {
  const { code } = error as Partial<ServiceError>;
  if (typeof code !== 'number') return new ChatSdkError('rejected', error.message, undefined, { cause: error });
  return new ChatSdkError('rejected', `${status[code]}: ${(error as ServiceError).details}`, code, { cause: error });
}
