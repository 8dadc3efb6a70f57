import { readFileSync } from 'node:fs';
import type { Server } from '@grpc/grpc-js';
import { loadSync, type EnumTypeDefinition } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { protoPath as healthProtoPath } from 'grpc-health-check';

/** buf's image of proto/ with its imports: `npm run generate` writes it, `npm run build` copies it. */
const DESCRIPTOR_SET = new URL('../../generated/chat.binpb', import.meta.url);

/**
 * Adds gRPC server reflection (v1 and v1alpha) for chat.v1 and grpc.health.v1.
 *
 * The chat descriptors come from buf's image, not from proto-loader: proto-loader's
 * descriptors have empty dependency lists, so a grpcurl-style client could not resolve
 * imported types such as google.protobuf.Timestamp (grpc/grpc-node#2595).
 */
export function addReflection(server: Pick<Server, 'addService'>): void {
  const image = fromBinary(FileDescriptorSetSchema, readFileSync(DESCRIPTOR_SET));
  // The reflection service reads only fileDescriptorProtos from each entry.
  const chat: EnumTypeDefinition = {
    format: 'Protocol Buffer 3 EnumDescriptorProto',
    type: {},
    fileDescriptorProtos: image.file.map((file) => Buffer.from(toBinary(FileDescriptorProtoSchema, file))),
  };
  const health = loadSync(healthProtoPath);
  new ReflectionService({ ...health, 'chat.v1': chat }).addToServer(server);
}
