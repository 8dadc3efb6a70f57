/**
 * The cluster figure of `npm run bench`: three server processes behind HAProxy running
 * deploy/haproxy.cfg, and load processes (scripts/bench-cluster-load.ts) holding BENCH_CLUSTER_CHATS
 * chats (4,000: 10,000 took two of the five minutes `npm run bench` has) of
 * BENCH_CLUSTER_MESSAGES messages (20), each with a visitor and an agent SDK session watching
 * through the one front address. It measures, in one run:
 * - delivery by push in the steady state (a visitor's send until its agent holds it);
 * - throughput and latency of GetNewMessage through HAProxy against direct to the server
 *   holding the chats asked about, with the same load processes;
 * - recovery: SIGKILL the server holding the most chats, every visitor sends at once, and the
 *   figure is the time from the kill until each agent holds that message by push (its chat
 *   rebuilt on its new server from the copies, where it was on the dead one). The last one is
 *   the recovery time.
 * It prints a table and ends with the figures as one JSON line. Needs haproxy (apt-get install -y haproxy).
 */
import { type ChildProcess, fork, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer, connect } from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ClusterCommand, ClusterLoadSettings, ClusterReport } from './bench-cluster-load.js';
import { figures, noTarget, repoRoot, runAndExit, setting, spawnServerProcess, type TargetCheck } from './bench-measure.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const STARTUP_TIMEOUT_MS = 20_000;
const PROBE_TIMEOUT_MS = 120_000;
const SERVER_NAMES = ['chat-a', 'chat-b', 'chat-c'] as const;

const settings = {
  chats: setting('BENCH_CLUSTER_CHATS', 4_000, 3, 20_000),
  messages: setting('BENCH_CLUSTER_MESSAGES', 20, 2, 1_000),
  loaders: setting('BENCH_CLUSTER_LOADERS', 2, 1, 8),
  proxySeconds: setting('BENCH_PROXY_SECONDS', 5, 1, 60),
  proxyConcurrency: setting('BENCH_PROXY_CONCURRENCY', 64, 1, 1_000),
};

const children = new Set<ChildProcess>();
const started = performance.now();
const elapsed = () => `${((performance.now() - started) / 1000).toFixed(1).padStart(5)} s`;
const progress = (text: string) => console.error(`  [${elapsed()}] ${text}`);
let stopping = false;

