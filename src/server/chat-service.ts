import type { Logger } from 'pino';
import type {
  AckTranscriptRequest,
  AckTranscriptResponse,
  AddAgentMessageRequest,
  AddAgentMessageResponse,
  AddVisitorMessageRequest,
  AddVisitorMessageResponse,
  ChatServiceServer,
  GetNewMessageRequest,
  GetNewMessageResponse,
  MarkReadRequest,
  MarkReadResponse,
  RebuildResponse,
  SetTypingRequest,
  SetTypingResponse,
  WatchChatRequest,
  WatchChatResponse,
  WatchTranscriptsRequest,
  WatchTranscriptsResponse,
} from '../../generated/chat/v1/chat.js';
import { ChatServiceService, RebuildRequest } from '../../generated/chat/v1/chat.js';
import { agentSender, authoriseUpload, type Caller, INSECURE, participantOf, requireChatAccess, requireService, visitorSender } from '../domain/access.js';
import type { Clock } from '../domain/limits.js';
import { type ChatStore, rebuildReason, type SendOutcome } from '../domain/store.js';
import { readResponse, resultCode, toChatCopy, toSubmission, toWireMessage, toWireReadPosition, wireOffsets } from './convert.js';
import { requestBytes } from './decoding.js';
import type { RateLimiter, RateLimits } from './rate-limits.js';
import type { WatchStreams } from './stream.js';
import { unary, type UnaryContext } from './unary.js';
import { openTranscriptFeed } from './transcript-feed.js';
import { openWatchFeed, type WatchFeed } from './watch-feed.js';

export type { WatchFeed } from './watch-feed.js';

/**
 * The RPCs as plain functions of a request and its authenticated caller; errors are thrown. The
 * unary ones map a request to a response; WatchChat and WatchTranscripts map one to a feed of
 * responses, pulled one at a time.
 */
export interface ChatHandlers {
  addVisitorMessage(request: AddVisitorMessageRequest, caller: Caller): AddVisitorMessageResponse;
  addAgentMessage(request: AddAgentMessageRequest, caller: Caller): AddAgentMessageResponse;
  getNewMessage(request: GetNewMessageRequest, caller: Caller): GetNewMessageResponse;
  rebuild(request: RebuildRequest, caller: Caller): RebuildResponse;
  watchChat(request: WatchChatRequest, caller: Caller): WatchFeed;
  markRead(request: MarkReadRequest, caller: Caller): MarkReadResponse;
  setTyping(request: SetTypingRequest, caller: Caller): SetTypingResponse;
  watchTranscripts(request: WatchTranscriptsRequest, caller: Caller): WatchFeed<WatchTranscriptsResponse>;
  ackTranscript(request: AckTranscriptRequest, caller: Caller): AckTranscriptResponse;
}

/**
 * The chat.v1.ChatService handlers: check what the caller may do (src/domain/access.ts) and its
 * rate limits, translate, call the store, translate back. Sender ids come from the caller's
 * token, never from the request (except on an insecure server). `limits`: per token subject,
 * and the server's budget for Rebuild uploads (none by default). A refusal by any of them comes
 * before the store is touched, so it changes no chat.
 */
