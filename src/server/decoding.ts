import { create, createFileRegistry, type DescMessage, type FileRegistry, fromBinary } from '@bufbuild/protobuf';
import { BinaryReader, getTextEncoding } from '@bufbuild/protobuf/wire';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import type { Server, ServerMethodDefinition, ServiceDefinition } from '@grpc/grpc-js';
import type { PartialStatusObject } from './call-taps.js';
import { servedFiles } from './descriptors.js';
import { undecodableRequest } from './status.js';
import { timestampCheck } from './timestamps.js';

const UNDECODABLE = Symbol('undecodable');

/** The bytes each decoded request arrived in (see {@link requestBytes}). */
const requestSizes = new WeakMap<object, number>();

/** What a request that could not be decoded is replaced with. */
interface Undecodable {
  readonly [UNDECODABLE]: string;
}

/** Decodes a string field strictly: invalid UTF-8 throws instead of becoming U+FFFD. */
const strictUtf8 = (bytes: Uint8Array) => getTextEncoding().decodeUtf8(bytes, true);

/**
 * Wraps every method's request decoder so that a request that cannot be decoded reaches
 * {@link undecodableRefusal} as a marker instead of failing inside grpc-js, which would answer
 * INTERNAL. A request cannot be decoded when it is not valid protobuf for its type, carries an
 * int64 beyond 2^53 (which the generated code cannot represent), a string that is not UTF-8,
 * or a google.protobuf.Timestamp outside its range (years 1 to 9999, nanos 0 to 999999999).
 *
 * Timestamps are checked on the raw fields (timestamps.ts). Strings: the ts-proto decoders of
 * this project's own services (`generated: true`) are handed a @bufbuild/protobuf reader that
 * decodes strings strictly, at no extra cost; for services another loader made (health and
 * reflection, by proto-loader), whose decoders substitute U+FFFD, the request is decoded once
 * more with @bufbuild/protobuf (strict) from the descriptors the server serves: their
 * requests are small.
 */
export function withDecodeFailures<S extends ServiceDefinition>(
  service: S,
  options: { readonly generated?: boolean; readonly sized?: readonly string[] } = {},
  registry: FileRegistry = servedRegistry(),
): S {
  const wrapped: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(service)) {
    const schema = requestSchema(registry, method.path);
    const checkTimestamps = timestampCheck(schema);
    const sized = options.sized?.includes(name) ?? false;
    const decode: (bytes: Buffer) => unknown = options.generated
      ? (bytes) => method.requestDeserialize(new BinaryReader(bytes, strictUtf8) as unknown as Buffer) // ts-proto's decode takes a reader too
      : (bytes) => (fromBinary(schema, bytes), method.requestDeserialize(bytes));
    wrapped[name] = {
      ...method,
      requestDeserialize(bytes: Buffer): unknown {
        try {
          checkTimestamps?.(bytes);
          const request = decode(bytes);
          if (sized && typeof request === 'object' && request !== null) requestSizes.set(request, bytes.length);
          return request;
        } catch (error) {
          return { [UNDECODABLE]: error instanceof Error ? error.message : String(error) } satisfies Undecodable;
        }
      },
    };
  }
  return wrapped as S;
}

/**
 * How many bytes `request` arrived in, as its decoder (from {@link withDecodeFailures}, for the
 * methods it was told to size) was handed them; undefined for a request that did not come off
 * the wire, or of another method.
 */
export function requestBytes(request: object): number | undefined {
  return requestSizes.get(request);
}

/**
 * A view of `server` whose `addService` wraps each service with {@link withDecodeFailures}, for
 * services that add themselves (health, reflection) as well as the chat service.
 */
export function decodingServer(server: Server, registry: FileRegistry = servedRegistry()): Server {
  const addService: Server['addService'] = (service, implementation) =>
    server.addService(withDecodeFailures(service, {}, registry), implementation);
  return new Proxy(server, {
    get: (target, key) => (key === 'addService' ? addService : (Reflect.get(target, key, target) as unknown)),
  });
}

/**
 * The status a request that could not be decoded (the marker {@link withDecodeFailures} put in
 * its place) is refused with, INVALID_ARGUMENT; undefined for a request that was decoded. A hook
 * of the server's interceptor (src/server/call-taps.ts), so no handler ever sees the marker.
 */
export function undecodableRefusal(method: Pick<ServerMethodDefinition<unknown, unknown>, 'path'>, request: unknown): PartialStatusObject | undefined {
  const failure = decodeFailure(request);
  return failure === undefined ? undefined : undecodableRequest(method.path, failure);
}

/** The decoder's reason when `request` is the marker for an undecodable request. */
export function decodeFailure(request: unknown): string | undefined {
  return typeof request === 'object' && request !== null && UNDECODABLE in request
    ? (request as Undecodable)[UNDECODABLE]
    : undefined;
}

let registry: FileRegistry | undefined;

/** The registry of every file the server serves. */
function servedRegistry(): FileRegistry {
  return (registry ??= createFileRegistry(create(FileDescriptorSetSchema, { file: servedFiles() })));
}

function requestSchema(registry: FileRegistry, path: string): DescMessage {
  const [, service, methodName] = path.split('/');
  const method = registry.getService(service ?? '')?.methods.find((m) => m.name === methodName);
  if (!method) throw new Error(`no descriptor for ${path}: add its file to src/server/descriptors.ts`);
  return method.input;
}