function killAll(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

/** A server process on 127.0.0.1, as deploy/ runs it (the x-chat-id check on), with room for every watcher after a failover. */
async function startServer(name: string): Promise<{ name: string; address: string; child: ChildProcess }> {
  const main = path.join(repoRoot(), 'dist/src/server/main.js');
  const { address, child } = await spawnServerProcess(name, [main, '--insecure'], { REQUIRE_CHAT_ID_HEADER: 'true', MAX_WATCHERS: '100000' }, (c) => children.add(c));
  child.once('exit', (code, signal) => {
    if (!stopping && signal !== 'SIGKILL') console.error(`${name} exited (${signal ?? code}) during the run`);
  });
  return { name, address, child };
}

/** HAProxy running deploy/haproxy.cfg as it is, its frontend on a free port; its request log lines, as they come. */
async function startHaproxy(backends: readonly string[]): Promise<{ address: string; logs: string[] }> {
  const binary = ['haproxy', '/usr/sbin/haproxy'].find((b) => spawnSync(b, ['-v']).status === 0);
  if (!binary) throw new Error('haproxy is needed for the cluster figure: apt-get install -y haproxy');
  const port = await freePort();
  const env = {
    ...process.env,
    CHAT_FRONT: `127.0.0.1:${port}`,
    CHAT_A: backends[0],
    CHAT_B: backends[1],
    CHAT_C: backends[2],
  };
  const child = spawn(binary, ['-f', path.join(repoRoot(), 'deploy/haproxy.cfg'), '-db'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const logs: string[] = [];
  for (const stream of [child.stdout!, child.stderr!]) createInterface({ input: stream }).on('line', (line) => logs.push(line));
  for (const deadline = Date.now() + STARTUP_TIMEOUT_MS; ; ) {
    const socket = connect(port, '127.0.0.1');
    const up = await new Promise<boolean>((resolve) => socket.once('connect', () => resolve(true)).once('error', () => resolve(false)));
    socket.destroy();
    if (up) break;
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`haproxy did not listen on ${port}: ${logs.slice(-5).join('\n')}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { address: `127.0.0.1:${port}`, logs };
}

/** Which server each chat's calls went to, from HAProxy's request log (`chat/chat-a ... {chat id}`). */
function homesOf(logs: readonly string[]): Map<string, string> {
  const homes = new Map<string, string>();
  for (const entry of logs) {
    const match = / chat\/(chat-[abc]) .* \{([^}]*)\} /.exec(entry);
    if (match?.[2]) homes.set(match[2], match[1]!);
  }
  return homes;
}

interface Loader {
  readonly child: ChildProcess;
  ask(command: ClusterCommand): Promise<ClusterReport>;
}

function startLoader(load: ClusterLoadSettings): Loader {
  const child = fork(path.join(HERE, 'bench-cluster-load.js'), [JSON.stringify(load)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(child);
  child.once('exit', (code, signal) => {
    if (!stopping) console.error(`a load process exited (${signal ?? code}) during the run`);
  });
  return {
    child,
    ask: (command) =>
      new Promise((resolve, reject) => {
        child.once('message', (report: ClusterReport) => resolve(report));
        child.once('exit', () => reject(new Error('a load process exited')));
        child.send(command);
      }),
  };
}

const ms = (value: number) => `${value.toFixed(1)} ms`;

async function main(): Promise<void> {
  progress(`starting 3 servers and HAProxy (deploy/haproxy.cfg)`);
  const servers = await Promise.all(SERVER_NAMES.map(startServer));
  const haproxy = await startHaproxy(servers.map((s) => s.address));
  const perLoader = Math.ceil(settings.chats / settings.loaders);
  const loaders = Array.from({ length: settings.loaders }, (_, i) =>
    startLoader({ front: haproxy.address, from: i * perLoader, to: Math.min(settings.chats, (i + 1) * perLoader), messages: settings.messages, sessionsPerConnection: 400 }),
  );
  const all = async <R extends ClusterReport>(command: ClusterCommand | ((i: number) => ClusterCommand)) =>
    (await Promise.all(loaders.map((l, i) => l.ask(typeof command === 'function' ? command(i) : command)))) as R[];

  progress(`opening ${settings.chats} chats of ${settings.messages} messages, a visitor and an agent session each, rebuilt from their copies`);
  const opened = await all<Extract<ClusterReport, { kind: 'opened' }>>({ kind: 'open' });
  const openSeconds = Math.max(...opened.map((o) => o.ms)) / 1000;

  const probeAll = async (label: string, since: number, chatIds: readonly string[]) => {
    const reports = await all<Extract<ClusterReport, { kind: 'probed' }>>({ kind: 'probe', label, since, timeoutMs: PROBE_TIMEOUT_MS, chatIds });
    const latencies = reports.flatMap((r) => r.latencies);
    return { delivered: latencies.length, of: reports.reduce((n, r) => n + r.of, 0), rebuilds: reports.reduce((n, r) => n + r.rebuilds, 0), ...figures(latencies) };
  };
  const homes = homesOf(haproxy.logs);
  const held = Object.fromEntries(SERVER_NAMES.map((name) => [name, [...homes.values()].filter((h) => h === name).length]));
  const busiest = servers.reduce((a, b) => ((held[b.name] ?? 0) > (held[a.name] ?? 0) ? b : a));
  const measured = servers.find((s) => s !== busiest)!;
  const chatsOf = (name: string) => [...homes].filter(([, home]) => home === name).map(([id]) => id);
  const chatIds = chatsOf(measured.name);
  const doomed = chatsOf(busiest.name);
  const unary = async (address: string) => {
    const reports = await all<Extract<ClusterReport, { kind: 'unary' }>>({ kind: 'unary', address, seconds: settings.proxySeconds, concurrency: Math.ceil(settings.proxyConcurrency / settings.loaders), chatIds });
    const seconds = Math.max(...reports.map((r) => r.seconds));
    return { perSecond: reports.reduce((n, r) => n + r.calls, 0) / seconds, errors: reports.reduce((n, r) => n + r.errors, 0), ...figures(reports.flatMap((r) => r.latencies)) };
  };
  progress(`GetNewMessage on the ${chatIds.length} chats ${measured.name} holds: direct, then through HAProxy`);
  const direct = await unary(measured.address);
  const proxied = await unary(haproxy.address);
  progress(`steady state: the visitors of the ${doomed.length} chats ${busiest.name} holds send at once`);
  const steady = await probeAll('steady', performance.timeOrigin + performance.now(), doomed);

  progress(`SIGKILL ${busiest.name}; the visitors of its ${doomed.length} chats send at once`);
  const healthChanges = () => haproxy.logs.filter((line) => / is (DOWN|UP)\b/.test(line) && !line.startsWith('[')).length;
  const flapsBefore = healthChanges();
  const killedAt = performance.timeOrigin + performance.now();
  busiest.child.kill('SIGKILL');
  const recovery = await probeAll('recovery', killedAt, doomed);

  const rows = [
    ['setup', `${settings.chats} chats x ${settings.messages} messages, ${settings.chats * 2} SDK sessions in ${settings.loaders} load processes, opened and rebuilt in ${openSeconds.toFixed(1)} s; chats per server ${JSON.stringify(held)}`],
    ['push, steady', `the same chats, before the kill, sending at once: ${steady.delivered}/${steady.of} delivered; p50 ${ms(steady.p50Ms)}, p99 ${ms(steady.p99Ms)}, max ${ms(steady.maxMs)}`],
    ['GetNewMessage direct', `${direct.perSecond.toFixed(0)} calls/s, p50 ${ms(direct.p50Ms)}, p99 ${ms(direct.p99Ms)}, errors ${direct.errors}`],
    ['GetNewMessage via HAProxy', `${proxied.perSecond.toFixed(0)} calls/s, p50 ${ms(proxied.p50Ms)}, p99 ${ms(proxied.p99Ms)}, errors ${proxied.errors}`],
    ['proxy ratio', `${(proxied.perSecond / direct.perSecond).toFixed(2)}x the calls/s of direct; p50 ${(proxied.p50Ms / direct.p50Ms).toFixed(2)}x (${settings.proxyConcurrency} in flight; a Node load client, so this compares the paths at the client's pace)`],
    ['recovery', `${recovery.delivered}/${recovery.of} of the dead server's chats delivering again; ${recovery.rebuilds} rebuilds; from the kill: p50 ${ms(recovery.p50Ms)}, p99 ${ms(recovery.p99Ms)}, all within ${ms(recovery.maxMs)}`],
  ];
  console.log('\nCluster (3 servers behind HAProxy, deploy/haproxy.cfg)');
  for (const [what, figure] of rows) console.log(`  ${what!.padEnd(26)} ${figure}`);
  const flaps = healthChanges() - flapsBefore;
  console.log(`  ${'health changes'.padEnd(26)} ${flaps} logged by HAProxy after the kill (the dead server going down${flaps > 1 ? ', and others flapping under the load' : ''}); ${steady.rebuilds} rebuilds in the steady probe`);
  const targets: TargetCheck[] = [
    noTarget(`cluster recovery after a kill, ${recovery.of} chats, p50 / all within`, `${ms(recovery.p50Ms)} / ${ms(recovery.maxMs)}`),
    noTarget('cluster GetNewMessage via HAProxy, x of direct', `${(proxied.perSecond / direct.perSecond).toFixed(2)}x`),
  ];
  console.log(JSON.stringify({ cluster: { settings, held, openSeconds, steady, direct, proxied, proxyRatio: proxied.perSecond / direct.perSecond, recovery, healthChanges: flaps }, targets }));
  if (recovery.delivered < recovery.of) throw new Error(`${recovery.of - recovery.delivered} chats did not deliver within ${PROBE_TIMEOUT_MS} ms of the kill`);
}

process.once('exit', killAll);
await runAndExit('cluster bench', main, () => {
  stopping = true;
  killAll();
});
