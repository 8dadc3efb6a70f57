import type { handleServerStreamingCall } from '@grpc/grpc-js';
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
  WatchChatResponse,
} from '../../generated/chat/v1/chat.js';
import type { Clock } from '../domain/limits.js';
import type { ChatStore, SendOutcome } from '../domain/store.js';
import { readResponse, resultCode, toChatCopy, toSubmission, toWireMessage, wireOffsets } from './convert.js';
import { unary } from './unary.js';

/** The four unary RPCs as plain functions from request to response; errors are thrown. */
export interface ChatHandlers {
  addVisitorMessage(request: AddVisitorMessageRequest): AddVisitorMessageResponse;
  addAgentMessage(request: AddAgentMessageRequest): AddAgentMessageResponse;
  getNewMessage(request: GetNewMessageRequest): GetNewMessageResponse;
  rebuild(request: RebuildRequest): RebuildResponse;
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
  };
}

/**
 * The handlers adapted to grpc-js, with every error mapped to a status in one place. WatchChat
 * is a stream, and comes ready-made (src/server/watch.ts).
 */
export function chatServiceHandlers(
  store: ChatStore,
  clock: Clock,
  logger: Logger,
  watchChat: handleServerStreamingCall<WatchChatRequest, WatchChatResponse>,
): ChatServiceServer {
  const handlers = chatHandlers(store, clock, logger);
  return {
    addVisitorMessage: unary('AddVisitorMessage', handlers.addVisitorMessage, logger),
    addAgentMessage: unary('AddAgentMessage', handlers.addAgentMessage, logger),
    getNewMessage: unary('GetNewMessage', handlers.getNewMessage, logger),
    rebuild: unary('Rebuild', handlers.rebuild, logger),
    watchChat,
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
