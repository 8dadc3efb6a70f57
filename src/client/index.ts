/** The chat-rebuild client SDK. */
export { ChatSession } from './session.js';
export type { ChatSessionEvents, ChatSessionOptions, RebuildEvent, RetryEvent, Role, TokenSource } from './options.js';
export { ChatSdkError, type ChatSdkErrorKind } from './errors.js';
export { type LocalChatState, type LocalStore, MemoryStore, type PendingMessage } from './local-store.js';
export { FileStore, LocalStoreError } from './file-store.js';
export type { ClientOffsets } from './wire.js';
export { placement } from './placement.js';
export { CHAT_ID_HEADER } from './transport.js';
export type { BackoffOptions } from './backoff.js';
export { type Attachment, type ChatEvent, type ChatMessage, EventKind, MessageType, type ReadPosition, type Typing, type Visitor } from '../../generated/chat/v1/chat.js';
