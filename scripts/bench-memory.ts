/**
 * The memory figures of `npm run bench` (run with `node --expose-gc`): what the server's store
 * holds on the V8 heap per empty chat and per stored message beyond the message's content and
 * id, measured after full garbage collections around a store filled through its own send path
 * (the domain's ChatStore, as the server runs it, without gRPC). Prints a table beside the
 * targets and the figures as one JSON line.
 * Settings (environment): BENCH_MEMORY_CHATS (10,000 empty chats), BENCH_MEMORY_MESSAGES
 * (200,000 messages, over 200 chats).
 */
import { randomUUID } from 'node:crypto';
import { ChatStore } from '../src/domain/store.js';
import { DEFAULT_CONFIG } from '../src/server/config.js';
import { runAndExit, setting, type TargetCheck } from './bench-measure.js';

const EMPTY_CHATS = setting('BENCH_MEMORY_CHATS', 10_000, 100, 1_000_000);
const MESSAGES = setting('BENCH_MEMORY_MESSAGES', 200_000, 1_000, 5_000_000);
const CHATS_WITH_MESSAGES = 200;
const CONTENT_BYTES = 100;

const collect = (globalThis as { gc?: () => void }).gc;

/** The heap in use after full collections. */
function heapUsed(): number {
  if (!collect) throw new Error('run with node --expose-gc');
  for (let i = 0; i < 3; i += 1) collect();
  return process.memoryUsage().heapUsed;
}

function store(): ChatStore {
  return new ChatStore({ ...DEFAULT_CONFIG, maxChats: 10_000_000, maxHeldBytes: Number.MAX_SAFE_INTEGER, maxChatBytes: Number.MAX_SAFE_INTEGER, maxMessagesPerChat: 10_000_000 });
}

async function main(): Promise<void> {
  // Empty chats: a read of a chat the store lacks creates it empty (and answers rebuild-required).
  const empty = store();
  const ids = Array.from({ length: EMPTY_CHATS }, (_, i) => `empty-chat-${String(i).padStart(8, '0')}`);
  const beforeChats = heapUsed();
  for (const id of ids) empty.getNewMessages(id, { visitor: 0, agent: 0 });
  const chatBytes = (heapUsed() - beforeChats) / EMPTY_CHATS - ids[0]!.length;

  // Messages: sends into chats that exist, each message a fresh 36-character id and 100 bytes of content.
  const full = store();
  const chats = Array.from({ length: CHATS_WITH_MESSAGES }, (_, i) => `chat-${i}`);
  for (const id of chats) full.getNewMessages(id, { visitor: 0, agent: 0 });
  const perChat = MESSAGES / CHATS_WITH_MESSAGES;
  const beforeMessages = heapUsed();
  let idAndContent = 0;
  for (let j = 0; j < perChat; j += 1) {
    for (const chatId of chats) {
      const id = randomUUID();
      const content = 'x'.repeat(CONTENT_BYTES - 6) + String(j).padStart(6, '0');
      idAndContent += id.length + content.length;
      full.addVisitorMessage({ chatId, caller: { visitor: j, agent: 0 }, message: { id, content, type: undefined, senderId: 'visitor-1' } });
    }
  }
  const messageBytes = (heapUsed() - beforeMessages - idAndContent) / MESSAGES;
  const held = full.size + empty.size; // keeps both stores alive past the measurements

  console.log(`\nMemory (V8 heap after full GC; the domain's ChatStore filled through its send path)`);
  console.log(`  per empty chat             ${chatBytes.toFixed(0)} bytes beyond its id  (target <= 400)`);
  console.log(`  per stored message         ${messageBytes.toFixed(0)} bytes beyond its content and id  (target <= 120; ${MESSAGES} messages of ${CONTENT_BYTES} bytes with 36-character ids)`);
  const targets: TargetCheck[] = [
    { figure: 'heap per empty chat beyond its id', measured: `${chatBytes.toFixed(0)} bytes`, target: '<= 400 bytes', met: chatBytes <= 400 },
    { figure: 'heap per stored message beyond content and id', measured: `${messageBytes.toFixed(0)} bytes`, target: '<= 120 bytes', met: messageBytes <= 120 },
  ];
  console.log(JSON.stringify({ memory: { emptyChats: EMPTY_CHATS, messages: MESSAGES, bytesPerEmptyChat: chatBytes, bytesPerMessage: messageBytes, held }, targets }));
}

await runAndExit('memory bench', main, () => undefined);
