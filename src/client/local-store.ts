import type { Attachment, ChatEvent, ChatMessage, MessageType, ReadPosition, Visitor } from '../../generated/chat/v1/chat.js';

/** A message this device has sent but the server has not yet acknowledged. */
export interface PendingMessage {
  /** Client-generated id, the same on every retry. */
  readonly id: string;
  readonly content: string;
  readonly messageType: MessageType;
  /** Files the message refers to (references, not bytes); absent or empty for none. */
  readonly attachments?: readonly Attachment[] | undefined;
  /** A lifecycle event (join, leave, transfer, end): on SYSTEM messages only. */
  readonly event?: ChatEvent | undefined;
}

/** Everything a client keeps of one chat: the durable copy that can rebuild a server. */
export interface LocalChatState {
  readonly chatId: string;
  /** Messages the server acknowledged or delivered, each at the offset the server gave it. */
  readonly messages: readonly ChatMessage[];
  /** Sends not yet acknowledged, in the order this device made them. */
  readonly outbox: readonly PendingMessage[];
  readonly visitor?: Visitor | undefined;
  readonly beginTime?: Date | undefined;
  /** The epoch of the server chat the messages' offsets refer to (docs/protocol.md). */
  readonly epoch?: string | undefined;
  /**
   * Each reader's furthest read message as this device knows it (its own marks and the server's
   * word), uploaded with the copy when a server is rebuilt.
   */
  readonly readPositions?: readonly ReadPosition[] | undefined;
  /**
   * Readers whose position above is this device's own mark, not yet acknowledged by a server:
   * never uploaded (a secure server takes back only positions a server sealed).
   */
  readonly unsentReads?: readonly string[] | undefined;
}

/**
 * Where a session keeps its copy. `save` replaces the whole state for the chat; a save that
 * resolves is durable for stores that promise it (see FileStore), and a crash during a save
 * leaves either the old or the new state, never a mix.
 */
export interface LocalStore {
  load(chatId: string): Promise<LocalChatState | undefined>;
  save(state: LocalChatState): Promise<void>;
}

/** Keeps copies in this process's memory: the default, for servers and tests. */
export class MemoryStore implements LocalStore {
  private readonly chats = new Map<string, LocalChatState>();

  async load(chatId: string): Promise<LocalChatState | undefined> {
    const state = this.chats.get(chatId);
    return state && structuredClone(state);
  }

  async save(state: LocalChatState): Promise<void> {
    this.chats.set(state.chatId, structuredClone(state));
  }
}
