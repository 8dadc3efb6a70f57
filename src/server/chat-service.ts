import type { Logger } from 'pino';
import type {
  AddAgentMessageResponse,
  AddVisitorMessageResponse,
  ChatServiceServer,
} from '../../generated/chat/v1/chat.js';
import type { Clock } from '../domain/limits.js';
import type { ChatStore, SendOutcome } from '../domain/store.js';
import { resultCode, toChatCopy, toSubmission, toWireMessage, wireOffsets } from './convert.js';
import { unary } from './unary.js';

/** The chat.v1.ChatService handlers: translate, call the store, translate back. */
export function chatServiceHandlers(store: ChatStore, clock: Clock, logger: Logger): ChatServiceServer {
  return {
    addVisitorMessage: unary(
      'AddVisitorMessage',
      (request) =>
        sendResponse(
          store.addVisitorMessage({
            chatId: request.chatId,
            caller: { visitor: request.visitorOffset, agent: request.agentOffset },
            message: toSubmission(request.message),
          }),
        ),
      logger,
    ),

    addAgentMessage: unary(
      'AddAgentMessage',
      (request) =>
        sendResponse(
          store.addAgentMessage({
            chatId: request.chatId,
            agentId: request.agentId,
            caller: { visitor: request.visitorOffset, agent: request.agentOffset },
            message: toSubmission(request.message),
          }),
        ),
      logger,
    ),

    getNewMessage: unary(
      'GetNewMessage',
      (request) => {
        const outcome = store.getNewMessages(request.chatId, { visitor: request.visitorOffset, agent: request.agentOffset });
        return {
          code: resultCode(outcome.rebuildRequired),
          ...wireOffsets(outcome.offsets),
          messages: outcome.messages.map(toWireMessage),
        };
      },
      logger,
    ),

    rebuild: unary(
      'Rebuild',
      (request) => {
        const started = performance.now();
        const copy = toChatCopy(request.chat, clock.now());
        const outcome = store.rebuild(copy);
        logger.info(
          {
            chatId: outcome.chatId,
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
          code: resultCode(false),
          chat: {
            id: outcome.chatId,
            ...wireOffsets(outcome.offsets),
            messages: outcome.messages.map(toWireMessage),
            visitor: outcome.visitor,
            beginTime: outcome.beginTime,
          },
          truncated: outcome.truncated,
        };
      },
      logger,
    ),
  };
}

function sendResponse(outcome: SendOutcome): AddVisitorMessageResponse & AddAgentMessageResponse {
  return {
    code: resultCode(outcome.rebuildRequired),
    ...wireOffsets(outcome.offsets),
    message: outcome.rebuildRequired ? undefined : toWireMessage(outcome.message),
  };
}
