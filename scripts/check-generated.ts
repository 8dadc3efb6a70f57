/**
 * Fails when generated/ is not exactly what `npm run generate` makes from proto/: regenerates
 * into a temporary folder and compares every file byte for byte.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { generate } from './generate.js';

const committed = 'generated';
const scratch = mkdtempSync(join(tmpdir(), 'chat-generated-'));
try {
  const fresh = join(scratch, committed);
  generate(scratch);

  const want = files(fresh);
  const have = files(committed);
  const names = new Set([...want.keys(), ...have.keys()]);
  const stale = [...names].filter((name) => !want.has(name) || !have.get(name)?.equals(want.get(name)!));
  if (stale.length > 0) {
    console.error(`generated/ is stale (${stale.join(', ')}): run \`npm run generate\` and commit the result.`);
    process.exit(1);
  }
  console.log(`generated/ is up to date (${want.size} files).`);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}

function files(root: string): Map<string, Buffer> {
  const found = new Map<string, Buffer>();
  for (const entry of readdirSync(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    found.set(relative(root, path), readFileSync(path));
  }
  return found;
}
