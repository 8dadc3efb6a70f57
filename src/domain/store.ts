import { Chat, type ChatCopy } from './chat.js';
import { ChatError, invalid } from './errors.js';
import { chatOverBudget, chatRecordBytes, heldBytes, serverOverBudget, shortOfMemory, visitorBytes } from './held-bytes.js';
import { type EvictionReport, type EvictionTotals, MemoryGuard, type MemoryProbe, noMemoryPressure } from './memory-guard.js';
import type { Sealer } from './seal.js';
import { freshMessages, unsealed, uploadedReads } from './upload-check.js';
import { requireAttachments } from './attachments.js';
import { isEnd, requireEvent } from './events.js';
import { MAX_READERS_PER_CHAT, type ReadPosition, readPositionBytes } from './read-positions.js';
import { type Transcript, TranscriptDesk, type TranscriptOffer } from './transcripts.js';
import { TypingBoard, type TypingChange, type TypingNow } from './typing.js';
import { randomUUID } from 'node:crypto';
import { flat } from './flat-string.js';
import { type Clock, type Limits, systemClock } from './limits.js';
import {
  type Attachment,
  type ChatEvent,
  extrasOf,
  MISSING_CHAT_OFFSETS,
  type Message,
  MessageType,
  type NewMessage,
  type Offsets,
  type Position,
  type RebuildCause,
  type Visitor,
  rebuildCause,
  sameMessage,
} from './message.js';
import { checkLength, requireContent, requireId, requireKnownType, requireOffsets, typeName, within } from './validate.js';
import { type ChatListener, ChatWatchers } from './watchers.js';

/** A message as a sender submits it; `type` undefined means the role's default type. */
export interface Submission {
  readonly id: string;
  readonly content: string;
  readonly type: number | undefined;
  readonly senderId: string;
  /** A lifecycle event (SYSTEM messages only). */
  readonly event?: ChatEvent;
  /** References to files; absent or empty for none. */
  readonly attachments?: readonly Attachment[];
}

/** A send: the caller's position and the message. */
export interface SendRequest {
  readonly chatId: string;
  readonly caller: Position;
  readonly message: Submission;
}

/** The answer to a send; `epoch` is empty when the server had no such chat. */
export type SendOutcome =
  | { readonly rebuildRequired: false; readonly offsets: Offsets; readonly epoch: string; readonly message: Message }
  | { readonly rebuildRequired: true; readonly offsets: Offsets; readonly epoch: string };

/** The answer to a read. */
export interface ReadOutcome {
  readonly rebuildRequired: boolean;
  readonly offsets: Offsets;
  readonly epoch: string;
  readonly messages: readonly Message[];
  /** Whether the chat holds an end. */
  readonly ended: boolean;
  readonly readPositions: readonly ReadPosition[];
}

/** A MarkRead: who has read the chat up to which message, and the epoch its copy follows. */
export interface MarkReadRequest {
  readonly chatId: string;
  readonly readerId: string;
  readonly messageId: string;
  /** Empty: any incarnation. */
  readonly epoch: string;
}

/** The answer to a MarkRead: every reader's position, or (the chat missing or another incarnation) a rebuild. */
export interface MarkReadOutcome {
  readonly rebuildRequired: boolean;
  readonly epoch: string;
  readonly readPositions: readonly ReadPosition[];
}

/** How long a typing indication lasts, and how often watchers hear of one that goes on. */
export interface TypingLimits {
  readonly ttlMs: number;
  readonly throttleMs: number;
}

/** By default: a typing indication lasts 5 s, and one that goes on is told again at most once a second. */
export const DEFAULT_TYPING: TypingLimits = { ttlMs: 5_000, throttleMs: 1_000 };

/**
 * The answer to a rebuild: the server's chat after the merge; or, when the upload extends
 * another incarnation (`rebuildRequired`), the server's offsets and epoch, nothing merged.
 */
export interface RebuildOutcome {
  readonly rebuildRequired: boolean;
  readonly chatId: string;
  readonly epoch: string;
  readonly visitor: Visitor | undefined;
  readonly beginTime: Date;
  readonly offsets: Offsets;
  /** The server's messages in conversation order, a prefix when `truncated`. */
  readonly messages: readonly Message[];
  readonly truncated: boolean;
  /** Every reader's position after the merge. */
  readonly readPositions: readonly ReadPosition[];
  /** Whether the chat was created by this rebuild. */
  readonly created: boolean;
  readonly added: number;
  readonly displaced: number;
}

