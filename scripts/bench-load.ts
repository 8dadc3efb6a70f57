/**
 * The load process of `npm run bench`, started by scripts/bench.ts (not run by hand): it drives
 * a chat server in another process through the generated client and measures, in this one
 * process (so send and receipt share a clock), how long a visitor's message takes to reach the
 * chat's agent: first with every agent holding a WatchChat stream (push), then with every agent
 * polling GetNewMessage (polling), once per poll interval asked for. Alongside each mode it
 * times a cheap unary call, GetNewMessage on an empty chat, as the baseline. It reports progress
 * and the figures to its parent over IPC.
 */
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { type ClientReadableStream, credentials, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import {
  ChatServiceClient,
  type GetNewMessageRequest,
  type GetNewMessageResponse,
  MessageType,
  type RebuildResponse,
  ResultCode,
  type WatchChatResponse,
} from '../generated/chat/v1/chat.js';
import {
  DRAIN_MS,
  figures,
  LOOP_DELAY_RESOLUTION_MS,
  type LoadMessage,
  type LoadReport,
  type LoadSettings,
  machineBusyMs,
  type Mode,
  Pacer,
  type PhaseReport,
  processCpuMs,
  Window,
} from './bench-measure.js';

/** Baseline calls go round these empty chats. */
const BASELINE_CHATS = 10;
/** Chats created (and rebuilt, and watched) at once during setup. */
const SETUP_CONCURRENCY = 64;
/** How often the pacers check what is due. */
const TICK_MS = 1;

interface Chat {
  readonly id: string;
  readonly visitor: ChatServiceClient;
  readonly agent: ChatServiceClient;
  epoch: string;
  /** The visitor's contiguous visitor offset, from its acknowledgements. */
  visitorOffset: number;
  /** The agent's contiguous visitor offset, from what it received. */
  agentHeld: number;
  sent: number;
  watch: ClientReadableStream<WatchChatResponse> | undefined;
  polling: boolean;
}

const settings = JSON.parse(process.argv[2] ?? '') as LoadSettings;
const tell = (message: LoadMessage) => new Promise<void>((resolve) => process.send!(message, undefined, undefined, () => resolve()));
const progress = (text: string) => void tell({ kind: 'progress', text });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const options = () => ({ deadline: Date.now() + settings.callTimeoutMs });

// Without the parent nobody stops the run: end with it.
const orphaned = () => process.exit(1);
process.on('disconnect', orphaned);

let current = new Window();
const pacers = new Set<Pacer>();
const ticker = setInterval(() => {
  const now = performance.now();
  for (const pacer of pacers) pacer.tick(now);
}, TICK_MS);

/**
 * Separate channels: grpc-js shares one connection among clients of one address unless each
 * keeps its own subchannel pool.
 */
const channels = Array.from(
  { length: settings.channels },
  () => new ChatServiceClient(settings.address, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }),
);
const channel = (n: number) => channels[n % channels.length]!;

function getNewMessage(client: ChatServiceClient, request: GetNewMessageRequest): Promise<GetNewMessageResponse> {
  return new Promise((resolve, reject) =>
    client.getNewMessage(request, new Metadata(), options(), (error, response) => (error ? reject(error) : resolve(response))),
  );
}

function rebuildEmpty(client: ChatServiceClient, chatId: string): Promise<RebuildResponse> {
  const chat = { id: chatId, visitorDataOffset: 0, agentDataOffset: 0, messages: [], visitor: undefined, beginTime: undefined, epoch: '', readPositions: [] };
  return new Promise((resolve, reject) =>
    client.rebuild({ chat }, new Metadata(), options(), (error, response) => (error ? reject(error) : resolve(response))),
  );
}

/** Creates a chat as a client would find it missing: a read answers REBUILD_REQUIRED, the client uploads its (empty) copy. */
async function createChat(client: ChatServiceClient, chatId: string): Promise<string> {
  const read = await getNewMessage(client, { chatId, visitorOffset: 0, agentOffset: 0, epoch: '' });
  if (read.code !== ResultCode.RESULT_CODE_REBUILD_REQUIRED) throw new Error(`chat ${chatId} already existed: is the server fresh?`);
  const rebuilt = await rebuildEmpty(client, chatId);
  if (rebuilt.code !== ResultCode.RESULT_CODE_OK || !rebuilt.chat?.epoch) throw new Error(`the rebuild of ${chatId} failed`);
  return rebuilt.chat.epoch;
}

