import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Client, credentials, type ClientDuplexStream, Metadata, type ServiceError } from '@grpc/grpc-js';
import { loadSync, type MethodDefinition } from '@grpc/proto-loader';
import {
  create,
  createFileRegistry,
  type DescField,
  type DescMethod,
  type FileRegistry,
  fromBinary,
  fromJson,
  type JsonValue,
  ScalarType,
  toBinary,
  toJson,
} from '@bufbuild/protobuf';
import { type FileDescriptorProto, FileDescriptorProtoSchema, FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';

/**
 * A grpcurl-style client that knows no compiled service types: everything it encodes or
 * decodes comes from the server's reflection service, so it only works when the served
 * descriptors are complete (their `dependency` lists included, grpc/grpc-node#2595).
 */

// The reflection proto ships inside @grpc/reflection (build/proto), next to its compiled code.
const REFLECTION_PROTO = join(
  dirname(createRequire(import.meta.url).resolve('@grpc/reflection')),
  '../proto/grpc/reflection/v1/reflection.proto',
);

/** Each reflection stream and call fails with DEADLINE_EXCEEDED after this, rather than hang a test. */
const CALL_TIMEOUT_MS = 10_000;

/** The parts of grpc.reflection.v1 messages this client uses (proto-loader's camelCase objects). */
interface ReflectionRequest {
  listServices?: string;
  fileContainingSymbol?: string;
  fileByFilename?: string;
}
interface ReflectionResponse {
  listServicesResponse?: { service: { name: string }[] } | null;
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] } | null;
  errorResponse?: { errorCode: number; errorMessage: string } | null;
}

const SERVER_REFLECTION_INFO = loadSync(REFLECTION_PROTO, { longs: String, enums: String, defaults: true, oneofs: true })[
  'grpc.reflection.v1.ServerReflection'
] as unknown as { ServerReflectionInfo: MethodDefinition<ReflectionRequest, ReflectionResponse> };

/** A reflection error answer (NOT_FOUND for an unknown symbol, say), with its gRPC code. */
export class ReflectionError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** One ServerReflectionInfo stream: the server answers requests in order, one each. */
class ReflectionStream {
  private readonly call: ClientDuplexStream<ReflectionRequest, ReflectionResponse>;
  private readonly waiting: { resolve(r: ReflectionResponse): void; reject(e: Error): void }[] = [];
  private readonly done: Promise<void>;
  private failure: Error | undefined;

  constructor(client: Client) {
    const method = SERVER_REFLECTION_INFO.ServerReflectionInfo;
    this.call = client.makeBidiStreamRequest(method.path, method.requestSerialize, method.responseDeserialize, {
      deadline: Date.now() + CALL_TIMEOUT_MS,
    });
    this.call.on('data', (response: ReflectionResponse) => this.waiting.shift()?.resolve(response));
    this.call.on('error', (error: Error) => this.fail(error));
    this.done = new Promise((resolve) => this.call.on('status', () => resolve()));
    this.call.on('end', () => this.fail(new Error('reflection stream ended with requests unanswered')));
  }

  async ask(request: ReflectionRequest): Promise<ReflectionResponse> {
    if (this.failure) throw this.failure;
    const answer = new Promise<ReflectionResponse>((resolve, reject) => this.waiting.push({ resolve, reject }));
    this.call.write(request);
    const response = await answer;
    if (response.errorResponse) throw new ReflectionError(response.errorResponse.errorCode, response.errorResponse.errorMessage);
    return response;
  }

  async files(request: ReflectionRequest): Promise<FileDescriptorProto[]> {
    const protos = (await this.ask(request)).fileDescriptorResponse?.fileDescriptorProto ?? [];
    return protos.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes));
  }

  /** Half-closes and waits for the server's status, so no stream outlives its caller. */
  async close(): Promise<void> {
    this.call.end();
    await this.done;
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const waiter of this.waiting.splice(0)) waiter.reject(error);
  }
}

/** Runs `use` with a plaintext client and a reflection stream, closing both afterwards. */
async function withReflection<T>(address: string, use: (r: ReflectionStream, c: Client) => Promise<T>): Promise<T> {
  const client = new Client(address, credentials.createInsecure());
  try {
    const stream = new ReflectionStream(client);
    try {
      return await use(stream, client);
    } finally {
      await stream.close();
    }
  } finally {
    client.close();
  }
}

