/**
 * `npx tsx scripts/rebuild-cost.ts`: what a Rebuild costs on the event loop, in the domain and
 * in the wire steps around it (decode, conversion, the answer), for a chat of CHAT_MESSAGES
 * (460,000) messages: a one-message upload, and a full upload (the server's default
 * --max-request-bytes, 256 KiB, and for comparison gRPC's default 4 MiB) into an empty chat and
 * into the big one. Prints one line a case; times are the median of
 * ROUNDS (5) runs, each on a fresh chat, in CPU milliseconds of this process (user + system),
 * so that a machine shared with other work does not inflate them as wall time would.
 */
import { RebuildRequest, RebuildResponse, type ChatMessage, MessageType } from '../generated/chat/v1/chat.js';
import type { Limits } from '../src/domain/limits.js';
import { ChatStore } from '../src/domain/store.js';
import { DEFAULT_CONFIG } from '../src/server/config.js';
import { toChatCopy, toWireMessage } from '../src/server/convert.js';

const CHAT_MESSAGES = Number(process.env.CHAT_MESSAGES ?? 460_000);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const FULL_UPLOADS = [DEFAULT_CONFIG.maxRequestBytes, 4 * 1024 * 1024];
// Budgets raised so the big chat fits (at the defaults a chat holds 64 MiB, some 110,000 short messages).
const limits: Limits = { ...DEFAULT_CONFIG, maxHeldBytes: 16 * 1024 ** 3, maxChatBytes: 16 * 1024 ** 3 };
const start = Date.UTC(2026, 0, 1);

function wireMessage(prefix: string, i: number, dataOffset: number, content: string): ChatMessage {
  const visitor = i % 2 === 0;
  return {
    id: `${prefix}${i}`,
    dataOffset,
    content,
    messageType: visitor ? MessageType.MESSAGE_TYPE_VISITOR : MessageType.MESSAGE_TYPE_AGENT,
    sendTime: new Date(start + i),
    senderId: '',
    attachments: [],
  };
}

/** Messages `from`..`from+count-1`, alternating sides, numbered 1..N per side from `offset`. */
function messages(prefix: string, count: number, offset: number, content: string): ChatMessage[] {
  return Array.from({ length: count }, (_, i) => wireMessage(prefix, i, offset + (i >> 1), content));
}

/** An upload of short messages, as many as fit in `maxBytes`. */
function fullUpload(prefix: string, offset: number, maxBytes: number): Uint8Array {
  const content = 'a message of some thirty bytes';
  const encode = (count: number) => RebuildRequest.encode({ chat: chat(messages(prefix, count, offset, content)) }).finish();
  let count = 100;
  while (encode(Math.floor(count * 1.02)).length <= maxBytes) count = Math.floor(count * 1.02);
  return encode(count);
}

function chat(list: ChatMessage[]) {
  return { id: 'c', visitorDataOffset: 0, agentDataOffset: 0, messages: list, visitor: undefined, beginTime: undefined, epoch: '', readPositions: [] };
}

/** A store holding one chat of `size` messages, loaded in uploads of 100,000. */
function storeWith(size: number): ChatStore {
  const store = new ChatStore(limits, { now: () => new Date(start) }, () => 'e1');
  for (let done = 0; done < size; done += 100_000) {
    const part = messages('held', Math.min(100_000, size - done), 0, 'held text').map((m, i) => ({
      ...m,
      id: `held${done + i}`,
      dataOffset: 1 + ((done + i) >> 1),
    }));
    store.rebuild(toChatCopy(chat(part), new Date(start)));
  }
  return store;
}

function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

function median(values: number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
}

function measure(name: string, size: number, request: Uint8Array): void {
  const steps = { decode: [] as number[], convert: [] as number[], domain: [] as number[], answer: [] as number[] };
  let uploaded = 0;
  for (let round = 0; round < ROUNDS; round += 1) {
    const store = storeWith(size);
    let t = cpuMs();
    const decoded = RebuildRequest.decode(request);
    steps.decode.push(cpuMs() - t);
    t = cpuMs();
    const copy = toChatCopy(decoded.chat, new Date(start));
    steps.convert.push(cpuMs() - t);
    t = cpuMs();
    const outcome = store.rebuild(copy);
    steps.domain.push(cpuMs() - t);
    t = cpuMs();
    RebuildResponse.encode({ code: 1, chat: { ...chat(outcome.messages.map(toWireMessage)) }, truncated: outcome.truncated }).finish();
    steps.answer.push(cpuMs() - t);
    uploaded = copy.messages.length;
  }
  const ms = (values: number[]) => median(values).toFixed(1).padStart(7);
  const per10k = uploaded > 0 ? ((median(steps.domain) * 10_000) / uploaded).toFixed(1) : '-';
  console.log(
    `${name.padEnd(38)} chat ${String(size).padStart(7)}  upload ${String(uploaded).padStart(6)} msgs ${String(request.length).padStart(8)} B | ` +
      `decode ${ms(steps.decode)} convert ${ms(steps.convert)} domain ${ms(steps.domain)} answer ${ms(steps.answer)} ms | domain ${per10k} ms/10k msgs`,
  );
}

const one = RebuildRequest.encode({ chat: chat([wireMessage('new', 0, CHAT_MESSAGES / 2 + 1, 'one more message')]) }).finish();
measure('one message into the big chat', CHAT_MESSAGES, one);
for (const maxBytes of FULL_UPLOADS) {
  const size = maxBytes >= 1024 * 1024 ? `${maxBytes / 1024 / 1024} MiB` : `${maxBytes / 1024} KiB`;
  measure(`${size} into an empty chat`, 0, fullUpload('up', 1, maxBytes));
  measure(`${size} into the big chat (appended)`, CHAT_MESSAGES, fullUpload('up', CHAT_MESSAGES / 2 + 1, maxBytes));
  measure(`${size} into the big chat (displaced)`, CHAT_MESSAGES, fullUpload('up', 1, maxBytes));
}
