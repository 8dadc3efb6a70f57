import { ChatMessage } from '../../generated/chat/v1/chat.js';

/** Room for a Rebuild request's own fields around its messages. */
const ENVELOPE_BYTES = 1024;

/**
 * Splits messages, in order, into uploads whose encoded size stays under `maxBytes` (each
 * upload holds at least one message). Sizes are the exact protobuf encodings.
 */
export function splitUploads(messages: readonly ChatMessage[], maxBytes: number): ChatMessage[][] {
  const uploads: ChatMessage[][] = [];
  let current: ChatMessage[] = [];
  let used = ENVELOPE_BYTES;
  for (const message of messages) {
    const size = ChatMessage.encode(message).finish().length + 6; // tag and length prefix
    if (current.length > 0 && used + size > maxBytes) {
      uploads.push(current);
      current = [];
      used = ENVELOPE_BYTES;
    }
    current.push(message);
    used += size;
  }
  if (current.length > 0) uploads.push(current);
  return uploads;
}
