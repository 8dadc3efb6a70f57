import type { Logger } from 'pino';
import type {
  AddAgentMessageRequest,
  AddAgentMessageResponse,
  AddVisitorMessageRequest,
  AddVisitorMessageResponse,
  ChatServiceServer,
  GetNewMessageRequest,
  GetNewMessageResponse,
  RebuildResponse,
  WatchChatRequest,
} from '../../generated/chat/v1/chat.js';
import { ChatServiceService, RebuildRequest } from '../../generated/chat/v1/chat.js';
import { agentSender, authoriseUpload, type Caller, INSECURE, requireChatAccess, visitorSender } from '../domain/access.js';
import type { Clock } from '../domain/limits.js';
import { type ChatStore, rebuildReason, type SendOutcome } from '../domain/store.js';
import { readResponse, resultCode, toChatCopy, toSubmission, toWireMessage, wireOffsets } from './convert.js';
import { requestBytes } from './decoding.js';
import type { RateLimiter, RateLimits } from './rate-limits.js';
import type { WatchStreams } from './stream.js';
import { unary, type UnaryContext } from './unary.js';
import { openWatchFeed, type WatchFeed } from './watch-feed.js';

export type { WatchFeed } from './watch-feed.js';

/**
 * The five RPCs as plain functions of a request and its authenticated caller; errors are
 * thrown. The unary ones map a request to a response; WatchChat maps one to a feed of
 * responses, pulled one at a time.
 */
export interface ChatHandlers {
  addVisitorMessage(request: AddVisitorMessageRequest, caller: Caller): AddVisitorMessageResponse;
  addAgentMessage(request: AddAgentMessageRequest, caller: Caller): AddAgentMessageResponse;
  getNewMessage(request: GetNewMessageRequest, caller: Caller): GetNewMessageResponse;
  rebuild(request: RebuildRequest, caller: Caller): RebuildResponse;
  watchChat(request: WatchChatRequest, caller: Caller): WatchFeed;
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
          message: { id: message.id, content: message.content, type: message.type, senderId },
        }),
      );
    },

    addAgentMessage: (request, caller) => {
      const message = toSubmission(request.message);
      const agentId = agentSender(caller, request.chatId, request.agentId, message.type);
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
        },
        truncated: outcome.truncated,
      };
    },

    watchChat: (request, caller) => {
      requireChatAccess(caller, request.chatId);
      return openWatchFeed(store, request);
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
    watchChat: streams.adapt(handlers.watchChat, context.gate),
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