/**
 * What a Rebuild came to: the chat was missing and the upload created it, the upload was merged
 * into the chat held, or it extends another incarnation and nothing was merged (the caller is
 * told to rebuild). The words are the rebuild log line's `reason` and the metrics' label values
 * (chat_rebuilds_total{reason}).
 */
export type RebuildReason = 'created' | 'merged' | 'epoch_mismatch';

/** The {@link RebuildReason} of a Rebuild's outcome. */
export function rebuildReason(outcome: Pick<RebuildOutcome, 'rebuildRequired' | 'created'>): RebuildReason {
  if (outcome.rebuildRequired) return 'epoch_mismatch';
  return outcome.created ? 'created' : 'merged';
}

/** How a store watches the heap: the probe, and who hears of an eviction round. */
export interface MemoryWatch {
  readonly probe?: MemoryProbe;
  readonly onEviction?: (report: EvictionReport) => void;
}

/** An upload refused for messages without a valid seal: the chat, and how many such messages it carried. */
export interface ForgeryReport {
  readonly chatId: string;
  readonly refused: number;
}

/** A store's options: how it watches the heap, and how it seals (none by default: nothing sealed or checked). */
export interface StoreOptions extends MemoryWatch {
  /**
   * Seals every message a send stores, and refuses (PERMISSION_DENIED) an upload that would add
   * a message without a valid seal.
   */
  readonly sealer?: Sealer;
  /** Hears of each upload refused for its seals, before the refusal is thrown. */
  readonly onForgery?: (report: ForgeryReport) => void;
  /**
   * Hears of each answer to a send or a read (a watch's too) that asks the caller to rebuild,
   * with why, before it is returned.
   */
  readonly onRebuildRequired?: (cause: RebuildCause) => void;
  /** Hears of each Rebuild the store answered (not one it refused), before the answer is returned. */
  readonly onRebuild?: (outcome: RebuildOutcome) => void;
  /** How typing indications last and are throttled ({@link DEFAULT_TYPING} by default). */
  readonly typing?: TypingLimits;
}

/** The longest epoch an AckTranscript may name, whatever --max-id-bytes says (the server's are 36 bytes). */
const MAX_EPOCH_BYTES = 256;

/** A random UUID as one flat string (see {@link flat}): every chat holds its epoch. */
function flatRandomUUID(): string {
  return flat(randomUUID());
}

const AGENT_SIDE_TYPES = new Set([MessageType.Agent, MessageType.Bot, MessageType.System]);

/** A read answered with a rebuild: nothing read, for a chat the server did not have. */
const NOTHING_READ: ReadOutcome = Object.freeze({
  rebuildRequired: true,
  offsets: MISSING_CHAT_OFFSETS,
  epoch: '',
  messages: [],
  ended: false,
  readPositions: [],
});

/** A submission's id, content, event and attachments as a new message has them. */
function newMessage(message: Submission): Pick<NewMessage, 'id' | 'content' | 'event' | 'attachments'> {
  return { id: message.id, content: message.content, ...extrasOf(message) };
}

/**
 * The chats of one server, in memory, and the four operations of the protocol
 * (docs/reference.md sections 2 and 3). Every refusal is a {@link ChatError} thrown before anything
 * changes, so a refused request leaves every chat as it was.
 */
export class ChatStore {
  private readonly chats = new Map<string, Chat>();
  private readonly watchers: ChatWatchers;
  private readonly guard: MemoryGuard;
  private readonly onEviction: (report: EvictionReport) => void;
  private readonly sealer: Sealer | undefined;
  private readonly onForgery: (report: ForgeryReport) => void;
  private readonly onRebuildRequired: (cause: RebuildCause) => void;
  private readonly onRebuild: (outcome: RebuildOutcome) => void;
  private readonly typing: TypingBoard;
  private readonly transcripts = new TranscriptDesk();
  private held = 0;
  /** The messages of every chat held, kept as they change, so counting them is O(1). */
  private messages = 0;