/** The fully-qualified names of the services the server lists, sorted (as grpcurl prints them). */
export async function listServices(address: string): Promise<string[]> {
  return withReflection(address, async (reflection) => {
    const response = await reflection.ask({ listServices: '*' });
    return (response.listServicesResponse?.service ?? []).map((s) => s.name).sort();
  });
}

/**
 * Every file descriptor needed for `symbol`: the file containing it, then each name in each
 * file's `dependency` list by file_by_filename, transitively. Ordered dependencies first.
 */
async function collectFiles(reflection: ReflectionStream, symbol: string): Promise<FileDescriptorProto[]> {
  const byName = new Map<string, FileDescriptorProto>();
  // Answers repeat files already held (each carries what the server thinks it needs).
  const keep = (files: FileDescriptorProto[]) => {
    const fresh = files.filter((f) => !byName.has(f.name));
    for (const file of fresh) byName.set(file.name, file);
    return fresh;
  };
  const pending = keep(await reflection.files({ fileContainingSymbol: symbol }));
  for (let file = pending.pop(); file; file = pending.pop()) {
    for (const dependency of file.dependency) {
      if (!byName.has(dependency)) pending.push(...keep(await reflection.files({ fileByFilename: dependency })));
    }
  }
  // Topological order, because createFileRegistry adds a set's files in the order given. A name
  // that is still missing (or an import cycle) is left for createFileRegistry to reject.
  const seen = new Set<FileDescriptorProto>();
  const ordered: FileDescriptorProto[] = [];
  const visit = (file: FileDescriptorProto) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const dependency of file.dependency) {
      const found = byName.get(dependency);
      if (found) visit(found);
    }
    ordered.push(file);
  };
  byName.forEach(visit);
  return ordered;
}

/** Fetches, over reflection, the file descriptors `symbol` needs (see collectFiles). */
export async function fetchFileDescriptors(address: string, symbol: string): Promise<FileDescriptorProto[]> {
  return withReflection(address, (reflection) => collectFiles(reflection, symbol));
}

/**
 * A strict registry: createFileRegistry throws when a file imports one that is not in the
 * set or uses a type it cannot see, and nothing falls back to the well-known types bundled
 * with @bufbuild/protobuf.
 */
export function strictRegistry(files: readonly FileDescriptorProto[]): FileRegistry {
  return createFileRegistry(create(FileDescriptorSetSchema, { file: [...files] }));
}

/** Fetches the descriptors for `symbol` and builds a strict registry from them. */
export async function reflectRegistry(address: string, symbol: string): Promise<FileRegistry> {
  return strictRegistry(await fetchFileDescriptors(address, symbol));
}

/** Options for {@link invoke}. */
export interface InvokeOptions {
  /** Print fields that hold their default value too (grpcurl's -emit-defaults). */
  readonly emitDefaults?: boolean;
  /** Request metadata, each "name: value" (grpcurl's -H), such as "authorization: Bearer <token>". */
  readonly headers?: readonly string[];
}

/** The metadata of `headers` ("name: value" each). */
function metadataOf(headers: readonly string[] = []): Metadata {
  const metadata = new Metadata();
  for (const header of headers) {
    const colon = header.indexOf(':');
    metadata.add(header.slice(0, colon).trim().toLowerCase(), header.slice(colon + 1).trim());
  }
  return metadata;
}

function findMethod(registry: FileRegistry, serviceName: string, methodName: string): DescMethod {
  const method = registry.getService(serviceName)?.methods.find((m) => m.name === methodName);
  if (!method) throw new Error(`${serviceName}/${methodName} is not in the reflected descriptors`);
  if (method.methodKind !== 'unary' && method.methodKind !== 'server_streaming') {
    throw new Error(`${serviceName}/${methodName} is ${method.methodKind}; only unary and server-streaming calls are supported`);
  }
  return method;
}

/**
 * Calls the unary method `fullMethod` ('pkg.Service/Method'), encoding `request` from protojson
 * with reflected types only, and returns the response as protojson. A non-OK status rejects
 * with grpc-js's ServiceError (its `code` is the status).
 */
export async function invoke(address: string, fullMethod: string, request: JsonValue, options: InvokeOptions = {}): Promise<JsonValue> {
  const responses = await invokeAll(address, fullMethod, request, { ...options, unaryOnly: true });
  return responses[0]!;
}

