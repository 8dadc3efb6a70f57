import type { ServiceDefinition } from '@grpc/grpc-js';

const UNDECODABLE = Symbol('undecodable');

/** What a request that could not be decoded is replaced with. */
interface Undecodable {
  readonly [UNDECODABLE]: string;
}

/**
 * Wraps every method's request decoder so that a request that is not valid protobuf for its
 * type (or carries an int64 beyond 2^53, which the generated code cannot represent) reaches the
 * handler as a marker instead of failing inside grpc-js, which would answer INTERNAL. The
 * handler adapter then answers INVALID_ARGUMENT with the decoder's reason.
 */
export function withDecodeFailures<S extends ServiceDefinition>(service: S): S {
  const wrapped: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(service)) {
    wrapped[name] = {
      ...method,
      requestDeserialize(bytes: Buffer): unknown {
        try {
          return method.requestDeserialize(bytes);
        } catch (error) {
          return { [UNDECODABLE]: error instanceof Error ? error.message : String(error) } satisfies Undecodable;
        }
      },
    };
  }
  return wrapped as S;
}

/** The decoder's reason when `request` is the marker for an undecodable request. */
export function decodeFailure(request: unknown): string | undefined {
  return typeof request === 'object' && request !== null && UNDECODABLE in request
    ? (request as Undecodable)[UNDECODABLE]
    : undefined;
}
