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
  /**
   * For a refusal that time lifts (a rate or a budget): in how many whole milliseconds the same
   * request may be admitted. The server sends it to the client as its retry pushback.
   */
  readonly retryAfterMs: number | undefined;

  constructor(
    readonly kind: ChatErrorKind,
    message: string,
    options: { readonly retryAfterMs?: number } = {},
  ) {
    super(message);
    this.retryAfterMs = options.retryAfterMs;
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