export function chatHandlers(store: ChatStore, clock: Clock, logger: Logger, limits?: RateLimits): ChatHandlers {
  /** Who a caller is, for rate limits and logs: `role:sub`; none on an insecure server. */
  const subjectOf = (caller: Caller) => (caller === INSECURE ? undefined : `${caller.role}:${caller.sub}`);
  const charge = (limiter: RateLimiter | undefined, caller: Caller) => {
    const subject = subjectOf(caller);
    if (limiter && subject !== undefined) limiter.take(subject);
  };
  return {
    addVisitorMessage: (request, caller) => {
      const message = toSubmission(request.message);
      const senderId = visitorSender(caller, request.chatId, message.senderId);
      charge(limits?.sends, caller);
      return sendResponse(
        store.addVisitorMessage({
          chatId: request.chatId,
          caller: { visitor: request.visitorOffset, agent: request.agentOffset, epoch: request.epoch },
          message: { ...message, senderId },
        }),
      );
    },

    addAgentMessage: (request, caller) => {
      const message = toSubmission(request.message);
      const agentId = agentSender(caller, request.chatId, request.agentId, message.type, message.event);
      charge(limits?.sends, caller);
      return sendResponse(
        store.addAgentMessage({
          chatId: request.chatId,
          agentId,
          caller: { visitor: request.visitorOffset, agent: request.agentOffset, epoch: request.epoch },
          message,
        }),
      );
    },

    getNewMessage: (request, caller) => {
      requireChatAccess(caller, request.chatId);
      return readResponse(
        store.getNewMessages(request.chatId, { visitor: request.visitorOffset, agent: request.agentOffset, epoch: request.epoch }),
      );
    },

    rebuild: (request, caller) => {
      const started = performance.now();
      const copy = authoriseUpload(caller, toChatCopy(request.chat, clock.now()));
      charge(limits?.rebuilds, caller);
      // Requests from the wire know their size; one handed over in process (a test) is measured.
      limits?.rebuildBytes.admit(requestBytes(request) ?? RebuildRequest.encode(request).finish().length);
      const outcome = store.rebuild(copy);
      logger.info(
        {
          chatId: outcome.chatId,
          ...(caller !== INSECURE && { caller: subjectOf(caller) }),
          epoch: outcome.epoch,
          reason: rebuildReason(outcome),
          rebuildRequired: outcome.rebuildRequired,
          created: outcome.created,
          uploaded: copy.messages.length,
          added: outcome.added,
          displaced: outcome.displaced,
          visitorDataOffset: outcome.offsets.visitor,
          agentDataOffset: outcome.offsets.agent,
          ms: Math.round((performance.now() - started) * 10) / 10,
        },
        'rebuild',
      );
      return {
        code: resultCode(outcome.rebuildRequired),
        chat: {
          id: outcome.chatId,
          ...wireOffsets(outcome.offsets),
          messages: outcome.messages.map(toWireMessage),
          visitor: outcome.visitor,
          beginTime: outcome.beginTime,
          epoch: outcome.epoch,
          readPositions: outcome.readPositions.map(toWireReadPosition),
        },
        truncated: outcome.truncated,
      };
    },

    watchChat: (request, caller) => {
      requireChatAccess(caller, request.chatId);
      return openWatchFeed(store, request);
    },

    markRead: (request, caller) => {
      const readerId = participantOf(caller, request.chatId, request.readerId, 'reader_id');
      const outcome = store.markRead({ chatId: request.chatId, readerId, messageId: request.messageId, epoch: request.epoch });
      return { code: resultCode(outcome.rebuildRequired), epoch: outcome.epoch, readPositions: outcome.readPositions.map(toWireReadPosition) };
    },

    setTyping: (request, caller) => {
      const participantId = participantOf(caller, request.chatId, request.participantId, 'participant_id');
      const { expireMs } = store.setTyping(request.chatId, participantId, request.typing);
      return { expireTime: expireMs === undefined ? undefined : new Date(expireMs) };
    },

    watchTranscripts: (_request, caller) => {
      requireService(caller, 'follow transcripts');
      return openTranscriptFeed(store);
    },

    ackTranscript: (request, caller) => {
      requireService(caller, 'acknowledge transcripts');
      store.ackTranscript(request.chatId, request.epoch, request.messageCount);
      return {};
    },
  };
}

/**
 * The handlers adapted to grpc-js, with every error mapped to a status in one place: the unary
 * ones by src/server/unary.ts, WatchChat by the server's open streams (src/server/stream.ts).
 * GetNewMessage and Rebuild answer with messages, so they are the reads refused while too many
 * answers are in flight; sends are answered small and are never refused for that.
 */
export function chatServiceHandlers(handlers: ChatHandlers, streams: Pick<WatchStreams, 'adapt'>, context: UnaryContext): ChatServiceServer {
  const service = ChatServiceService;
  return {
    addVisitorMessage: unary('AddVisitorMessage', handlers.addVisitorMessage, { encode: service.addVisitorMessage.responseSerialize, read: false, chatId: (r) => r.chatId }, context),
    addAgentMessage: unary('AddAgentMessage', handlers.addAgentMessage, { encode: service.addAgentMessage.responseSerialize, read: false, chatId: (r) => r.chatId }, context),
    getNewMessage: unary('GetNewMessage', handlers.getNewMessage, { encode: service.getNewMessage.responseSerialize, read: true, chatId: (r) => r.chatId }, context),
    rebuild: unary('Rebuild', handlers.rebuild, { encode: service.rebuild.responseSerialize, read: true, chatId: (r) => r.chat?.id ?? '' }, context),
    watchChat: streams.adapt<WatchChatRequest, WatchChatResponse>(handlers.watchChat, context.gate, { method: 'WatchChat', encode: service.watchChat.responseSerialize, chatId: (r) => r.chatId }),
    markRead: unary('MarkRead', handlers.markRead, { encode: service.markRead.responseSerialize, read: false, chatId: (r) => r.chatId }, context),
    setTyping: unary('SetTyping', handlers.setTyping, { encode: service.setTyping.responseSerialize, read: false, chatId: (r) => r.chatId }, context),
    watchTranscripts: streams.adapt(handlers.watchTranscripts, context.gate, { method: 'WatchTranscripts', encode: service.watchTranscripts.responseSerialize, chatId: () => '' }),
    ackTranscript: unary('AckTranscript', handlers.ackTranscript, { encode: service.ackTranscript.responseSerialize, read: false, chatId: (r) => r.chatId }, context),
  };
}

function sendResponse(outcome: SendOutcome): AddVisitorMessageResponse & AddAgentMessageResponse {
  return {
    code: resultCode(outcome.rebuildRequired),
    ...wireOffsets(outcome.offsets),
    message: outcome.rebuildRequired ? undefined : toWireMessage(outcome.message),
    epoch: outcome.epoch,
  };
}
