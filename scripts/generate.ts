/**
 * `npm run generate`: rebuilds generated/ from proto/ (or into another folder, for the
 * staleness check): ts-proto stubs by `buf generate`, and buf images (FileDescriptorSets with
 * their imports) of every service the server offers through reflection.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

const REFLECTION_PROTOS = 'node_modules/@grpc/reflection/build/proto';
const HEALTH_PROTOS = 'node_modules/grpc-health-check/proto';

/** Writes `<root>/generated/...`. */
export function generate(root = '.'): void {
  const out = join(root, 'generated');
  const buf = (...args: string[]) => execFileSync('buf', args, { stdio: 'inherit' });
  buf('generate', '--output', root);
  buf('build', '-o', join(out, 'chat.binpb'));
  buf('build', HEALTH_PROTOS, '-o', join(out, 'health.binpb'));
  buf('build', REFLECTION_PROTOS, '--path', join(REFLECTION_PROTOS, 'grpc'), '-o', join(out, 'reflection.binpb'));
}

if (import.meta.url === `file://${process.argv[1]}`) generate();
