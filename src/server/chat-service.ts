import type { Logger } from 'pino';
import type {
  AddAgentMessageRequest,
  AddAgentMessageResponse,
  AddVisitorMessageRequest,
  AddVisitorMessageResponse,
  ChatServiceServer,
  GetNewMessageRequest,
  GetNewMessageResponse,
  RebuildRequest,
  RebuildResponse,
  WatchChatRequest,
} from '../../generated/chat/v1/chat.js';
import { ChatServiceService } from '../../generated/chat/v1/chat.js';
import type { Clock } from '../domain/limits.js';
import type { ChatStore, SendOutcome } from '../domain/store.js';
import { readResponse, resultCode, toChatCopy, toSubmission, toWireMessage, wireOffsets } from './convert.js';
import type { WatchStreams } from './stream.js';
import { unary, type UnaryContext } from './unary.js';
import { openWatchFeed, type WatchFeed } from './watch-feed.js';

export type { WatchFeed } from './watch-feed.js';

/**
 * The five RPCs as plain functions; errors are thrown. The unary ones map a request to a
 * response; WatchChat maps one to a feed of responses, pulled one at a time.
 */
export interface ChatHandlers {
  addVisitorMessage(request: AddVisitorMessageRequest): AddVisitorMessageResponse;
  addAgentMessage(request: AddAgentMessageRequest): AddAgentMessageResponse;
  getNewMessage(request: GetNewMessageRequest): GetNewMessageResponse;
  rebuild(request: RebuildRequest): RebuildResponse;
  watchChat(request: WatchChatRequest): WatchFeed;
}

/** The chat.v1.ChatService handlers: translate, call the store, translate back. */
export function chatHandlers(store: ChatStore, clock: Clock, logger: Logger): ChatHandlers {
  return {
    addVisitorMessage: (request) =>
      sendResponse(
        store.addVisitorMessage({
          chatId: request.chatId,
          caller: { visitor: request.visitorOffset, agent: request.agentOffset, epoch: request.epoch },
          message: toSubmission(request.message),
        }),
      ),

    addAgentMessage: (request) =>
      sendResponse(
        store.addAgentMessage({
          chatId: request.chatId,
          agentId: request.agentId,
          caller: { visitor: request.visitorOffset, agent: request.agentOffset, epoch: request.epoch },
          message: toSubmission(request.message),
        }),
      ),

    getNewMessage: (request) =>
      readResponse(
        store.getNewMessages(request.chatId, { visitor: request.visitorOffset, agent: request.agentOffset, epoch: request.epoch }),
      ),

    rebuild: (request) => {
      const started = performance.now();
      const copy = toChatCopy(request.chat, clock.now());
      const outcome = store.rebuild(copy);
      logger.info(
        {
          chatId: outcome.chatId,
          epoch: outcome.epoch,
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

    watchChat: (request) => openWatchFeed(store, request),
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
    addVisitorMessage: unary('AddVisitorMessage', handlers.addVisitorMessage, { encode: service.addVisitorMessage.responseSerialize, read: false }, context),
    addAgentMessage: unary('AddAgentMessage', handlers.addAgentMessage, { encode: service.addAgentMessage.responseSerialize, read: false }, context),
    getNewMessage: unary('GetNewMessage', handlers.getNewMessage, { encode: service.getNewMessage.responseSerialize, read: true }, context),
    rebuild: unary('Rebuild', handlers.rebuild, { encode: service.rebuild.responseSerialize, read: true }, context),
    watchChat: streams.adapt(handlers.watchChat),
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
