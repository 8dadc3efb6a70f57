import { expect } from 'chai';
import { type ServerProcess, spawnLogging } from '../support/servers.js';

/** Whether a process with this pid exists (a zombie counts until its parent reaps it). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw error;
  }
}

/**
 * The README's quick start: `npm start` builds (prestart), then runs the server. npm forwards
 * SIGTERM and SIGINT to the script's process; the server must be that process, not a child of
 * a shell that dies of the signal and leaves the server running (orphaned, still SERVING).
 */
describe('npm start', function () {
  this.timeout(120_000); // the build runs first
  let npm: ServerProcess | undefined;

  afterEach(async () => {
    if (!npm) return;
    try {
      process.kill(-npm.child.pid!, 'SIGKILL'); // npm leads its own process group: whatever it left behind goes too
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
    }
    await npm.exited;
    npm = undefined;
  });

  it('stops the server gracefully, and exits 0 with it, when npm gets SIGTERM', async () => {
    // INSECURE empty: the script's own --insecure is what lets the quick start run without keys.
    npm = await spawnLogging('npm', ['start'], { DRAIN_MS: '200', INSECURE: '' }, { detached: true });
    expect(npm.pid, 'the server runs in a process of its own').not.to.equal(npm.child.pid);
    expect(npm.logs.find((l) => l.msg === 'chat server listening')).to.include({ insecure: true });
    npm.child.kill('SIGTERM');
    const code = await npm.exited;
    expect(alive(npm.pid), `the server (pid ${npm.pid}) after npm exited`).to.equal(false);
    expect(code, `npm's exit code; stderr: ${npm.stderr()}`).to.equal(0);
    const messages = npm.logs.map((l) => l.msg);
    expect(messages.slice(messages.indexOf('shutting down'))).to.deep.equal(['shutting down', 'drain over', 'listener closed', 'stopped']);
  });

  it('drains once for a Ctrl-C, which reaches the server twice (from the terminal and from npm)', async () => {
    // Twice, or once: the kernel merges a signal sent while the same one is still pending.
    npm = await spawnLogging('npm', ['start'], { DRAIN_MS: '1000', INSECURE: '' }, { detached: true });
    process.kill(-npm.child.pid!, 'SIGINT'); // what a terminal does: the whole foreground process group
    const code = await npm.exited;
    expect(alive(npm.pid), `the server (pid ${npm.pid}) after npm exited`).to.equal(false);
    expect(code, `npm's exit code; stderr: ${npm.stderr()}`).to.equal(0);
    const messages = npm.logs.map((l) => l.msg).filter((msg) => msg !== 'signal taken as a repeat');
    expect(messages.slice(messages.indexOf('shutting down'))).to.deep.equal(['shutting down', 'drain over', 'listener closed', 'stopped']);
  });
});
