import { placement } from '../../src/client/placement.js';

/**
 * A chat id (`prefix`, or `prefix-1`, `prefix-2`, ...) whose placement over each of `lists`
 * is that list's order: its first address is the chat's home, and so on. Tests that need a
 * given server to be a chat's home (to kill it, say) name their chat with this, since every
 * client picks a chat's home by hashing the chat id with the addresses (src/client/placement.ts).
 */
export function chatIdPlaced(prefix: string, ...lists: readonly (readonly string[])[]): string {
  for (let i = 0; i < 10_000; i += 1) {
    const chatId = i === 0 ? prefix : `${prefix}-${i}`;
    if (lists.every((list) => placement(chatId, list).every((address, rank) => address === list[rank]))) return chatId;
  }
  throw new Error(`no chat id ${prefix}-N is placed as ${JSON.stringify(lists)}`);
}
