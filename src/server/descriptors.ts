import { readFileSync } from 'node:fs';
import { fromBinary } from '@bufbuild/protobuf';
import { type FileDescriptorProto, FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';

/** buf images (with imports) that `npm run generate` writes and `npm run build` copies. */
const IMAGES = ['chat', 'health', 'reflection'].map((name) => new URL(`../../generated/${name}.binpb`, import.meta.url));

let files: FileDescriptorProto[] | undefined;

/**
 * The descriptors of every service the server offers (chat.v1, grpc.health.v1,
 * grpc.reflection.v1 and v1alpha) and of what they import, each file once.
 */
export function servedFiles(): FileDescriptorProto[] {
  if (!files) {
    const byName = new Map<string, FileDescriptorProto>();
    for (const image of IMAGES) {
      for (const file of fromBinary(FileDescriptorSetSchema, readFileSync(image)).file) byName.set(file.name, file);
    }
    files = [...byName.values()];
  }
  return files;
}
