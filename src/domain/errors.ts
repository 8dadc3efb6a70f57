/**
 * Typed domain failures. The server turns each kind into one gRPC status in one place
 * (src/server/status.ts); the domain itself knows nothing of gRPC.
 */
export type ChatErrorKind =
  | 'invalid-argument'
  | 'not-found'
  | 'unauthenticated'
  | 'permission-denied'
  | 'failed-precondition'
  | 'resource-exhausted'
  | 'unavailable';

/** A request the domain refuses. Refusals never change any chat. */
export class ChatError extends Error {
  override readonly name = 'ChatError';

  constructor(
    readonly kind: ChatErrorKind,
    message: string,
  ) {
    super(message);
  }
}

/** Shorthand for an INVALID_ARGUMENT refusal. */
export function invalid(message: string): ChatError {
  return new ChatError('invalid-argument', message);
}

/** Shorthand for a PERMISSION_DENIED refusal: the caller is known, and may not do this. */
export function denied(message: string): ChatError {
  return new ChatError('permission-denied', message);
}
