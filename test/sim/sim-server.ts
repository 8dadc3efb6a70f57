import { pino } from 'pino';
import * as wire from '../../generated/chat/v1/chat.js';
import type { ChatMethod, RequestOf, ResponseOf } from '../../src/client/transport.js';
import type { Caller, Principal } from '../../src/domain/access.js';
import type { Clock, Limits } from '../../src/domain/limits.js';
import type { Sealer } from '../../src/domain/seal.js';
import { ChatStore } from '../../src/domain/store.js';
import { type ChatHandlers, chatHandlers } from '../../src/server/chat-service.js';
import type { WatchFeed } from '../../src/server/watch-feed.js';
import { overTheWire } from './wire-codec.js';

/** The handlers' logger: a run's refusals are expected, and its failures are reported by the checks. */
export const silent = pino({ level: 'silent' });

/** The caller of the checks' own reads (audits): a service, which may read any chat. */
const AUDITOR: Principal = { sub: 'auditor', role: 'service' };

/**
 * One chat server, secure as a deployment's: a real ChatStore that seals with `sealer` behind
 * the real handlers, which check each call against its caller. A crash loses every chat (the
 * next incarnation starts empty and gives new chats new epochs) and leaves the server down
 * until `restart()`; `down()`/`up()` cut it off and reconnect it with its chats intact.
 */
export class SimServer {
  private store!: ChatStore;
  private handlers!: ChatHandlers;
  private auditing = false;
  /** Bumped by each crash: calls sent to an earlier incarnation die with the connection. */
  incarnation = 0;
  isUp = true;

  constructor(
    readonly name: string,
    private readonly limits: Limits,
    private readonly clock: Clock,
    private readonly newEpoch: () => string,
    private readonly sealer: Sealer,
  ) {
    this.boot();
  }

  private readonly crashListeners: (() => void)[] = [];

  /** Tells `listener` of every crash (the network breaks the crashed incarnation's streams). */
  onCrash(listener: () => void): void {
    this.crashListeners.push(listener);
  }

  crash(): void {
    this.isUp = false;
    this.boot();
    for (const listener of this.crashListeners) listener();
  }

  restart(): void {
    this.isUp = true;
  }

  down(): void {
    this.isUp = false;
  }

  up(): void {
    this.isUp = true;
  }

  /** Drops the chat, as idle eviction does; the next call about it finds it missing. */
  evict(chatId: string): boolean {
    return this.store.evict(chatId);
  }

  /** One request of `caller` through the real handlers; a refusal is thrown as a ChatError. */
  handle<M extends ChatMethod>(method: M, request: RequestOf<M>, caller: Caller = AUDITOR): ResponseOf<M> {
    return (this.handlers[method] as (request: RequestOf<M>, caller: Caller) => ResponseOf<M>)(request, caller);
  }

  /**
   * A MarkRead of `caller` through the real handler, straight to the server (the SDK has no
   * MarkRead yet, so the simulation calls it at the wire level); a refusal is thrown as a ChatError.
   */
  markRead(request: wire.MarkReadRequest, caller: Caller): wire.MarkReadResponse {
    return overTheWire(wire.MarkReadResponse, this.handlers.markRead(overTheWire(wire.MarkReadRequest, request), caller));
  }

  /** Opens a watch of `caller` through the real handler; a refusal is thrown as a ChatError. */
  watch(request: wire.WatchChatRequest, caller: Caller): WatchFeed {
    return this.handlers.watchChat(request, caller);
  }

  /**
   * Everything the server holds of a chat, gaps or not, through the handlers (a Rebuild that
   * uploads nothing, answered without the page limit).
   */
  audit(chatId: string): wire.RebuildResponse {
    this.auditing = true;
    try {
      return this.handle('rebuild', { chat: { id: chatId, visitorDataOffset: 0, agentDataOffset: 0, messages: [], visitor: undefined, beginTime: undefined, epoch: '', readPositions: [] } });
    } finally {
      this.auditing = false;
    }
  }

  /** The chat as a client reads it from offsets 0/0, page by page, through the handlers. */
  read(chatId: string): wire.GetNewMessageResponse[] {
    const pages: wire.GetNewMessageResponse[] = [];
    const at = { visitorOffset: 0, agentOffset: 0 };
    for (;;) {
      const page = this.handle('getNewMessage', { chatId, ...at, epoch: '' });
      pages.push(page);
      if (page.code === wire.ResultCode.RESULT_CODE_REBUILD_REQUIRED || page.messages.length === 0) return pages;
      for (const m of page.messages) {
        if (m.messageType === wire.MessageType.MESSAGE_TYPE_VISITOR) at.visitorOffset = Math.max(at.visitorOffset, m.dataOffset);
        else at.agentOffset = Math.max(at.agentOffset, m.dataOffset);
      }
      if (pages.length > 10_000) throw new Error(`reading ${chatId} from ${this.name} does not end`);
    }
  }

  private boot(): void {
    const limits = this.limits;
    const server = this;
    const budgeted: Limits = {
      ...limits,
      get maxResponseBytes() {
        return server.auditing ? Number.POSITIVE_INFINITY : limits.maxResponseBytes;
      },
    };
    this.incarnation += 1;
    this.store = new ChatStore(budgeted, this.clock, this.newEpoch, { sealer: this.sealer });
    this.handlers = chatHandlers(this.store, this.clock, silent);
  }
}
