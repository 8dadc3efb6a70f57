import type { ChatCopy } from './chat.js';
import { denied } from './errors.js';
import { type ChatEvent, EventKind, MessageType } from './message.js';
import { typeName } from './validate.js';

/** The roles a token can carry. */
export type Role = 'visitor' | 'agent' | 'service';

/**
 * Who a verified token says the caller is: its subject (the visitor's, agent's or service's id),
 * its role and, for a visitor, the one chat it may touch. How the token was verified is the
 * server's business (src/server/authentication.ts); the rules below only see this.
 */
export interface Principal {
  readonly sub: string;
  readonly role: Role;
  /** For a visitor: its chat. Agents and services may touch any chat. */
  readonly chatId?: string;
}

/** The caller of a server run with --insecure: nobody is checked, and sender ids are the request's. */
export const INSECURE = 'insecure' as const;

/** Who makes a request: a principal, or anyone on an insecure server. */
export type Caller = Principal | typeof INSECURE;

/**
 * Refuses (PERMISSION_DENIED) a visitor that names a chat other than its token's. Every call
 * that names a chat (reads, watches, sends, rebuilds) goes through here; one that names none is
 * left to the store.
 */
export function requireChatAccess(caller: Caller, chatId: string): void {
  // An empty chat id names no chat: the store refuses it as an invalid argument, whoever asks.
  if (caller === INSECURE || caller.role !== 'visitor' || caller.chatId === chatId || chatId === '') return;
  throw denied(`a visitor token for chat "${caller.chatId}" cannot touch chat "${chatId}"`);
}

/**
 * The sender id of a visitor message: the token's subject. Only a visitor token for the chat
 * may send one, and a sender_id in the request must be empty or that subject.
 */
export function visitorSender(caller: Caller, chatId: string, senderId: string): string {
  if (caller === INSECURE) return senderId;
  if (caller.role !== 'visitor') {
    throw denied(`${article(caller.role)} token cannot send visitor messages; only the chat's visitor can`);
  }
  requireChatAccess(caller, chatId);
  if (senderId && senderId !== caller.sub) {
    throw denied(`message.sender_id "${senderId}" is not the token's subject "${caller.sub}"; leave it empty`);
  }
  return caller.sub;
}

/**
 * The agent_id of an agent-side message: the token's subject. An agent token posts AGENT
 * messages (the type an unset message_type means), a service token BOT or SYSTEM ones; a
 * visitor token none. An agent_id in the request must be empty or that subject.
 *
 * @param type the request's message type; undefined for an unset one. A number that names no
 *   type, and MESSAGE_TYPE_VISITOR (never an agent-side type), are left to the store, which
 *   refuses them as invalid arguments whoever sends them.
 */
export function agentSender(caller: Caller, chatId: string, agentId: string, type: number | undefined, event?: ChatEvent): string {
  if (caller === INSECURE) return agentId;
  if (caller.role === 'visitor') throw denied('a visitor token cannot post on the agent side; send visitor messages');
  requireChatAccess(caller, chatId);
  const resolved = type ?? MessageType.Agent;
  if (MessageType[resolved] !== undefined && resolved !== MessageType.Visitor) {
    const unset = type === undefined ? ' (what an unset message_type means)' : '';
    if (caller.role === 'agent' && resolved === MessageType.System && event) requireOwnEvent(caller, event);
    else if (caller.role === 'agent' && resolved !== MessageType.Agent) {
      throw denied(`an agent token posts MESSAGE_TYPE_AGENT messages; got ${typeName(resolved)}: bots and notices need a service token`);
    }
    if (caller.role === 'service' && resolved !== MessageType.Bot && resolved !== MessageType.System) {
      throw denied(`a service token posts MESSAGE_TYPE_BOT or _SYSTEM messages; got ${typeName(resolved)}${unset}`);
    }
  }
  if (agentId && agentId !== caller.sub) {
    throw denied(`agent_id "${agentId}" is not the token's subject "${caller.sub}"; leave it empty or send your own id`);
  }
  return caller.sub;
}

/**
 * Refuses an event an agent may not post: an agent speaks for itself only, so it may say that it
 * joined, left or handed the chat over (participant_id its subject), and end the chat (as itself,
 * or nobody in particular). A service posts any event. A number that names no kind is left to
 * the store, which refuses it as an invalid argument.
 */
function requireOwnEvent(caller: Principal, event: ChatEvent): void {
  if (EventKind[event.kind] === undefined) return;
  const own = event.participantId === caller.sub || (event.kind === EventKind.Ended && event.participantId === '');
  if (!own) {
    throw denied(
      `an agent token posts events about itself only: event.participant_id "${event.participantId}" is not the token's subject "${caller.sub}"; ` +
        'events about others need a service token',
    );
  }
}

/**
 * Who a MarkRead or SetTyping speaks for: the token's subject (the request's id must be empty or
 * that subject), for any role that may touch the chat; on an insecure server, the request's id.
 */
export function participantOf(caller: Caller, chatId: string, requested: string, field: string): string {
  if (caller === INSECURE) return requested;
  requireChatAccess(caller, chatId);
  if (requested && requested !== caller.sub) {
    throw denied(`${field} "${requested}" is not the token's subject "${caller.sub}"; leave it empty`);
  }
  return caller.sub;
}

/** Refuses (PERMISSION_DENIED) any caller but a service: transcripts are for archiving backends. */
export function requireService(caller: Caller, what: string): void {
  if (caller === INSECURE || caller.role === 'service') return;
  throw denied(`${article(caller.role)} token cannot ${what}; it takes a service token`);
}

/**
 * The upload to merge for this caller. Every participant may rebuild a chat it may touch (the
 * clients are the durable store). The chat's visitor details are taken from the chat's visitor
 * (whose id must then be its subject, or empty: it becomes the subject) and from services;
 * an agent's upload carries the details the agent was told, which are no evidence, so they are
 * dropped and the rest of the upload is merged.
 */
export function authoriseUpload(caller: Caller, copy: ChatCopy): ChatCopy {
  if (caller === INSECURE) return copy;
  requireChatAccess(caller, copy.id);
  if (caller.role === 'agent') return copy.visitor ? { ...copy, visitor: undefined } : copy;
  if (caller.role === 'service' || !copy.visitor) return copy;
  if (copy.visitor.id && copy.visitor.id !== caller.sub) {
    throw denied(`the upload names visitor "${copy.visitor.id}", but the token's subject is visitor "${caller.sub}"; a visitor can only name itself`);
  }
  return { ...copy, visitor: { ...copy.visitor, id: caller.sub } };
}

function article(role: Role): string {
  return role === 'agent' ? 'an agent' : `a ${role}`;
}
