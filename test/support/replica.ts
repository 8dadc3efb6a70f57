import { expect } from 'chai';
import { type Chat, type ChatMessage, MessageType, ResultCode } from '../../generated/chat/v1/chat.js';
import type { ChatApi } from './chat-api.js';

const sideOf = (m: ChatMessage) => (m.messageType === MessageType.MESSAGE_TYPE_VISITOR ? 'visitor' : 'agent');

/**
 * A test client's copy of one chat, kept the way docs/reference.md section 2 says a client keeps it:
 * messages by side and offset, offsets as contiguous prefixes. The SDK does this for real;
 * this is the smallest faithful version, so wire tests can play clients.
 */
export class Replica {
  private readonly byId = new Map<string, ChatMessage>();

  constructor(readonly chatId: string) {}

  /** The contiguous prefix held on each side. */
  get offsets(): { visitorOffset: number; agentOffset: number } {
    const count = (side: 'visitor' | 'agent') => {
      const held = new Set([...this.byId.values()].filter((m) => sideOf(m) === side).map((m) => m.dataOffset));
      let n = 0;
      while (held.has(n + 1)) n += 1;
      return n;
    };
    return { visitorOffset: count('visitor'), agentOffset: count('agent') };
  }

  /** Takes messages the server returned (a message the server moved replaces the old copy). */
  take(messages: readonly ChatMessage[]): void {
    for (const m of messages) this.byId.set(m.id, m);
  }

  /** The copy as Rebuild uploads it. */
  toChat(): Chat {
    const { visitorOffset, agentOffset } = this.offsets;
    return { id: this.chatId, visitorDataOffset: visitorOffset, agentDataOffset: agentOffset, messages: this.messages(), visitor: undefined, beginTime: undefined, epoch: '', readPositions: [] };
  }

  /** Every message, by side then offset: a stable order to compare copies by. */
  messages(): ChatMessage[] {
    return [...this.byId.values()].sort((a, b) => sideOf(a).localeCompare(sideOf(b)) || a.dataOffset - b.dataOffset);
  }

  /** Reads until caught up, rebuilding the server first when it asks. Returns how many rebuilds it took. */
  async sync(api: ChatApi): Promise<number> {
    let rebuilds = 0;
    for (let round = 0; round < 1_000; round += 1) {
      const read = await api.getNewMessage({ chatId: this.chatId, ...this.offsets });
      if (read.code === ResultCode.RESULT_CODE_REBUILD_REQUIRED) {
        const rebuilt = await api.rebuild({ chat: this.toChat() });
        expect(rebuilt.code).to.equal(ResultCode.RESULT_CODE_OK);
        if (!rebuilt.truncated) this.take(rebuilt.chat!.messages);
        rebuilds += 1;
        continue;
      }
      this.take(read.messages);
      const { visitorOffset, agentOffset } = this.offsets;
      if (visitorOffset >= read.visitorDataOffset && agentOffset >= read.agentDataOffset) return rebuilds;
    }
    throw new Error(`chat ${this.chatId} did not sync in 1000 rounds`);
  }

  /** Sends as the visitor (or as an agent when `agentId` is given) until it succeeds. */
  async send(api: ChatApi, id: string, content: string, agentId?: string, type?: MessageType): Promise<ChatMessage> {
    for (let attempt = 0; attempt < 100; attempt += 1) {
      const message = { id, content, messageType: type ?? MessageType.MESSAGE_TYPE_UNSPECIFIED, dataOffset: 0, sendTime: undefined, senderId: '' };
      const response = agentId
        ? await api.addAgentMessage({ chatId: this.chatId, agentId, ...this.offsets, message })
        : await api.addVisitorMessage({ chatId: this.chatId, ...this.offsets, message });
      if (response.code === ResultCode.RESULT_CODE_OK) {
        this.take([response.message!]);
        return response.message!;
      }
      await this.sync(api);
    }
    throw new Error(`send of ${id} did not succeed in 100 attempts`);
  }
}
