import { create, createFileRegistry, type DescMessage, type FileRegistry, fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { type Server, ServerInterceptingCall, type ServerInterceptor, type ServiceDefinition } from '@grpc/grpc-js';
import { servedFiles } from './descriptors.js';
import { undecodableRequest } from './status.js';

const UNDECODABLE = Symbol('undecodable');

/** What a request that could not be decoded is replaced with. */
interface Undecodable {
  readonly [UNDECODABLE]: string;
}

/** The range of google.protobuf.Timestamp's seconds: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z. */
const MIN_TIMESTAMP_SECONDS = -62_135_596_800n;
const MAX_TIMESTAMP_SECONDS = 253_402_300_799n;
const MAX_TIMESTAMP_NANOS = 999_999_999;

/**
 * Wraps every method's request decoder so that a request that cannot be decoded reaches
 * {@link refuseUndecodable} as a marker instead of failing inside grpc-js, which would answer
 * INTERNAL. A request cannot be decoded when it is not valid protobuf for its type, carries an
 * int64 beyond 2^53 (which the generated code cannot represent), a string that is not UTF-8,
 * or a google.protobuf.Timestamp outside its range (years 1 to 9999, nanos 0 to 999999999).
 *
 * The last two are checked by decoding the request once more with @bufbuild/protobuf, from
 * the descriptors the server also serves by reflection: it decodes proto3 strings strictly
 * (its TextDecoder is `fatal`) and keeps a Timestamp's fields as sent, where the generated
 * decoders substitute U+FFFD (ts-proto and proto-loader alike) and turn a Timestamp into a Date.
 */
export function withDecodeFailures<S extends ServiceDefinition>(service: S, registry: FileRegistry = servedRegistry()): S {
  const wrapped: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(service)) {
    const schema = requestSchema(registry, method.path);
    wrapped[name] = {
      ...method,
      requestDeserialize(bytes: Buffer): unknown {
        try {
          checkTimestamps(fromBinary(schema, bytes), '');
          return method.requestDeserialize(bytes);
        } catch (error) {
          return { [UNDECODABLE]: error instanceof Error ? error.message : String(error) } satisfies Undecodable;
        }
      },
    };
  }
  return wrapped as S;
}

/**
 * A view of `server` whose `addService` wraps each service with {@link withDecodeFailures}, for
 * services that add themselves (health, reflection) as well as the chat service.
 */
export function decodingServer(server: Server, registry: FileRegistry = servedRegistry()): Server {
  const addService: Server['addService'] = (service, implementation) =>
    server.addService(withDecodeFailures(service, registry), implementation);
  return new Proxy(server, {
    get: (target, key) => (key === 'addService' ? addService : (Reflect.get(target, key, target) as unknown)),
  });
}

/**
 * A server interceptor that answers a request replaced by the marker with INVALID_ARGUMENT
 * (the decoder's reason), before any handler sees it: one place for every service, unary and
 * streaming alike.
 */
export const refuseUndecodable: ServerInterceptor = (method, call) => {
  const intercepting: ServerInterceptingCall = new ServerInterceptingCall(call, {
    start: (next) =>
      next({
        onReceiveMessage: (message, pass) => {
          const failure = decodeFailure(message);
          if (failure === undefined) return pass(message);
          intercepting.sendStatus(undecodableRequest(method.path, failure));
        },
      }),
  });
  return intercepting;
};

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

/** Throws for a google.protobuf.Timestamp anywhere in `value` that is out of range. */
function checkTimestamps(value: unknown, path: string): void {
  if (typeof value !== 'object' || value === null || ArrayBuffer.isView(value)) return;
  if (Array.isArray(value)) {
    value.forEach((item, i) => checkTimestamps(item, `${path}[${i}]`));
    return;
  }
  const record = value as Record<string, unknown>;
  if (record.$typeName === 'google.protobuf.Timestamp') {
    const seconds = record.seconds as bigint;
    const nanos = record.nanos as number;
    if (seconds < MIN_TIMESTAMP_SECONDS || seconds > MAX_TIMESTAMP_SECONDS) {
      throw new Error(`${path}: seconds ${seconds} lies outside 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z`);
    }
    if (nanos < 0 || nanos > MAX_TIMESTAMP_NANOS) throw new Error(`${path}: nanos ${nanos} lies outside 0 to ${MAX_TIMESTAMP_NANOS}`);
    return;
  }
  // A oneof that is set is a { case, value } object without a $typeName; `case` names the field.
  if (record.$typeName === undefined && typeof record.case === 'string') {
    checkTimestamps(record.value, join(path, record.case));
    return;
  }
  for (const [key, field] of Object.entries(record)) {
    if (key !== '$typeName' && key !== '$unknown') checkTimestamps(field, join(path, key));
  }
}

const join = (path: string, field: string) => {
  const name = field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  return path ? `${path}.${name}` : name;
};