  /**
   * @param newEpoch names each chat incarnation; random by default (a restarted server, or a
   *   chat evicted and created again, must never reuse an epoch)
   * @param options the heap probe behind the high-water eviction (none by default), and who
   *   hears of each eviction round; the sealer (none by default), and who hears of a forgery;
   *   who hears of each rebuild asked for and each Rebuild answered
   */
  constructor(
    private readonly limits: Limits,
    private readonly clock: Clock = systemClock,
    private readonly newEpoch: () => string = flatRandomUUID,
    options: StoreOptions = {},
  ) {
    this.watchers = new ChatWatchers(limits.maxWatchers);
    this.guard = new MemoryGuard(limits, options.probe ?? noMemoryPressure);
    this.onEviction = options.onEviction ?? (() => {});
    this.sealer = options.sealer;
    this.onForgery = options.onForgery ?? (() => {});
    this.onRebuildRequired = options.onRebuildRequired ?? (() => {});
    this.onRebuild = options.onRebuild ?? (() => {});
    const typing = options.typing ?? DEFAULT_TYPING;
    this.typing = new TypingBoard(typing.ttlMs, typing.throttleMs);
  }

  /** How many chats are held. */
  get size(): number {
    return this.chats.size;
  }

  /** How many messages are held, over all chats. */
  get messageCount(): number {
    return this.messages;
  }

  /** The bytes held over all chats, as the budgets count them (src/domain/held-bytes.ts). */
  get heldBytes(): number {
    return this.held;
  }

  /** What the heap's high-water mark evicted so far. */
  get memoryEvictions(): EvictionTotals {
    return this.guard.totals;
  }

  /** Sends a VISITOR message (an unspecified type means VISITOR). */
  addVisitorMessage(request: SendRequest): SendOutcome {
    const type = this.checkSend(request) ?? MessageType.Visitor;
    if (type !== MessageType.Visitor) {
      throw invalid(`a visitor can only send MESSAGE_TYPE_VISITOR messages; got ${typeName(type)}`);
    }
    // An empty sender_id means the chat's visitor, as the chat knows it when the message is
    // first stored; a resend is compared with what was stored then (see sameMessage).
    return this.send(request, { ...newMessage(request.message), type, senderId: request.message.senderId }, (chat) => chat.visitor?.id ?? '');
  }

  /** Sends an AGENT, BOT or SYSTEM message as `agentId` (an unspecified type means AGENT). */
  addAgentMessage(request: SendRequest & { readonly agentId: string }): SendOutcome {
    requireId('agent_id', request.agentId, this.limits.maxIdBytes);
    const type = this.checkSend(request) ?? MessageType.Agent;
    if (!AGENT_SIDE_TYPES.has(type)) {
      throw invalid(`the agent side takes MESSAGE_TYPE_AGENT, _BOT or _SYSTEM messages; got ${typeName(type)}`);
    }
    const { senderId } = request.message;
    if (senderId && senderId !== request.agentId) {
      throw invalid(`message.sender_id "${senderId}" differs from agent_id "${request.agentId}"; leave it empty`);
    }
    return this.send(request, { ...newMessage(request.message), type, senderId: request.agentId });
  }

  /**
   * Reads what is new above the caller's offsets. A missing chat is created empty and answered
   * with -1/-1; a caller ahead of the server is told to rebuild.
   */
  getNewMessages(chatId: string, caller: Position): ReadOutcome {
    requireId('chat_id', chatId, this.limits.maxIdBytes);
    requireOffsets(caller, this.limits.maxMessagesPerChat);
    const chat = this.chats.get(chatId);
    if (!chat) {
      const created = this.create(chatId);
      return this.rebuildRequired('missing_chat', { ...NOTHING_READ, epoch: created.epoch });
    }
    return this.read(chat, caller);
  }

  /**
   * Reads as {@link getNewMessages} does, for a caller whose request was validated before (a
   * watcher), except that a missing chat stays missing: answered with -1/-1 and no epoch.
   */
  readNew(chatId: string, caller: Position): ReadOutcome {
    const chat = this.chats.get(chatId);
    if (!chat) return this.rebuildRequired('missing_chat', NOTHING_READ);
    return this.read(chat, caller);
  }

  /**
   * Subscribes to a chat (which need not exist yet): `listener` is told synchronously after
   * every change, so a read in the same synchronous step as this call misses nothing. Returns
   * the function that cancels the subscription. Refused (RESOURCE_EXHAUSTED) at
   * `maxWatchers`. A watched chat is never evicted as idle.
   */
  watch(chatId: string, listener: ChatListener): () => void {
    requireId('chat_id', chatId, this.limits.maxIdBytes);
    return this.watchers.add(chatId, listener);
  }

