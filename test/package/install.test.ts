/**
 * The SDK as its users get it: `npm pack` of this repository (which runs `prepare`, the build
 * a git install runs too), installed into two apps outside the repository, an ESM one and a
 * CommonJS one, each run as its own process against a real server, and type-checked with the
 * module settings their TypeScript projects may have.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { testToken } from '../support/security.js';
import { startTestServer, type TestServer } from '../support/servers.js';
import { APP_SCRIPT, describeRun, type Finished, type Flavour, run, TYPE_CHECKS, writeApp } from './consumer-apps.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TSC = join(ROOT, 'node_modules', '.bin', 'tsc');
const FLAVOURS: readonly Flavour[] = ['esm', 'cjs'];
/** What only the server runs with (server/package.json), which an SDK user must not get. */
const SERVER_ONLY = ['pino', '@grpc/reflection', 'grpc-health-check'];
/** Every path the package may ship: the two builds of the SDK and the stubs, and the contract. */
const SHIPPED = /^(package\.json|README\.md|proto\/.+\.proto|docs\/[a-z]+\.md|dist\/cjs\/package\.json|dist\/(esm|cjs)\/(src\/client\/[a-z-]+|src\/domain\/(conversation|message)|generated\/[a-z0-9/]+)\.(js|js\.map|d\.ts))$/;
/** npm and node calls get this long before they count as hung (installs may fetch metadata). */
const DEADLINE_MS = 60_000;

interface Packed {
  readonly filename: string;
  readonly files: readonly { readonly path: string }[];
}

/** Every file path the `exports` map names, without its leading `./`. */
function exportTargets(exports: unknown): string[] {
  if (typeof exports === 'string') return [exports.replace(/^\.\//, '')];
  return Object.values(exports as Record<string, unknown>).flatMap(exportTargets);
}

/** Every package name in an `npm ls --json` tree. */
function packageNames(tree: { dependencies?: Record<string, unknown> }): string[] {
  return Object.entries(tree.dependencies ?? {}).flatMap(([name, child]) => [name, ...packageNames(child as typeof tree)]);
}

function parsed<T>(what: string, finished: Finished): T {
  expect(finished.code, describeRun(what, finished)).to.equal(0);
  return JSON.parse(finished.stdout) as T;
}

describe('SDK package: packed, installed into apps outside the repository', function () {
  this.timeout(120_000); // about 20 s on this 2-core machine; installs may fetch package metadata

  const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    version: string;
    exports: unknown;
    dependencies: Record<string, string>;
  };
  let scratch: string;
  let packed: Packed;
  let server: TestServer;

  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'chat-sdk-package-'));
    const packs = parsed<Packed[]>('npm pack', await run('npm', ['pack', '--json', '--pack-destination', scratch], ROOT, DEADLINE_MS));
    expect(packs.map((pack) => pack.filename)).to.deep.equal([`chat-rebuild-${manifest.version}.tgz`]);
    packed = packs[0]!;
    server = await startTestServer();
    // The apps use @grpc/grpc-js themselves (credentials for the stubs), as the SDK's range.
    const grpc = `@grpc/grpc-js@${manifest.dependencies['@grpc/grpc-js']}`;
    const installs = await Promise.all(
      FLAVOURS.map((flavour) => {
        writeApp(join(scratch, flavour), flavour, join(ROOT, 'node_modules', '@types'));
        const args = ['install', '--prefer-offline', '--no-audit', '--no-fund', join(scratch, packed.filename), grpc];
        return run('npm', args, join(scratch, flavour), DEADLINE_MS);
      }),
    );
    for (const [i, install] of installs.entries()) expect(install.code, describeRun(`npm install in the ${FLAVOURS[i]} app`, install)).to.equal(0);
  });

  after(async () => {
    await server?.close();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('ships only the built SDK, proto/ and docs/: no tests, no scripts, no TypeScript sources, no server', () => {
    const paths = packed.files.map((file) => file.path);
    // The SDK's doc comments point at the protocol reference and design: they ship too.
    expect(paths).to.include.members(['docs/reference.md', 'docs/protocol.md']);
    expect(paths.filter((path) => !SHIPPED.test(path))).to.deep.equal([]);
    expect(paths.filter((path) => /^(test|scripts|src|server)\/|\/server\//.test(path))).to.deep.equal([]);
  });

  it('ships every file its exports name, for import and require alike', () => {
    const paths = new Set(packed.files.map((file) => file.path));
    const targets = exportTargets(manifest.exports);
    expect(targets).to.include('dist/cjs/src/client/index.js').and.include('dist/esm/src/client/index.d.ts');
    expect(targets.filter((target) => !paths.has(target))).to.deep.equal([]);
  });

  for (const flavour of FLAVOURS) {
    describe(`the ${flavour === 'esm' ? 'ESM' : 'CommonJS'} app`, () => {
      const app = () => join(scratch, flavour);

      it("gets only the SDK's dependencies, none of the server's", async () => {
        const tree = parsed<{ dependencies?: Record<string, unknown> }>('npm ls', await run('npm', ['ls', '--omit=dev', '--all', '--json'], app(), DEADLINE_MS));
        const names = packageNames(tree);
        expect(names).to.include.members(['chat-rebuild', '@grpc/grpc-js', '@bufbuild/protobuf']);
        expect(names.filter((name) => SERVER_ONLY.includes(name))).to.deep.equal([]);
      });

      it('opens ChatSessions that send and read, and uses the generated stubs, against a real server', async () => {
        // Without require(esm) (Node before 20.19, older Electron), a CommonJS app gets the
        // CommonJS build or nothing.
        const nodeArgs = flavour === 'cjs' && process.allowedNodeEnvironmentFlags.has('--experimental-require-module') ? ['--no-experimental-require-module'] : [];
        const chatId = `package-${flavour}`;
        const tokens = {
          visitor: await testToken({ sub: 'visitor-1', role: 'visitor', chatId }),
          agent: await testToken({ sub: 'agent-1', role: 'agent' }),
          reader: await testToken({ sub: 'reader', role: 'service' }),
        };
        const finished = await run(process.execPath, [...nodeArgs, APP_SCRIPT, server.address, chatId, JSON.stringify(tokens)], app(), DEADLINE_MS);
        const seen = parsed<Record<string, unknown>>(`the ${flavour} app`, finished);
        expect(seen.loadedFrom).to.match(new RegExp(`/node_modules/chat-rebuild/dist/${flavour}/src/client/index\\.js$`));
        expect(seen).to.deep.include({
          sentOffset: 1,
          synced: [`hello from the ${flavour} app`],
          read: [
            ['MESSAGE_TYPE_VISITOR', `hello from the ${flavour} app`],
            ['MESSAGE_TYPE_AGENT', 'hello back'],
          ],
          health: 'SERVING',
        });
      });

      for (const check of TYPE_CHECKS[flavour]) {
        it(`type-checks with module ${check.module}, moduleResolution ${check.moduleResolution}, against the ${flavour} declarations`, async () => {
          const finished = await run(TSC, ['-p', check.tsconfig, '--listFiles'], app(), DEADLINE_MS);
          expect(finished.code, describeRun(`tsc -p ${check.tsconfig}`, finished)).to.equal(0);
          const declarations = finished.stdout.split('\n').filter((file) => /\/node_modules\/chat-rebuild\/dist\/[a-z]+\/src\/client\/index\.d\.ts$/.test(file));
          expect(declarations.map((file) => file.replace(/.*\/node_modules\//, ''))).to.deep.equal([`chat-rebuild/dist/${flavour}/src/client/index.d.ts`]);
        });
      }
    });
  }
});
