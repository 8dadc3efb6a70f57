import type { Server } from '@grpc/grpc-js';
import type { EnumTypeDefinition } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { toBinary } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import { servedFiles } from './descriptors.js';

/**
 * Adds gRPC server reflection (v1 and v1alpha) for chat.v1, grpc.health.v1 and reflection
 * itself.
 *
 * The descriptors are buf's, not proto-loader's: proto-loader's have empty dependency lists and
 * relative type names, so a grpcurl-style client could not resolve imported types such as
 * google.protobuf.Timestamp (grpc/grpc-node#2595).
 */
export function addReflection(server: Pick<Server, 'addService'>): void {
  // ReflectionService reads only `fileDescriptorProtos` from the package definition it is given.
  const everything: EnumTypeDefinition = {
    format: 'Protocol Buffer 3 EnumDescriptorProto',
    type: {},
    fileDescriptorProtos: servedFiles().map((file) => Buffer.from(toBinary(FileDescriptorProtoSchema, file))),
  };
  new ReflectionService({ descriptors: everything }).addToServer(server);
}