  /**
   * Moves a reader's position (MarkRead). A missing chat, or one of another incarnation than the
   * request's epoch, is answered with a rebuild and nothing stored; a message the chat does not
   * hold is refused (NOT_FOUND). A position not further than the reader's changes nothing.
   */
  markRead(request: MarkReadRequest): MarkReadOutcome {
    const { chatId, readerId, messageId, epoch } = request;
    requireId('chat_id', chatId, this.limits.maxIdBytes);
    requireId('reader_id', readerId, this.limits.maxIdBytes);
    requireId('message_id', messageId, this.limits.maxIdBytes);
    const chat = this.chats.get(chatId);
    if (!chat) return this.rebuildRequired('missing_chat', { rebuildRequired: true, epoch: '', readPositions: [] });
    this.touch(chat);
    if (epoch && epoch !== chat.epoch) return this.rebuildRequired('epoch_mismatch', { rebuildRequired: true, epoch: chat.epoch, readPositions: [] });
    if (!chat.find(messageId)) {
      throw new ChatError('not-found', `chat "${chatId}" holds no message "${messageId}"; mark read a message you received from it`);
    }
    if (!chat.hasReader(readerId) && chat.readerCount >= MAX_READERS_PER_CHAT) {
      throw new ChatError('resource-exhausted', `chat "${chatId}" keeps read positions for ${chat.readerCount} readers, its limit`);
    }
    const seal = this.sealer?.sealRead(chatId, { readerId, messageId });
    const position: ReadPosition = seal === undefined ? { readerId, messageId } : { readerId, messageId, seal };
    this.admit(chatId, chat, readPositionBytes(position, this.limits.messageOverheadBytes), 'continue in a new chat');
    const before = chat.heldBytes;
    if (chat.markRead(position)) {
      this.held += chat.heldBytes - before;
      this.watchers.notify(chatId, 'activity');
    }
    return { rebuildRequired: false, epoch: chat.epoch, readPositions: chat.readPositions };
  }

  /**
   * Says that `participantId` is typing (or stopped) in a chat this server holds; watchers hear
   * of it (see {@link TypingBoard}). Refused (NOT_FOUND) for a chat not held, and
   * (FAILED_PRECONDITION) for an ended one. Nothing of it enters the history.
   */
  setTyping(chatId: string, participantId: string, typing: boolean): TypingChange {
    requireId('chat_id', chatId, this.limits.maxIdBytes);
    requireId('participant_id', participantId, this.limits.maxIdBytes);
    const chat = this.chats.get(chatId);
    if (!chat) throw new ChatError('not-found', `this server holds no chat "${chatId}"; read or send first (typing is never stored, so it is not rebuilt)`);
    if (chat.ended) throw this.endedRefusal(chat);
    const change = this.typing.set(chatId, participantId, typing, this.touch(chat).lastActiveMs);
    if (change.announce) this.watchers.notify(chatId, 'activity');
    return change;
  }

  /** Who is typing in a chat now. */
  typingIn(chatId: string): TypingNow[] {
    return this.typing.list(chatId, this.clock.now().getTime());
  }

  /** Drops the typing indications lapsed by now, and tells the watchers of each chat that had one. */
  lapseTyping(): void {
    if (!this.typing.active) return;
    for (const chatId of this.typing.lapse(this.clock.now().getTime())) this.watchers.notify(chatId, 'activity');
  }

  /** The transcript of an ended chat held here, cut to the response budget; undefined for one not held or not ended. */
  transcript(chatId: string): Transcript | undefined {
    const chat = this.chats.get(chatId);
    const endTime = chat?.endTime;
    if (!chat || !endTime) return undefined;
    const page = chat.snapshot(this.limits.maxResponseBytes);
    return {
      chatId,
      epoch: chat.epoch,
      visitor: chat.visitor,
      beginTime: chat.beginTime,
      endTime,
      messages: page.messages,
      truncated: page.truncated,
      messageCount: chat.size,
      readPositions: chat.readPositions,
    };
  }

