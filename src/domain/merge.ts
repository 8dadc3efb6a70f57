import type { Message } from './message.js';

/** What merging an upload into one side did. */
export interface SideMerge {
  /** The side after the merge, ordered by offset. */
  readonly messages: Message[];
  /** Uploaded messages that were new to the server. */
  readonly added: number;
  /** New messages that could not keep their claimed offset (moved to the end of the side). */
  readonly displaced: number;
}

/**
 * Merges an upload into one side the server holds: a union by id, deterministic for a given
 * server state and upload.
 *
 * Messages the server already holds keep their offsets: clients may have read them there. An
 * uploaded message the server lacks takes the offset it claims when that offset is free and
 * lies above every message the upload lists before it (so the uploader's order is kept even
 * where the server placed those earlier messages elsewhere). Once one cannot (two histories
 * diverged: another message holds its offset), it and every later new message of the upload
 * move, in the upload's order, past the last offset the side holds. Nothing is dropped.
 *
 * O(n + m log m) for n held and m uploaded messages.
 *
 * @param held the side as the server holds it, ordered by offset
 * @param uploaded the upload's messages of this side, with distinct offsets
 * @param find the chat's message with an id, if it holds one
 */
export function mergeSide(
  held: readonly Message[],
  uploaded: readonly Message[],
  find: (id: string) => Message | undefined,
): SideMerge {
  const claims = [...uploaded].sort((a, b) => a.dataOffset - b.dataOffset);
  const kept: Message[] = [];
  const moved: Message[] = [];
  let cursor = 0;
  let floor = 0; // the highest server offset of a message the upload lists so far
  for (const message of claims) {
    const known = find(message.id);
    if (known) {
      floor = Math.max(floor, known.dataOffset);
      continue;
    }
    while (cursor < held.length && held[cursor]!.dataOffset < message.dataOffset) cursor += 1;
    const taken = held[cursor]?.dataOffset === message.dataOffset;
    if (moved.length === 0 && !taken && message.dataOffset > floor) {
      kept.push(message);
      floor = message.dataOffset;
    } else moved.push(message);
  }

  const messages = mergeByOffset(held, kept);
  let last = messages.at(-1)?.dataOffset ?? 0;
  for (const message of moved) {
    last += 1;
    messages.push({ ...message, dataOffset: last });
  }
  return { messages, added: kept.length + moved.length, displaced: moved.length };
}

function mergeByOffset(a: readonly Message[], b: readonly Message[]): Message[] {
  const out: Message[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) out.push(a[i]!.dataOffset < b[j]!.dataOffset ? a[i++]! : b[j++]!);
  while (i < a.length) out.push(a[i++]!);
  while (j < b.length) out.push(b[j++]!);
  return out;
}
