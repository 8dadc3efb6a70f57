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
 * Merges uploaded messages the server lacks (by id) into one side it holds.
 *
 * Messages the server already holds keep their offsets: clients may have read them there. An
 * uploaded message takes the offset it claims when that offset is free. Once one claims an
 * offset the server has already given to another message (two histories diverged), it and
 * every later message of the upload move, in the upload's order, past the last offset the
 * side holds, so each uploader's own order is kept and nothing is dropped.
 *
 * O(n + m log m) for n held and m uploaded messages.
 *
 * @param held the side as the server holds it, ordered by offset
 * @param uploaded messages whose ids the chat does not hold, with distinct offsets
 */
export function mergeSide(held: readonly Message[], uploaded: readonly Message[]): SideMerge {
  const claims = [...uploaded].sort((a, b) => a.dataOffset - b.dataOffset);
  const kept: Message[] = [];
  const moved: Message[] = [];
  let cursor = 0;
  for (const message of claims) {
    while (cursor < held.length && held[cursor]!.dataOffset < message.dataOffset) cursor += 1;
    const taken = held[cursor]?.dataOffset === message.dataOffset;
    if (moved.length === 0 && !taken) kept.push(message);
    else moved.push(message);
  }

  const messages = mergeByOffset(held, kept);
  let last = messages.at(-1)?.dataOffset ?? 0;
  for (const message of moved) {
    last += 1;
    messages.push({ ...message, dataOffset: last });
  }
  return { messages, added: claims.length, displaced: moved.length };
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
