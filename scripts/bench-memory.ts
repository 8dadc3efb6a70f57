/**
 * The memory figures of `npm run bench` (run with `node --expose-gc`): what the server's store
 * holds on the V8 heap per empty chat and per stored message beyond the message's content and
 * id, measured after full garbage collections around a store filled through its own send path
 * (the domain's ChatStore, as the server runs it, without gRPC). Prints a table beside the
 * targets and the figures as one JSON line.
 * Settings (environment): BENCH_MEMORY_CHATS (10,000 empty chats), BENCH_MEMORY_MESSAGES
 * (200,000 messages, over 200 chats).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { flat } from '../src/domain/flat-string.js';
import { Sealer } from '../src/domain/seal.js';
import { ChatStore } from '../src/domain/store.js';
import { DEFAULT_CONFIG } from '../src/server/config.js';
import { NO_TARGET, runAndExit, setting, type TargetCheck } from './bench-measure.js';

const EMPTY_CHATS = setting('BENCH_MEMORY_CHATS', 10_000, 100, 1_000_000);
const MESSAGES = setting('BENCH_MEMORY_MESSAGES', 200_000, 1_000, 5_000_000);
const CHATS_WITH_MESSAGES = 200;
const CONTENT_BYTES = 100;

const collect = (globalThis as { gc?: () => void }).gc;

/** A copy of `text` as one flat string, as the wire decoder gives each string of a request. */
const decoded = flat;

/** The memory in use after full collections: the V8 heap, and the ArrayBuffers' memory outside it. */
function heapUsed(): number {
  if (!collect) throw new Error('run with node --expose-gc');
  for (let i = 0; i < 3; i += 1) collect();
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return heapUsed + arrayBuffers;
}

function store(sealer?: Sealer): ChatStore {
  const limits = { ...DEFAULT_CONFIG, maxChats: 10_000_000, maxHeldBytes: Number.MAX_SAFE_INTEGER, maxChatBytes: Number.MAX_SAFE_INTEGER, maxMessagesPerChat: 10_000_000 };
  return new ChatStore(limits, undefined, undefined, sealer ? { sealer } : {});
}

/**
 * Bytes per message beyond its content and id: sends into chats that exist, each message a fresh
 * 36-character id and 100 bytes of content.
 */
function messageBytes(full: ChatStore): number {
  const chats = Array.from({ length: CHATS_WITH_MESSAGES }, (_, i) => decoded(`chat-${i}`));
  for (const id of chats) full.getNewMessages(id, { visitor: 0, agent: 0 });
  const perChat = MESSAGES / CHATS_WITH_MESSAGES;
  const before = heapUsed();
  let idAndContent = 0;
  for (let j = 0; j < perChat; j += 1) {
    for (const chatId of chats) {
      const id = decoded(randomUUID());
      const content = decoded('x'.repeat(CONTENT_BYTES - 6) + String(j).padStart(6, '0'));
      idAndContent += id.length + content.length;
      full.addVisitorMessage({ chatId, caller: { visitor: j, agent: 0 }, message: { id, content, type: undefined, senderId: decoded('visitor-1') } });
    }
  }
  return (heapUsed() - before - idAndContent) / MESSAGES;
}

async function main(): Promise<void> {
  // Empty chats: a read of a chat the store lacks creates it empty (and answers rebuild-required).
  const empty = store();
  const ids = Array.from({ length: EMPTY_CHATS }, (_, i) => decoded(`empty-chat-${String(i).padStart(8, '0')}`));
  const beforeChats = heapUsed();
  for (const id of ids) empty.getNewMessages(id, { visitor: 0, agent: 0 });
  const chatBytes = (heapUsed() - beforeChats) / EMPTY_CHATS - ids[0]!.length;

  const unsealed = messageBytes(store());
  // As a server with seal keys holds them: each message also holds its seal ("k1." and 43 characters).
  const sealedStore = store(new Sealer({ current: 'k1', keys: new Map([['k1', randomBytes(32)]]) }));
  const sealed = messageBytes(sealedStore);
  const held = empty.size + sealedStore.size; // keeps the stores alive past the measurements

  console.log(`\nMemory (V8 heap after full GC; the domain's ChatStore filled through its send path)`);
  console.log(`  per empty chat             ${chatBytes.toFixed(0)} bytes beyond its id  (target <= 400)`);
  console.log(`  per stored message         ${unsealed.toFixed(0)} bytes beyond its content and id  (target <= 120; ${MESSAGES} messages of ${CONTENT_BYTES} bytes with 36-character ids)`);
  console.log(`  per stored sealed message  ${sealed.toFixed(0)} bytes beyond its content and id  (no target: the same, each with its 46-character seal)`);
  const targets: TargetCheck[] = [
    { figure: 'heap per empty chat beyond its id', measured: `${chatBytes.toFixed(0)} bytes`, target: '<= 400 bytes', met: chatBytes <= 400 },
    { figure: 'heap per stored message beyond content and id', measured: `${unsealed.toFixed(0)} bytes`, target: '<= 120 bytes', met: unsealed <= 120 },
    { figure: 'heap per stored sealed message beyond content and id', measured: `${sealed.toFixed(0)} bytes`, target: NO_TARGET, met: null },
  ];
  console.log(JSON.stringify({ memory: { emptyChats: EMPTY_CHATS, messages: MESSAGES, bytesPerEmptyChat: chatBytes, bytesPerMessage: unsealed, bytesPerSealedMessage: sealed, held }, targets }));
}

await runAndExit('memory bench', main, () => undefined);