  /**
   * Follows the transcripts to offer: every one not acknowledged yet at once, then each ended
   * chat's end, each message an ended chat takes later, and a last offer before one is evicted.
   * Returns the unsubscribe.
   */
  listenTranscripts(listener: (offer: TranscriptOffer) => void): () => void {
    return this.transcripts.listen(listener);
  }

  /** Acknowledges an archived transcript revision (see {@link TranscriptDesk.ack}). */
  ackTranscript(chatId: string, epoch: string, messageCount: number): void {
    requireId('chat_id', chatId, this.limits.maxIdBytes);
    // An epoch is the server's (a UUID, 36 bytes), not a client's id: --max-id-bytes (which may
    // be below 36) does not bound it, or no service could ack this server's transcripts.
    requireId('epoch', epoch, Math.max(this.limits.maxIdBytes, MAX_EPOCH_BYTES));
    if (!Number.isSafeInteger(messageCount) || messageCount < 1) throw invalid(`message_count must be the transcript's, 1 or more; got ${messageCount}`);
    this.transcripts.ack(chatId, epoch, messageCount);
  }

  /** How many transcripts wait for an acknowledgement. */
  get pendingTranscripts(): number {
    return this.transcripts.size;
  }

  /** How many watch subscriptions are open. */
  get watcherCount(): number {
    return this.watchers.size;
  }

  /** Drops a chat (to free memory); the next call about it finds it missing. Its watchers are told. */
  evict(chatId: string): boolean {
    const chat = this.chats.get(chatId);
    if (!chat) return false;
    // Offered before it goes: a transcript nobody acknowledged, taken while it can still be read.
    if (this.transcripts.isPending(chatId)) this.transcripts.last(this.transcript(chatId)!);
    this.typing.drop(chatId);
    this.chats.delete(chatId);
    this.held -= chat.heldBytes;
    this.messages -= chat.size;
    this.watchers.notify(chatId, 'evicted');
    return true;
  }

  /** Drops every chat no request has touched since `before`, unless it is watched; returns how many. */
  evictIdle(before: Date): number {
    let evicted = 0;
    for (const [id, chat] of this.chats) {
      if (chat.lastActiveMs < before.getTime() && !this.watchers.watched(id) && this.evict(id)) evicted += 1;
    }
    return evicted;
  }

  /**
   * Merges a client's copy into the server's chat, creating the chat if needed. An upload that
   * extends an incarnation (`copy.epoch`) is merged only into that one: it is a piece of a
   * history, and anywhere else it would arrive without what comes before it.
   */
  rebuild(copy: ChatCopy): RebuildOutcome {
    requireId('chat.id', copy.id, this.limits.maxIdBytes);
    const existing = this.chats.get(copy.id);
    if (copy.epoch && copy.epoch !== existing?.epoch) {
      return this.rebuilt({
        rebuildRequired: true,
        chatId: copy.id,
        epoch: existing?.epoch ?? '',
        visitor: existing?.visitor,
        beginTime: existing?.beginTime ?? this.clock.now(),
        offsets: existing?.offsets ?? MISSING_CHAT_OFFSETS,
        messages: [],
        truncated: false,
        readPositions: [],
        created: false,
        added: 0,
        displaced: 0,
      });
    }
    this.checkUpload(copy, existing);
    const chat = this.touch(existing ?? this.create(copy.id));
    const before = chat.heldBytes;
    // The whole copy: the messages the chat holds are the anchors that keep the uploader's order.
    const { added, displaced, readsMoved } = chat.merge(copy);
    this.held += chat.heldBytes - before;
    this.messages += added;
    if (added > 0) this.watchers.notify(chat.id, 'messages');
    else if (readsMoved > 0) this.watchers.notify(chat.id, 'activity');
    // An end uploaded, or late messages merged into an ended chat: the transcript has a new revision.
    if (added > 0 && chat.ended) this.transcripts.offer(chat.id, chat.epoch, chat.size);
    const page = chat.snapshot(this.limits.maxResponseBytes);
    return this.rebuilt({
      rebuildRequired: false,
      chatId: chat.id,
      epoch: chat.epoch,
      visitor: chat.visitor,
      beginTime: chat.beginTime,
      offsets: chat.offsets,
      messages: page.messages,
      truncated: page.truncated,
      readPositions: chat.readPositions,
      created: !existing,
      added,
      displaced,
    });
  }