/**
 * Calls a unary or server-streaming method as {@link invoke} does, and returns every response
 * (one for a unary call) once the call has ended with OK. A stream that has not ended within
 * the call timeout rejects with DEADLINE_EXCEEDED, so a watch that never ends cannot hang a test.
 */
export async function invokeAll(
  address: string,
  fullMethod: string,
  request: JsonValue,
  options: InvokeOptions & { readonly unaryOnly?: boolean } = {},
): Promise<JsonValue[]> {
  const match = /^\/?([\w.]+)[/.](\w+)$/.exec(fullMethod);
  if (!match) throw new Error(`expected pkg.Service/Method, got ${fullMethod}`);
  const [, serviceName = '', methodName = ''] = match;
  return withReflection(address, async (reflection, client) => {
    const registry = strictRegistry(await collectFiles(reflection, serviceName));
    const method = findMethod(registry, serviceName, methodName);
    if (options.unaryOnly && method.methodKind !== 'unary') throw new Error(`${fullMethod} is not unary`);
    const body = Buffer.from(toBinary(method.input, fromJson(method.input, request, { registry })));
    const passThrough = (bytes: Buffer) => bytes;
    const path = `/${serviceName}/${methodName}`;
    const deadline = Date.now() + CALL_TIMEOUT_MS;
    const replies = await new Promise<Buffer[]>((resolve, reject) => {
      if (method.methodKind === 'unary') {
        client.makeUnaryRequest(path, passThrough, passThrough, body, metadataOf(options.headers), { deadline }, (error: ServiceError | null, response?: Buffer) =>
          error ? reject(error) : resolve([response!]),
        );
        return;
      }
      const received: Buffer[] = [];
      const call = client.makeServerStreamRequest(path, passThrough, passThrough, body, metadataOf(options.headers), { deadline });
      call.on('data', (response: Buffer) => received.push(response));
      call.on('error', reject);
      call.on('end', () => resolve(received));
    });
    return replies.map((reply) =>
      toJson(method.output, fromBinary(method.output, reply), { registry, alwaysEmitImplicit: options.emitDefaults ?? false }),
    );
  });
}

function elementType(field: DescField): string {
  if (field.scalar !== undefined) return ScalarType[field.scalar].toLowerCase();
  return `.${(field.enum ?? field.message)!.typeName}`;
}

function fieldType(field: DescField): string {
  if (field.fieldKind === 'list') return `repeated ${elementType(field)}`;
  if (field.fieldKind === 'map') return `map<${ScalarType[field.mapKey].toLowerCase()}, ${elementType(field)}>`;
  return elementType(field);
}

function rpcLine(m: DescMethod): string {
  const stream = (side: string) => (m.methodKind === `${side}_streaming` || m.methodKind === 'bidi_streaming' ? 'stream ' : '');
  return `rpc ${m.name} ( ${stream('client')}.${m.input.typeName} ) returns ( ${stream('server')}.${m.output.typeName} );`;
}

function block(symbol: string, what: string, keyword: string, name: string, body: string[]): string {
  return [`${symbol} is ${what}:`, `${keyword} ${name} {`, ...body.map((line) => `  ${line}`), '}'].join('\n');
}

/** A short grpcurl-like description of a service, method, message or enum, from reflected types. */
export async function describe(address: string, symbol: string): Promise<string> {
  const registry = await reflectRegistry(address, symbol);
  const type = registry.get(symbol);
  switch (type?.kind) {
    case 'service':
      return block(symbol, 'a service', 'service', type.name, type.methods.map(rpcLine));
    case 'message':
      return block(symbol, 'a message', 'message', type.name, type.fields.map((f) => `${fieldType(f)} ${f.name} = ${f.number};`));
    case 'enum':
      return block(symbol, 'an enum', 'enum', type.name, type.values.map((v) => `${v.name} = ${v.number};`));
  }
  const service = registry.getService(symbol.slice(0, symbol.lastIndexOf('.')));
  const method = service?.methods.find((m) => `${service.typeName}.${m.name}` === symbol);
  if (method) return `${symbol} is a method:\n${rpcLine(method)}`;
  throw new Error(`cannot describe ${symbol}: not a service, method, message or enum`);
}
