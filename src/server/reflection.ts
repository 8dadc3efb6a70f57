import { readFileSync } from 'node:fs';
import type { Server } from '@grpc/grpc-js';
import type { EnumTypeDefinition } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';

/** buf images (with imports) that `npm run generate` writes and `npm run build` copies. */
const IMAGES = ['chat', 'health', 'reflection'].map((name) => new URL(`../../generated/${name}.binpb`, import.meta.url));

/**
 * Adds gRPC server reflection (v1 and v1alpha) for chat.v1, grpc.health.v1 and reflection
 * itself.
 *
 * The descriptors are buf's, not proto-loader's: proto-loader's have empty dependency lists and
 * relative type names, so a grpcurl-style client could not resolve imported types such as
 * google.protobuf.Timestamp (grpc/grpc-node#2595).
 */
export function addReflection(server: Pick<Server, 'addService'>): void {
  const files = IMAGES.flatMap((image) => fromBinary(FileDescriptorSetSchema, readFileSync(image)).file);
  // ReflectionService reads only `fileDescriptorProtos` from the package definition it is given.
  const everything: EnumTypeDefinition = {
    format: 'Protocol Buffer 3 EnumDescriptorProto',
    type: {},
    fileDescriptorProtos: files.map((file) => Buffer.from(toBinary(FileDescriptorProtoSchema, file))),
  };
  new ReflectionService({ descriptors: everything }).addToServer(server);
}