/** The agent of `chat` takes what arrived. */
function take(chat: Chat, messages: readonly { id: string; messageType: MessageType }[], at: number): void {
  for (const message of messages) {
    if (message.messageType === MessageType.MESSAGE_TYPE_VISITOR) chat.agentHeld += 1;
    current.received(message.id, at);
  }
}

/** Opens the agent's WatchChat stream and resolves on its first response (the watch is then established). */
function watch(chat: Chat): Promise<void> {
  return new Promise((resolve, reject) => {
    const call = chat.agent.watchChat({ chatId: chat.id, visitorOffset: chat.agentHeld, agentOffset: 0, epoch: chat.epoch });
    chat.watch = call;
    call.on('data', (response: WatchChatResponse) => {
      const at = performance.now();
      if (response.code !== ResultCode.RESULT_CODE_OK) {
        current.errors += 1;
        return reject(new Error(`the watch of ${chat.id} answered ${ResultCode[response.code]}`));
      }
      take(chat, response.messages, at);
      resolve();
    });
    call.on('error', (error: ServiceError) => {
      if (chat.watch !== call) return; // cancelled on purpose
      current.errors += 1;
      reject(error);
    });
  });
}

function send(chat: Chat): void {
  const id = `${chat.id}-m${(chat.sent += 1)}`;
  const counted = current.recording;
  const target = current;
  const startedAt = performance.now();
  if (counted) {
    target.inFlight.set(id, startedAt);
    target.sends += 1;
  }
  const message = { id, dataOffset: 0, content: `message ${chat.sent}`, messageType: MessageType.MESSAGE_TYPE_VISITOR, sendTime: undefined, senderId: '', attachments: [] };
  chat.visitor.addVisitorMessage(
    { chatId: chat.id, visitorOffset: chat.visitorOffset, agentOffset: 0, message, epoch: chat.epoch },
    new Metadata(),
    options(),
    (error, response) => {
      const at = performance.now();
      if (error || response.code !== ResultCode.RESULT_CODE_OK || !response.message) {
        target.errors += 1;
        target.inFlight.delete(id);
        return;
      }
      if (counted) target.sendAck.push(at - startedAt);
      chat.visitorOffset = Math.max(chat.visitorOffset, response.message.dataOffset);
    },
  );
}

function poll(chat: Chat): void {
  if (chat.polling) {
    if (current.recording) current.pollsSkipped += 1;
    return;
  }
  chat.polling = true;
  if (current.recording) current.polls += 1;
  const target = current;
  chat.agent.getNewMessage(
    { chatId: chat.id, visitorOffset: chat.agentHeld, agentOffset: 0, epoch: chat.epoch },
    new Metadata(),
    options(),
    (error, response) => {
      const at = performance.now();
      chat.polling = false;
      if (error || response.code !== ResultCode.RESULT_CODE_OK) target.errors += 1;
      else take(chat, response.messages, at);
    },
  );
}

function probe(client: ChatServiceClient, chatId: string, epoch: string): void {
  const counted = current.recording;
  const target = current;
  const startedAt = performance.now();
  client.getNewMessage({ chatId, visitorOffset: 0, agentOffset: 0, epoch }, new Metadata(), options(), (error, response) => {
    if (error || response.code !== ResultCode.RESULT_CODE_OK || response.messages.length > 0) target.errors += 1;
    else if (counted) target.baseline.push(performance.now() - startedAt);
  });
}

/** Runs `work` over `items`, `limit` at a time. */
async function inBatches<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Resolves once every message sent in the window has arrived, or after `timeoutMs`. */
async function drain(timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (current.inFlight.size > 0 && performance.now() < deadline) await sleep(10);
}

/**
 * Warm-up, then the measured window, then a drain, with the agents polling every
 * `pollIntervalMs` throughout (or, when it is undefined, receiving on their watches).
 */
