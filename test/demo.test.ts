import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const DEMO = path.join(REPO, 'dist/scripts/demo.js');
const BUILD_TIMEOUT_MS = 120_000;
const DEMO_TIMEOUT_MS = 90_000;

/** The newest modification time under `dir`, in ms (0 for a missing folder). */
async function newestMtimeMs(dir: string): Promise<number> {
  const names = await readdir(dir, { recursive: true }).catch(() => []);
  const times = await Promise.all(names.map(async (name) => (await stat(path.join(dir, name))).mtimeMs));
  return Math.max(0, ...times);
}

/** Whether dist/ lacks the demo or is older than its sources (`npm test` builds first; `mocha FILE` may not). */
async function buildIsStale(): Promise<boolean> {
  const built = await stat(DEMO).then((s) => s.mtimeMs, () => 0);
  const sources = await Promise.all(['scripts', 'src', 'generated'].map((dir) => newestMtimeMs(path.join(REPO, dir))));
  return built < Math.max(...sources);
}

/** The lines of `output` after the heading line that starts with `heading`, up to the first line that is not a transcript line. */
function section(output: string, heading: string): string[] {
  const lines = output.split('\n');
  const start = lines.findIndex((line) => line.trimStart().startsWith(heading));
  if (start < 0) return [];
  const rest = lines.slice(start + 1);
  const end = rest.findIndex((line) => !/^\s+\[(visitor|agent) +\d+\]/.test(line));
  return (end < 0 ? rest : rest.slice(0, end)).map((line) => line.trim());
}

describe('npm run demo', function () {
  this.timeout(BUILD_TIMEOUT_MS + DEMO_TIMEOUT_MS);

  before(async () => {
    if (await buildIsStale()) await promisify(execFile)('npm', ['run', 'build', '--silent'], { cwd: REPO, timeout: BUILD_TIMEOUT_MS });
  });

  it('survives the killed server and ends with identical transcripts and server view, exit code 0', async () => {
    // SIGTERM on timeout lets the demo kill its own servers before it exits.
    const child = spawn(process.execPath, [DEMO], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], timeout: DEMO_TIMEOUT_MS, killSignal: 'SIGTERM' });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const [code] = await once(child, 'exit');

    expect(code, output).to.equal(0);
    expect(output).to.match(/VERDICT: IDENTICAL: the visitor, the agent and server B hold the same 8 messages\./);
    expect(output).to.include('(visitor: rebuild: B did not know the chat: the visitor uploaded 4 messages)');
    expect(output).to.include("(agent: rebuild: B's chat is not the history the agent holds (another epoch; it held visitor 3 / agent 2), so the whole copy went up: the agent uploaded 5 messages)");

    const visitorCopy = section(output, "visitor's copy");
    expect(visitorCopy).to.deep.equal([
      '[visitor 1] visitor: Hi, my order #4711 has not arrived',
      '[agent 1]   agent:   Sorry to hear that! Let me look it up for you.',
      '[agent 2]   agent:   The courier tried to deliver it on Tuesday, but nobody answered the door.',
      '[visitor 2] visitor: Strange, I was at home all day. Can they try again?',
      '[agent 3]   agent:   Of course: I have booked a new delivery for tomorrow between 9 and 12.',
      '[visitor 3] visitor: And if I am out, could they leave it with my neighbour at number 14?',
      '[agent 4]   agent:   Yes, I have added a note for the courier: neighbour at number 14.',
      '[visitor 4] visitor: Perfect, thank you for your help!',
    ]);
    expect(section(output, "agent's copy")).to.deep.equal(visitorCopy);
    expect(section(output, "server B's view")).to.deep.equal(visitorCopy);
  });
});
