/**
 * A small transcript archiver: follows WatchTranscripts on one chat server and keeps every ended
 * chat's history as a JSON file, `<ARCHIVE_DIR>/<chat id>/<epoch>.json`, then acknowledges it.
 *
 * Delivery is at least once (a transcript is offered again until acknowledged, and again when an
 * ended chat takes a late message), so storing is idempotent by (chat id, epoch): a revision with
 * no more messages than the file already holds is acknowledged and not written. A file is
 * written whole, to a temporary name and renamed, so a crash leaves the old one or the new one.
 *
 *   CHAT_SERVER=localhost:50051 ARCHIVE_DIR=./transcripts [CHAT_TOKEN=<service token>] \
 *     npx tsx examples/archiver/transcript-archiver.ts
 *
 * Run one per chat server (each offers the chats that end on it). It watches again after the
 * stream ends (the server ends every stream after its maximum watch age) or breaks.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { credentials, Metadata } from '@grpc/grpc-js';
import { ChatServiceClient, type WatchTranscriptsResponse } from '../../generated/chat/v1/chat.js';

const server = process.env.CHAT_SERVER ?? 'localhost:50051';
const archive = process.env.ARCHIVE_DIR ?? './transcripts';
const metadata = new Metadata();
if (process.env.CHAT_TOKEN) metadata.set('authorization', `Bearer ${process.env.CHAT_TOKEN}`);
const client = new ChatServiceClient(server, credentials.createInsecure());

/** How many messages the archived revision of (chat, epoch) holds; 0 when none is. */
function archivedCount(file: string): number {
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { messageCount: number }).messageCount;
  } catch {
    return 0;
  }
}

/** Stores a transcript unless the archive already holds as much of it; then acknowledges it. */
async function archiveOne(transcript: WatchTranscriptsResponse): Promise<void> {
  const chat = transcript.chat!;
  // Ids are the server's strings: encode them so that no id can name another path.
  const dir = join(archive, encodeURIComponent(chat.id));
  const file = join(dir, `${encodeURIComponent(chat.epoch)}.json`);
  if (transcript.messageCount > archivedCount(file)) {
    mkdirSync(dir, { recursive: true });
    // A truncated transcript would need the rest read with GetNewMessage; this example says so.
    const record = { chatId: chat.id, epoch: chat.epoch, messageCount: transcript.messageCount, truncated: transcript.truncated, endTime: transcript.endTime, chat };
    writeFileSync(`${file}.tmp`, JSON.stringify(record, null, 2));
    renameSync(`${file}.tmp`, file);
    console.log(`archived ${chat.id} (epoch ${chat.epoch}): ${transcript.messageCount} messages`);
  }
  await new Promise<void>((resolve, reject) =>
    client.ackTranscript({ chatId: chat.id, epoch: chat.epoch, messageCount: transcript.messageCount }, metadata, (error) => (error ? reject(error) : resolve())),
  );
}

/** One stream, until it ends or breaks; transcripts are archived one at a time, in order. */
async function followOnce(): Promise<void> {
  const stream = client.watchTranscripts({}, metadata);
  for await (const transcript of stream as AsyncIterable<WatchTranscriptsResponse>) await archiveOne(transcript);
}

for (;;) {
  try {
    await followOnce();
  } catch (error) {
    console.error(`transcript stream broke: ${(error as Error).message}; watching again`);
  }
  await delay(1_000);
}
