/**
 * A load process of the cluster figure of `npm run bench`, started by scripts/bench-cluster.ts
 * (not run by hand). It holds chats [from, to) as SDK sessions through the one front address,
 * a visitor and an agent session each, both watching, and answers commands from its parent over
 * IPC:
 * - `open`: opens every session on a copy of `messages` messages (half visitor, half agent), so
 *   the servers are rebuilt from the copies as after a failover, and reports `opened`;
 * - `probe`: the visitor of each of its chats in `chatIds` sends one message, and the figure is
 *   how long from `since` (the parent's clock, shared through performance.timeOrigin) until its
 *   agent holds it by push;
 * - `unary`: GetNewMessage calls on those of its chats in `chatIds` (chats one server holds) at
 *   `address`, `concurrency` in flight, for `seconds`: calls per second and latency, for the
 *   proxy against direct.
 */
import { performance } from 'node:perf_hooks';
import { credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { ChatServiceClient, type GetNewMessageResponse, MessageType } from '../generated/chat/v1/chat.js';
import { type ChatMessage, ChatSession, MemoryStore } from '../src/client/index.js';

/** What the parent asks of this process. */
export type ClusterCommand =
  | { readonly kind: 'open' }
  | { readonly kind: 'probe'; readonly label: string; readonly since: number; readonly timeoutMs: number; readonly chatIds: readonly string[] }
  | { readonly kind: 'unary'; readonly address: string; readonly seconds: number; readonly concurrency: number; readonly chatIds: readonly string[] };

/** What this process tells the parent. */
export type ClusterReport =
  | { readonly kind: 'opened'; readonly sessions: number; readonly ms: number }
  | { readonly kind: 'probed'; readonly label: string; readonly delivered: number; readonly of: number; readonly latencies: number[]; readonly rebuilds: number }
  | { readonly kind: 'unary'; readonly address: string; readonly calls: number; readonly errors: number; readonly seconds: number; readonly latencies: number[] };

/** The settings a load process is started with (JSON in argv[2]). */
export interface ClusterLoadSettings {
  readonly front: string;
  readonly from: number;
  readonly to: number;
  readonly messages: number;
  /** Sessions that share one connection to the front (below HAProxy's 1000 streams a connection). */
  readonly sessionsPerConnection: number;
}

/** Sessions opened at once. */
const OPEN_CONCURRENCY = 100;

const settings = JSON.parse(process.argv[2] ?? '') as ClusterLoadSettings;
const tell = (report: ClusterReport) => new Promise<void>((resolve) => process.send!(report, undefined, undefined, () => resolve()));
/** The parent's performance clock, as this process reads it. */
const now = () => performance.timeOrigin + performance.now();

interface Chat {
  readonly id: string;
  readonly visitor: ChatSession;
  readonly agent: ChatSession;
}

const chats: Chat[] = [];
let rebuilds = 0;

/** The copy both sessions of chat `id` start from: `messages` messages, alternating sides. */
function copyOf(id: string): ChatMessage[] {
  const sent = new Date(Date.now() - 60_000);
  return Array.from({ length: settings.messages }, (_, i) => {
    const visitor = i % 2 === 0;
    return {
      id: `${id}-seed-${i}`,
      dataOffset: Math.floor(i / 2) + 1,
      content: `message ${i} of the conversation, about the length of a short chat line`,
      messageType: visitor ? MessageType.MESSAGE_TYPE_VISITOR : MessageType.MESSAGE_TYPE_AGENT,
      sendTime: new Date(sent.getTime() + i),
      senderId: visitor ? `visitor-${id}` : `agent-${id}`,
      attachments: [],
    };
  });
}

async function session(id: string, index: number, role: 'visitor' | 'agent'): Promise<ChatSession> {
  const store = new MemoryStore();
  await store.save({ chatId: id, messages: copyOf(id), outbox: [], epoch: 'a copy from before' });
  const opened = await ChatSession.open({
    chatId: id,
    role: role === 'visitor' ? { kind: 'visitor', visitorId: `visitor-${id}` } : { kind: 'agent', agentId: `agent-${id}` },
    servers: [settings.front],
    store,
    callTimeoutMs: 10_000,
    // Shared connections, a group of sessions each: 20,000 sessions of their own would need
    // more descriptors than this machine allows one process (and HAProxy).
    channelOptions: { 'grpc.use_local_subchannel_pool': 0, 'bench.connection-group': Math.floor(index / settings.sessionsPerConnection) },
  });
  opened.on('rebuild', () => (rebuilds += 1));
  return opened;
}

async function openAll(): Promise<void> {
  const started = performance.now();
  const ids = Array.from({ length: settings.to - settings.from }, (_, i) => `bench-${settings.from + i}`);
  for (let i = 0; i < ids.length; i += OPEN_CONCURRENCY) {
    const batch = ids.slice(i, i + OPEN_CONCURRENCY);
    const opened = await Promise.all(
      batch.map(async (id, j) => {
        const index = 2 * (i + j);
        const chat = { id, visitor: await session(id, index, 'visitor'), agent: await session(id, index + 1, 'agent') };
        await chat.visitor.sync(); // uploads the copy: the chat's server is rebuilt from it
        await chat.agent.sync();
        chat.visitor.start();
        chat.agent.start();
        return chat;
      }),
    );
    chats.push(...opened);
  }
  await tell({ kind: 'opened', sessions: chats.length * 2, ms: performance.now() - started });
}

/** Every visitor sends `label`; resolves with how long after `since` each agent held it (ms), or after `timeoutMs`. */
async function probe(label: string, since: number, timeoutMs: number, chatIds: readonly string[]): Promise<void> {
  const rebuildsBefore = rebuilds;
  const latencies: number[] = [];
  const wanted = new Set(chatIds);
  const probed = chats.filter((chat) => wanted.has(chat.id));
  await new Promise<void>((resolve) => {
    let pending = probed.length;
    if (pending === 0) return resolve();
    const timer = setTimeout(resolve, timeoutMs);
    for (const chat of probed) {
      const id = `${chat.id}-${label}`;
      const heard = (m: ChatMessage) => {
        if (m.id !== id) return;
        chat.agent.off('message', heard);
        latencies.push(now() - since);
        if (--pending === 0) {
          clearTimeout(timer);
          resolve();
        }
      };
      chat.agent.on('message', heard);
      chat.visitor.send(`probe ${label}`, { id }).catch(() => undefined); // a send that never lands shows as not delivered
    }
  });
  await tell({ kind: 'probed', label, delivered: latencies.length, of: probed.length, latencies, rebuilds: rebuilds - rebuildsBefore });
}

/** GetNewMessage from each chat's current offsets at `address`, `concurrency` at once, for `seconds`. */
async function unary(address: string, seconds: number, concurrency: number, chatIds: readonly string[]): Promise<void> {
  const wanted = new Set(chatIds);
  const mine = chats.filter((chat) => wanted.has(chat.id));
  const client = new ChatServiceClient(address, credentials.createInsecure());
  const latencies: number[] = [];
  let calls = 0;
  let errors = 0;
  const end = performance.now() + seconds * 1000;
  const worker = async (w: number) => {
    for (let i = w; performance.now() < end && mine.length > 0; i += concurrency) {
      const chat = mine[i % mine.length]!;
      const metadata = new Metadata();
      metadata.set('x-chat-id', chat.id);
      const at = chat.agent.offsets;
      const started = performance.now();
      const ok = await new Promise<boolean>((resolve) =>
        client.getNewMessage({ chatId: chat.id, ...at, epoch: '' }, metadata, { deadline: Date.now() + 10_000 }, (error: ServiceError | null, _r?: GetNewMessageResponse) => resolve(!error)),
      );
      latencies.push(performance.now() - started);
      if (ok) calls += 1;
      else errors += 1;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  client.close();
  await tell({ kind: 'unary', address, calls, errors, seconds: (performance.now() - started) / 1000, latencies: sample(latencies) });
}

/** At most 20,000 latencies, evenly taken, so a report stays small; the percentiles stand. */
function sample(values: readonly number[]): number[] {
  const step = Math.max(1, Math.floor(values.length / 20_000));
  return values.filter((_, i) => i % step === 0);
}

process.on('message', (command: ClusterCommand) => {
  const done =
    command.kind === 'open' ? openAll() : command.kind === 'probe' ? probe(command.label, command.since, command.timeoutMs, command.chatIds) : unary(command.address, command.seconds, command.concurrency, command.chatIds);
  done.catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
});