  /** Tells `onRebuild` of a Rebuild's outcome, and returns it. */
  private rebuilt(outcome: RebuildOutcome): RebuildOutcome {
    this.onRebuild(outcome);
    return outcome;
  }

  /** Tells `onRebuildRequired` why `answer` asks the caller to rebuild, and returns it. */
  private rebuildRequired<T>(cause: RebuildCause, answer: T): T {
    this.onRebuildRequired(cause);
    return answer;
  }

  /** Validates what every send shares; returns the explicit type, if any. */
  private checkSend(request: SendRequest): MessageType | undefined {
    const { maxIdBytes, maxContentBytes, maxAttachmentBytes } = this.limits;
    requireId('chat_id', request.chatId, maxIdBytes);
    requireOffsets(request.caller, this.limits.maxMessagesPerChat);
    const { id, content, senderId, type, event, attachments } = request.message;
    requireId('message.id', id, maxIdBytes);
    // An event or an attachment says something: its text may be empty.
    if (event || attachments?.length) checkLength('message.content', content, maxContentBytes);
    else requireContent('message.content', content, maxContentBytes);
    checkLength('message.sender_id', senderId, maxIdBytes);
    const known = type === undefined ? undefined : requireKnownType('message.message_type', type);
    if (attachments) within('message.', () => requireAttachments(attachments, maxAttachmentBytes));
    if (event) within('message.', () => requireEvent(event, known ?? MessageType.Agent, maxIdBytes));
    return known;
  }

  /** The refusal of a send into an ended chat. */
  private endedRefusal(chat: Chat): ChatError {
    return new ChatError(
      'failed-precondition',
      `chat "${chat.id}" ended at ${chat.endTime!.toISOString()} and takes no more messages; it can still be read, watched and rebuilt`,
    );
  }

  /**
   * Stores `message`, or answers the message stored under its id when this is a resend of it.
   * An empty `message.senderId` takes `defaultSender(chat)` when the message is first stored,
   * and only then: a sender id is fixed once stored.
   */
  private send(request: SendRequest, message: NewMessage, defaultSender: (chat: Chat) => string = () => ''): SendOutcome {
    const found = this.chats.get(request.chatId);
    if (!found) return this.rebuildRequired('missing_chat', { rebuildRequired: true, offsets: MISSING_CHAT_OFFSETS, epoch: '' });
    // One reading of the clock: the chat's last activity and, if it is stored, the message's send time.
    const now = this.clock.now();
    const chat = this.touch(found, now);
    const { epoch } = chat;
    const offsets = chat.offsets;
    const cause = rebuildCause(request.caller, offsets, epoch);
    if (cause) return this.rebuildRequired(cause, { rebuildRequired: true, offsets, epoch });

    const stored = chat.find(message.id);
    if (stored) {
      if (!sameMessage(stored, message)) {
        throw invalid(
          `message id "${message.id}" already names a different message in chat "${chat.id}"; ` +
            'a retry must resend the same message, and a new message needs a new id',
        );
      }
      return { rebuildRequired: false, offsets, epoch, message: stored };
    }
    if (chat.ended) throw this.endedRefusal(chat);
    if (chat.size >= this.limits.maxMessagesPerChat) {
      throw new ChatError('resource-exhausted', `chat "${chat.id}" is full: it holds ${chat.size} messages, the limit`);
    }
    const { id, content, type, event, attachments } = message;
    const senderId = message.senderId || defaultSender(chat);
    // Sealed as stored: the server's send time and the final sender.
    const seal = this.sealer?.seal(chat.id, { id, type, senderId, content, sendTime: now, event, attachments });
    const fresh: NewMessage = { ...message, senderId, ...(seal !== undefined && { seal }) };
    this.admit(chat.id, chat, heldBytes(fresh, this.limits.messageOverheadBytes), 'continue in a new chat');
    const before = chat.heldBytes;
    const appended = chat.append(fresh, now);
    this.held += chat.heldBytes - before; // as a merge counts: what the chat itself now holds more
    this.messages += 1;
    // A participant who sends has stopped typing; the watchers read both changes at once.
    this.typing.clear(chat.id, senderId);
    this.watchers.notify(chat.id, 'messages');
    if (isEnd(appended)) this.transcripts.offer(chat.id, epoch, chat.size);
    return { rebuildRequired: false, offsets: chat.offsets, epoch, message: appended };
  }

