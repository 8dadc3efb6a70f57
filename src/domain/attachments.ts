import { invalid } from './errors.js';
import type { Attachment } from './message.js';
import { checkLength } from './validate.js';

/** Most attachments one message may carry. */
export const MAX_ATTACHMENTS = 10;
/** Bounds of an attachment's strings, in UTF-8 bytes. */
export const MAX_ATTACHMENT_URI_BYTES = 2048;
export const MAX_MEDIA_TYPE_BYTES = 127;
export const MAX_ATTACHMENT_NAME_BYTES = 255;

/** RFC 6838 type/subtype: restricted-name characters, no parameters. */
const MEDIA_TYPE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
/** C0 and C1 controls, DEL, and the path separators. */
const UNSAFE_NAME = /[\u0000-\u001f\u007f-\u009f/\\]/;

/**
 * Checks a message's attachments: at most {@link MAX_ATTACHMENTS}, each a reference with an
 * absolute https URI, a media type, a size from 1 to `maxBytes`, a SHA-256 in lowercase hex and a
 * name fit to show. Field names are relative to the message.
 */
export function requireAttachments(attachments: readonly Attachment[], maxBytes: number): void {
  if (attachments.length > MAX_ATTACHMENTS) {
    throw invalid(`attachments holds ${attachments.length} references; the limit is ${MAX_ATTACHMENTS} a message`);
  }
  attachments.forEach((attachment, i) => requireAttachment(`attachments[${i}]`, attachment, maxBytes));
}

function requireAttachment(field: string, attachment: Attachment, maxBytes: number): void {
  const { uri, mediaType, sizeBytes, sha256, name } = attachment;
  if (uri === '') throw invalid(`${field}.uri is required: where the file is`);
  checkLength(`${field}.uri`, uri, MAX_ATTACHMENT_URI_BYTES);
  if (!isHttpsUri(uri)) throw invalid(`${field}.uri must be an absolute https URI (the bytes stay out of the chat server); got ${JSON.stringify(uri.slice(0, 80))}`);
  checkLength(`${field}.media_type`, mediaType, MAX_MEDIA_TYPE_BYTES);
  if (!MEDIA_TYPE.test(mediaType)) throw invalid(`${field}.media_type must be "type/subtype", such as "image/png"; got ${JSON.stringify(mediaType.slice(0, 80))}`);
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 1 || sizeBytes > maxBytes) {
    throw invalid(`${field}.size_bytes must be from 1 to ${maxBytes} (--max-attachment-bytes); got ${sizeBytes}`);
  }
  if (!SHA256_HEX.test(sha256)) throw invalid(`${field}.sha256 must be the file's SHA-256 as 64 lowercase hexadecimal digits`);
  if (name === '') throw invalid(`${field}.name is required: the file name shown to people`);
  checkLength(`${field}.name`, name, MAX_ATTACHMENT_NAME_BYTES);
  if (UNSAFE_NAME.test(name)) throw invalid(`${field}.name must hold no control characters and no slashes`);
}

function isHttpsUri(uri: string): boolean {
  if (/\s/.test(uri)) return false;
  try {
    const parsed = new URL(uri);
    return parsed.protocol === 'https:' && parsed.hostname !== '';
  } catch {
    return false;
  }
}

// Kept with the sizing in conversation.ts, which the client SDK ships without this module's validation.
export { attachmentBytes } from './conversation.js';
