import type { Message } from './message.js';
import { SideLog } from './side-log.js';

/** What merging an upload into one side did. */
export interface SideMerge {
  /** The side after the merge, ordered by offset. */
  readonly messages: Message[];
  /** Uploaded messages that were new to the server. */
  readonly added: number;
  /** New messages that could not keep their claimed offset (moved to the end of the side). */
  readonly displaced: number;
}

/** What merging an upload into a side in place did. */
export interface InPlaceMerge {
  /** The messages the side now holds that it did not before, as held (at their offsets). */
  readonly placed: Message[];
  /** Of those, how many could not keep their claimed offset (moved to the end of the side). */
  readonly displaced: number;
}

/**
 * Merges an upload into one side the server holds, in place: a union by id, deterministic for
 * a given server state and upload.
 *
 * Messages the server already holds keep their offsets: clients may have read them there. An
 * uploaded message the server lacks takes the offset it claims when that offset is free and
 * lies above every message the upload lists before it (so the uploader's order is kept even
 * where the server placed those earlier messages elsewhere). Once one cannot (two histories
 * diverged: another message holds its offset), it and every later new message of the upload
 * move, in the upload's order, past the last offset the side holds. Nothing is dropped.
 *
 * Every decision asks the side (is this offset held? its last offset) or the chat's index by
 * id; nothing held is read, copied or re-indexed. O(m log m) for m uploaded messages, plus
 * O(log g) an insert among the g messages held beyond a gap (see {@link SideLog.insert}).
 *
 * @param side the side as the server holds it; gets the new messages
 * @param uploaded the upload's messages of this side, with distinct offsets
 * @param find the chat's message with an id, if it holds one
 */
export function mergeInto(
  side: SideLog,
  uploaded: readonly Message[],
  find: (id: string) => Message | undefined,
): InPlaceMerge {
  return planMerge(side, uploaded, (id) => find(id)?.dataOffset).apply();
}

/** Where a merge will put an upload's new messages, decided before anything changes. */
export interface MergePlan {
  /** Holds the new messages in the side; cannot fail once planned. */
  apply(): InPlaceMerge;
}

/**
 * Decides, without changing the side, where {@link mergeInto} puts each new message; throws
 * (changing nothing) when a moved message would get an offset beyond the safe integers, where
 * two messages could land on one offset. Planning every side before applying any keeps a chat's
 * merge all or nothing.
 *
 * @param offsetOf the offset of the chat's message with an id, if it holds one
 */
export function planMerge(side: SideLog, uploaded: readonly Message[], offsetOf: (id: string) => number | undefined): MergePlan {
  const claims = [...uploaded].sort((a, b) => a.dataOffset - b.dataOffset);
  const kept: Message[] = [];
  const moved: Message[] = [];
  let floor = 0; // the highest server offset of a message the upload lists so far
  for (const message of claims) {
    const known = offsetOf(message.id);
    if (known !== undefined) {
      floor = Math.max(floor, known);
      continue;
    }
    // Decided against the side as it was: kept claims are distinct offsets, none held.
    if (moved.length === 0 && !side.holds(message.dataOffset) && message.dataOffset > floor) {
      kept.push(message);
      floor = message.dataOffset;
    } else moved.push(message);
  }
  const end = Math.max(side.last, kept.at(-1)?.dataOffset ?? 0) + moved.length;
  if (!Number.isSafeInteger(end)) throw new Error(`a merge would place messages at offset ${end}, beyond the safe integers`);
  return {
    apply(): InPlaceMerge {
      const placed = kept.map((message) => side.insert(message));
      let last = side.last;
      for (const message of moved) placed.push(side.insert({ ...message, dataOffset: (last += 1) }));
      return { placed, displaced: moved.length };
    },
  };
}

/**
 * {@link mergeInto} for a side given as an array: the side after the merge, as a new array.
 * O(n + m log m) for n held and m uploaded messages; the server merges in place instead.
 *
 * @param held the side as the server holds it, ordered by offset
 */
export function mergeSide(
  held: readonly Message[],
  uploaded: readonly Message[],
  find: (id: string) => Message | undefined,
): SideMerge {
  const side = SideLog.of(held);
  const { placed, displaced } = mergeInto(side, uploaded, find);
  return { messages: side.all(), added: placed.length, displaced };
}
