import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { DEFAULT_CONFIG } from '../../src/server/config.js';
import { DEFAULT_PROBE_TIMEOUT_MS } from '../../src/server/health-probe.js';
import { HEALTHCHECK_COMMAND, PRODUCTION_COMMAND, REPO } from '../support/servers.js';

/** The Dockerfile's instructions, in order: the keyword and the rest of the line (no line continuations are used). */
function instructions(text: string): { keyword: string; args: string }[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.trimStart().startsWith('#'))
    .map((line) => {
      const [, keyword, args] = /^\s*(\S+)\s*(.*)$/.exec(line)!;
      return { keyword: keyword!.toUpperCase(), args: args!.trim() };
    });
}

/**
 * The image cannot be built here (no registry, no daemon), so this checks what can be: that
 * it runs the command the process tests run, probes with the probe they test, and ships the
 * files the build makes.
 */
describe('the Dockerfile and compose.yaml', () => {
  const dockerfile = instructions(readFileSync(join(REPO, 'Dockerfile'), 'utf8'));
  const stages = dockerfile.filter((i) => i.keyword === 'FROM');
  const runtime = dockerfile.slice(dockerfile.lastIndexOf(stages.at(-1)!));
  const last = (keyword: string) => runtime.filter((i) => i.keyword === keyword).at(-1)?.args;

  it('runs the production command the tests spawn, as a user other than root, stopped by SIGTERM', () => {
    expect(stages, 'a build stage and a runtime stage').to.have.length(2);
    expect(JSON.parse(last('ENTRYPOINT')!)).to.deep.equal(PRODUCTION_COMMAND);
    expect(last('CMD'), 'no CMD: arguments to docker run are the server flags').to.equal(undefined);
    expect(last('USER')).to.be.a('string').and.not.match(/^(root|0)(:|$)/);
    expect(last('STOPSIGNAL')).to.equal('SIGTERM');
    expect(last('EXPOSE')).to.equal(String(DEFAULT_CONFIG.port));
  });

  it('probes health with the tested probe, within its own timeout', () => {
    const healthcheck = /^(.*)\bCMD\s+(\[.*\])$/.exec(last('HEALTHCHECK')!)!;
    expect(JSON.parse(healthcheck[2]!)).to.deep.equal(HEALTHCHECK_COMMAND);
    const timeoutS = Number(/--timeout=(\d+)s/.exec(healthcheck[1]!)![1]);
    expect(timeoutS * 1000).to.be.above(DEFAULT_PROBE_TIMEOUT_MS);
  });

  it('copies into the runtime what the build makes, and both commands are in it', () => {
    const copied = runtime.filter((i) => i.keyword === 'COPY' && i.args.startsWith('--from=build')).map((i) => i.args.split(/\s+/)[1]!.replace(/^\/app\//, ''));
    expect(copied).to.include.members(['dist/src', 'dist/generated']);
    for (const path of copied) expect(existsSync(join(REPO, path)), `${path} (npm run build makes it)`).to.equal(true);
    for (const [, script] of [PRODUCTION_COMMAND, HEALTHCHECK_COMMAND]) {
      expect(copied.some((path) => script.startsWith(`${path}/`)), script).to.equal(true);
    }
  });

  it('lets into the build context every path it copies from there', () => {
    const ignore = readFileSync(join(REPO, '.dockerignore'), 'utf8').split('\n');
    const fromContext = dockerfile.filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--from')).flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    expect(ignore).to.include('*');
    for (const path of fromContext) expect(ignore, path).to.satisfy((lines: string[]) => lines.includes(`!${path}`) || lines.includes(`!${path}/`));
  });

  it('gives the servers in compose.yaml longer to stop than their drain and grace take', () => {
    const compose = readFileSync(join(REPO, 'compose.yaml'), 'utf8');
    const graceS = Number(/stop_grace_period:\s*(\d+)s/.exec(compose)![1]);
    const setting = (name: string, fallback: number) => Number(new RegExp(`${name}:\\s*"?(\\d+)`).exec(compose)?.[1] ?? fallback);
    const takesMs = setting('DRAIN_MS', DEFAULT_CONFIG.drainMs) + setting('SHUTDOWN_GRACE_MS', DEFAULT_CONFIG.shutdownGraceMs);
    expect(graceS * 1000).to.be.above(takesMs);
  });
});