async function runPhase(chats: readonly Chat[], probes: Pacer, pollIntervalMs: number | undefined): Promise<PhaseReport> {
  const mode: Mode = pollIntervalMs === undefined ? 'push' : 'polling';
  const name = pollIntervalMs === undefined ? 'push' : `polling every ${pollIntervalMs} ms`;
  const sender = new Pacer((chats.length * 1000) / settings.sendEveryMs, (n) => send(chats[n % chats.length]!));
  const running = [sender, probes];
  if (pollIntervalMs !== undefined) running.push(new Pacer((chats.length * 1000) / pollIntervalMs, (n) => poll(chats[n % chats.length]!)));
  for (const pacer of running) {
    pacer.start();
    pacers.add(pacer);
  }
  progress(`${name}: warming up for ${settings.warmupSeconds} s (not counted)`);
  await sleep(settings.warmupSeconds * 1000);

  progress(`${name}: measuring for ${settings.measureSeconds} s`);
  current = new Window();
  current.recording = true;
  const loopDelay = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });
  loopDelay.enable();
  const startedAt = performance.now();
  const loadCpu = process.cpuUsage();
  const serverCpu = processCpuMs(settings.serverPid);
  const machineCpu = machineBusyMs();
  await sleep(settings.measureSeconds * 1000);
  current.recording = false;
  const elapsedMs = performance.now() - startedAt;
  const { user, system } = process.cpuUsage(loadCpu);
  const serverCpuAfter = processCpuMs(settings.serverPid);
  const machineCpuAfter = machineBusyMs();
  loopDelay.disable();
  sender.stop();
  probes.stop();

  await drain(DRAIN_MS + (pollIntervalMs ?? 0));
  for (const pacer of running) {
    pacer.stop();
    pacers.delete(pacer);
  }
  const measured = current;
  return {
    mode,
    pollIntervalMs,
    seconds: elapsedMs / 1000,
    sends: measured.sends,
    sendsPerSecond: (measured.sends * 1000) / elapsedMs,
    delivery: figures(measured.delivery),
    undelivered: measured.inFlight.size,
    sendAck: figures(measured.sendAck),
    baseline: figures(measured.baseline),
    pollsPerSecond: (measured.polls * 1000) / elapsedMs,
    pollsSkipped: measured.pollsSkipped,
    errors: measured.errors,
    loadCpuPercent: ((user + system) / 1000 / elapsedMs) * 100,
    serverCpuPercent: serverCpu === undefined || serverCpuAfter === undefined ? undefined : ((serverCpuAfter - serverCpu) / elapsedMs) * 100,
    machineCpuPercent: machineCpu === undefined || machineCpuAfter === undefined ? undefined : ((machineCpuAfter - machineCpu) / elapsedMs) * 100,
    // The histogram records whole timer periods: the delay is what exceeds the resolution.
    loadLoopDelayP99Ms: Math.max(0, loopDelay.percentile(99) / 1e6 - LOOP_DELAY_RESOLUTION_MS),
  };
}

async function main(): Promise<LoadReport> {
  const setupStartedAt = performance.now();
  progress(`setup: creating and rebuilding ${settings.chats} chats, opening ${settings.chats} watches`);
  const chats: Chat[] = Array.from({ length: settings.chats }, (_, n) => ({
    id: `bench-chat-${n}`,
    visitor: channel(2 * n),
    agent: channel(2 * n + 1),
    epoch: '',
    visitorOffset: 0,
    agentHeld: 0,
    sent: 0,
    watch: undefined,
    polling: false,
  }));
  await inBatches(chats, SETUP_CONCURRENCY, async (chat) => {
    chat.epoch = await createChat(chat.visitor, chat.id);
    await watch(chat);
  });
  const baselineChats = await Promise.all(
    Array.from({ length: BASELINE_CHATS }, async (_, n) => {
      const id = `bench-baseline-${n}`;
      return { client: channel(n), id, epoch: await createChat(channel(n), id) };
    }),
  );
  const probes = () =>
    new Pacer(settings.baselinePerSecond, (n) => {
      const chat = baselineChats[n % baselineChats.length]!;
      probe(chat.client, chat.id, chat.epoch);
    });
  const setupMs = performance.now() - setupStartedAt;

  const phases = [await runPhase(chats, probes(), undefined)];
  for (const chat of chats) {
    const call = chat.watch;
    chat.watch = undefined;
    call?.cancel();
  }
  for (const interval of settings.pollIntervalsMs) phases.push(await runPhase(chats, probes(), interval));
  return { setupMs, phases };
}

let exitCode = 1;
try {
  await tell({ kind: 'report', report: await main() });
  exitCode = 0;
} catch (error) {
  const detail = (error as ServiceError).code !== undefined ? ` (${status[(error as ServiceError).code]})` : '';
  console.error(`bench load failed: ${(error as Error).message}${detail}`);
} finally {
  clearInterval(ticker);
  for (const client of channels) client.close();
  process.off('disconnect', orphaned);
}
// Exit explicitly: a call or stream left behind must not keep the load alive.
process.exit(exitCode);
