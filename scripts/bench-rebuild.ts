/**
 * The Rebuild figures of `npm run bench`: what uploading a whole copy costs the server against
 * the copy's size, 10^3 to 10^6 messages (BENCH_REBUILD_SIZES), each into a chat the server lacks, in uploads under the
 * server's request limit as the SDK sends them. The figure is the server process's CPU time
 * (from /proc, so the client's encoding is not counted) and the wall time, per size, with the
 * ratio to the size below it (target: 10x the data within 12x the time). The server runs as a
 * process of its own, without an upload budget (it would pace, not measure).
 */
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { credentials, Metadata } from '@grpc/grpc-js';
import { ChatServiceClient, MessageType, RebuildRequest, RebuildResponse } from '../generated/chat/v1/chat.js';
import { processCpuMs, repoRoot, runAndExit, spawnServerProcess, type TargetCheck } from './bench-measure.js';

const sizes = (process.env.BENCH_REBUILD_SIZES ?? '1000,10000,100000,1000000').split(',').map(Number);
/** Messages an upload carries: about 200 KiB of 100-byte messages, under the 256 KiB request limit. */
const PER_UPLOAD = 1_500;
const CONTENT = 'x'.repeat(100);

const children: ChildProcess[] = [];

async function main(): Promise<void> {
  const env = { REBUILD_BYTES_PER_SECOND: '0', MAX_CHAT_BYTES: String(2 * 1024 ** 3), MAX_HELD_BYTES: String(8 * 1024 ** 3), MAX_MESSAGES_PER_CHAT: String(3_000_000) };
  const args = ['--max-old-space-size=8192', path.join(repoRoot(), 'dist/src/server/main.js'), '--insecure'];
  const { address, child } = await spawnServerProcess('the server', args, env, (started) => children.push(started));
  const client = new ChatServiceClient(address, credentials.createInsecure(), { 'grpc.max_receive_message_length': -1 });
  // Answers are kept as bytes: decoding each (up to the server's 1 MiB response budget of the
  // chat) would make the wall time the client's. Only the first part's answer is decoded, for the
  // epoch the later parts carry.
  const rebuild = (request: RebuildRequest) =>
    new Promise<Buffer>((resolve, reject) =>
      client.makeUnaryRequest(
        '/chat.v1.ChatService/Rebuild',
        (r: RebuildRequest) => Buffer.from(RebuildRequest.encode(r).finish()),
        (bytes: Buffer) => bytes,
        request,
        new Metadata(),
        { deadline: Date.now() + 120_000 },
        (error, response) => (error ? reject(error) : resolve(response!)),
      ),
    );

  const figures: { size: number; cpuMs: number; wallMs: number; uploads: number }[] = [];
  // A copy of 10,000 first, not counted: the server's code is compiled (JIT) by the time it is measured.
  for (const [size, counted] of [[10_000, false], ...sizes.map((n) => [n, true] as const)] as const) {
    const chatId = counted ? `rebuild-${size}` : 'warm-up';
    // The copy, encoded up front: the client's work is not the figure.
    const uploads: RebuildRequest[] = [];
    for (let from = 0; from < size; from += PER_UPLOAD) {
      const messages = Array.from({ length: Math.min(PER_UPLOAD, size - from) }, (_, k) => {
        const i = from + k;
        const visitor = i % 2 === 0;
        return { id: `${chatId}-${i}`, dataOffset: Math.floor(i / 2) + 1, content: CONTENT, messageType: visitor ? MessageType.MESSAGE_TYPE_VISITOR : MessageType.MESSAGE_TYPE_AGENT, sendTime: new Date(1_700_000_000_000 + i), senderId: visitor ? 'visitor-1' : 'agent-1', attachments: [] };
      });
      uploads.push({ chat: { id: chatId, visitorDataOffset: 0, agentDataOffset: 0, messages, visitor: undefined, beginTime: undefined, epoch: '', readPositions: [] } });
    }
    const cpuBefore = processCpuMs(child.pid!) ?? NaN;
    const started = performance.now();
    let epoch = '';
    for (const upload of uploads) {
      const answer = await rebuild({ ...upload, chat: { ...upload.chat!, epoch } });
      epoch ||= RebuildResponse.decode(answer).chat?.epoch ?? '';
    }
    const wallMs = performance.now() - started;
    const cpuMs = (processCpuMs(child.pid!) ?? NaN) - cpuBefore;
    if (!counted) continue;
    figures.push({ size, cpuMs, wallMs, uploads: uploads.length });
    console.error(`  a copy of ${size} messages: ${uploads.length} uploads, ${wallMs.toFixed(0)} ms`);
  }
  client.close();

  console.log(`\nRebuild (whole copies into chats the server lacks, ${PER_UPLOAD} messages an upload; server CPU from /proc, in 10 ms steps)`);
  console.log(`${'messages'.padStart(10)} ${'uploads'.padStart(8)} ${'server CPU ms'.padStart(14)} ${'wall ms'.padStart(9)}  ratio to the size below`);
  const targets: TargetCheck[] = [];
  figures.forEach((f, i) => {
    const below = figures[i - 1];
    let ratio = '';
    if (below) {
      // 10x the data within 12x the time, scaled to the step between the sizes.
      const cpu = f.cpuMs / below.cpuMs;
      const bound = (12 * f.size) / below.size / 10;
      const target = `<= ${Number.isInteger(bound) ? bound : bound.toFixed(1)}x`;
      ratio = `${cpu.toFixed(1)}x the CPU for ${(f.size / below.size).toFixed(0)}x the data (target ${target})`;
      targets.push({ figure: `Rebuild server CPU, ${f.size} vs ${below.size} messages`, measured: `${cpu.toFixed(1)}x`, target, met: cpu <= bound });
    }
    console.log(`${String(f.size).padStart(10)} ${String(f.uploads).padStart(8)} ${f.cpuMs.toFixed(0).padStart(14)} ${f.wallMs.toFixed(0).padStart(9)}  ${ratio}`);
  });
  console.log(JSON.stringify({ rebuild: { perUpload: PER_UPLOAD, figures }, targets }));
}

await runAndExit('rebuild bench', main, () => {
  for (const child of children) child.kill('SIGKILL');
});
