import { ChatMessage } from '../../generated/chat/v1/chat.js';
import { type Side, sideOf } from './wire.js';

/** Room for a Rebuild request's own fields around its messages. */
const ENVELOPE_BYTES = 1024;

/** A message's bytes in a Rebuild request: its exact protobuf encoding, plus tag and length prefix. */
const encodedSize = (message: ChatMessage) => ChatMessage.encode(message).finish().length + 6;

/**
 * Splits messages, in order, into uploads whose encoded size stays under `maxBytes` (each
 * upload holds at least one message of its own).
 *
 * Every upload after the first begins with anchors: the last message of each side that an
 * earlier upload carried. The server holds those by then, wherever it placed them, and a held
 * message in an upload is what keeps the new ones after it (see the domain's merge). Without
 * them, an upload whose claims are free on the server (offsets beyond a gap, say) would keep
 * them, below where the server moved the messages of an earlier upload: the uploader's order
 * broken between two of its own uploads.
 */
export function splitUploads(messages: readonly ChatMessage[], maxBytes: number): ChatMessage[][] {
  const uploads: ChatMessage[][] = [];
  const last = new Map<Side, { readonly message: ChatMessage; readonly size: number }>();
  let current: ChatMessage[] = [];
  let own = 0;
  let used = ENVELOPE_BYTES;
  const begin = () => {
    current = [...last.values()].map((anchor) => anchor.message);
    used = ENVELOPE_BYTES + [...last.values()].reduce((sum, anchor) => sum + anchor.size, 0);
    own = 0;
  };
  begin();
  for (const message of messages) {
    const size = encodedSize(message);
    if (own > 0 && used + size > maxBytes) {
      uploads.push(current);
      begin();
    }
    current.push(message);
    used += size;
    own += 1;
    last.set(sideOf(message), { message, size });
  }
  if (own > 0) uploads.push(current);
  return uploads;
}