  /** The messages above the caller's offsets, one page; or a rebuild, as the protocol says. */
  private read(chat: Chat, caller: Position): ReadOutcome {
    const { offsets, epoch } = this.touch(chat);
    const cause = rebuildCause(caller, offsets, epoch);
    if (cause) return this.rebuildRequired(cause, { ...NOTHING_READ, offsets, epoch });
    const messages = chat.readAfter(caller, this.limits.maxResponseBytes).messages;
    return { rebuildRequired: false, offsets, epoch, messages, ended: chat.ended, readPositions: chat.readPositions };
  }

  /**
   * Validates an upload against the chat and the limits, and, with a sealer, the seals of the
   * messages it adds; refuses it before anything changes.
   */
  private checkUpload(copy: ChatCopy, chat: Chat | undefined): void {
    const fresh = freshMessages(copy, chat, this.limits, this.clock.now());
    const reads = uploadedReads(copy, chat, this.limits, this.sealer);
    if (this.sealer) {
      const forged = unsealed(copy, fresh, this.sealer);
      if (forged) {
        this.onForgery({ chatId: copy.id, refused: forged.count });
        throw forged.refusal;
      }
    }
    if (!chat && this.chats.size >= this.limits.maxChats) throw this.full();
    const total = (chat?.size ?? 0) + fresh.length;
    if (total > this.limits.maxMessagesPerChat) {
      throw new ChatError(
        'resource-exhausted',
        `chat "${copy.id}" would hold ${total} messages; the limit is ${this.limits.maxMessagesPerChat}`,
      );
    }
    const overhead = this.limits.messageOverheadBytes;
    let costBytes = chat ? 0 : chatRecordBytes(copy.id, undefined, overhead);
    if (!chat?.visitor) costBytes += visitorBytes(copy.visitor);
    for (const message of fresh) costBytes += heldBytes(message, overhead);
    for (const position of reads) costBytes += readPositionBytes(position, overhead);
    if (costBytes > 0) this.admit(copy.id, chat, costBytes, 'this server cannot take the chat whole; try another server');
  }

  private create(chatId: string): Chat {
    if (this.chats.size >= this.limits.maxChats) throw this.full();
    const overhead = this.limits.messageOverheadBytes;
    this.admit(chatId, undefined, chatRecordBytes(chatId, undefined, overhead), 'try another server');
    const chat = new Chat(chatId, this.newEpoch(), this.clock.now(), overhead);
    this.chats.set(chatId, chat);
    this.held += chat.heldBytes;
    return chat;
  }

  /**
   * Refuses (RESOURCE_EXHAUSTED) a write of `costBytes` into a chat (undefined: a new one) that
   * would pass the chat's or the server's byte budget, or that finds the heap above its
   * high-water mark with nothing left to evict. Evicts idle chats, never `chatId`, to make room.
   */
  private admit(chatId: string, chat: Chat | undefined, costBytes: number, chatHint: string): void {
    const chatBytes = chat?.heldBytes ?? 0;
    if (chatBytes + costBytes > this.limits.maxChatBytes) throw chatOverBudget(chatId, chatBytes, costBytes, this.limits.maxChatBytes, chatHint);
    if (this.held + costBytes > this.limits.maxHeldBytes) throw serverOverBudget(this.held, costBytes, this.limits.maxHeldBytes);
    const report = this.guard.relieve(this.evictor(chatId));
    if (report && report.chats > 0) this.onEviction(report);
    if (report?.stillShort) throw shortOfMemory(report);
  }

  /** Evicts, one per call, the least recently used chats nobody watches, except `keep`; returns the bytes each held. */
  private evictor(keep: string): () => number | undefined {
    let queue: Chat[] | undefined;
    let next = 0;
    return () => {
      queue ??= [...this.chats.values()]
        .filter((chat) => chat.id !== keep && !this.watchers.watched(chat.id))
        .sort((a, b) => a.lastActiveMs - b.lastActiveMs);
      const chat = queue[next++];
      if (!chat) return undefined;
      this.evict(chat.id);
      return chat.heldBytes;
    };
  }

  private touch(chat: Chat, now: Date = this.clock.now()): Chat {
    chat.lastActiveMs = now.getTime();
    return chat;
  }

  private full(): ChatError {
    return new ChatError('resource-exhausted', `this server holds ${this.chats.size} chats, its limit; try another server`);
  }
}
