import type { ServiceDefinition } from '@grpc/grpc-js';

/**
 * Wraps every method's response encoder so that an answer a handler adapter already encoded
 * (a Buffer) goes out as it is. The adapters encode each answer themselves to count its bytes
 * in flight (src/server/response-budget.ts); this spares encoding it a second time.
 */
export function withEncodedResponses<S extends ServiceDefinition>(service: S): S {
  const wrapped: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(service)) {
    wrapped[name] = {
      ...method,
      responseSerialize: (value: unknown): Buffer => (Buffer.isBuffer(value) ? value : method.responseSerialize(value)),
    };
  }
  return wrapped as S;
}
