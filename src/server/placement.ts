import type { Metadata } from '@grpc/grpc-js';
import type { Caller } from '../domain/access.js';
import { ChatError } from '../domain/errors.js';
import type { Authenticate } from './authentication.js';

/**
 * The request metadata that names the chat a call is about. A load balancer hashes on it to
 * send every call about a chat to the chat's one server (deploy/haproxy.cfg); the SDK sends it
 * on every call.
 */
export const CHAT_ID_HEADER = 'x-chat-id';

/**
 * What a chat call passes before its handler runs: who the caller is, from its token, and, with
 * `--require-chat-id-header`, that its metadata routes it by the chat its request names.
 */
export type CallGate = (metadata: Metadata, chatId: string) => Caller | Promise<Caller>;

/** The gate of a server: `authenticate`, then the x-chat-id check when `required`. */
export function callGate(authenticate: Authenticate, required: boolean): CallGate {
  if (!required) return authenticate;
  return (metadata, chatId) => {
    const caller = authenticate(metadata);
    if (!(caller instanceof Promise)) {
      requireChatIdHeader(metadata, chatId);
      return caller;
    }
    return caller.then((known) => {
      requireChatIdHeader(metadata, chatId);
      return known;
    });
  };
}

/**
 * Refuses (FAILED_PRECONDITION) a call whose `x-chat-id` metadata is missing, repeated or
 * names another chat than its request: behind a balancer that hashes on the header, such a call
 * reaches a server by chance (haproxy sends a call without it round robin), and a chat served
 * by two servers never settles. A request that names no chat is left to the store, which
 * refuses it as an invalid argument.
 */
export function requireChatIdHeader(metadata: Metadata, chatId: string): void {
  if (chatId === '') return;
  const values = metadata.get(CHAT_ID_HEADER).map(String);
  const send = `send "${CHAT_ID_HEADER}: ${chatId}" with every call about the chat, so the load balancer routes it to the chat's one server`;
  if (values.length === 0) throw misrouted(`the call names chat "${chatId}" but carries no ${CHAT_ID_HEADER} metadata; ${send}`);
  if (values.length > 1 || values[0] !== chatId) {
    throw misrouted(`the call names chat "${chatId}" but its ${CHAT_ID_HEADER} metadata says ${values.map((v) => JSON.stringify(v)).join(', ')}; ${send}`);
  }
}

function misrouted(message: string): ChatError {
  return new ChatError('failed-precondition', message);
}
