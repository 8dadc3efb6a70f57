import { invalid } from './errors.js';
import { type ChatEvent, EventKind, type Message, MessageType } from './message.js';
import { checkLength } from './validate.js';

/** Longest reason an event may give, in UTF-8 bytes. */
export const MAX_EVENT_REASON_BYTES = 1024;

/**
 * Checks an event a message carries: a known kind, on a SYSTEM message, with the ids its kind
 * needs (each at most `maxIdBytes`). Field names are relative to the message.
 */
export function requireEvent(event: ChatEvent, type: MessageType, maxIdBytes: number): void {
  if (type !== MessageType.System) throw invalid('event is allowed on MESSAGE_TYPE_SYSTEM messages only');
  const { kind, participantId, toParticipantId, reason } = event;
  if (EventKind[kind] === undefined) {
    throw invalid(`event.kind must be EVENT_KIND_JOINED (1), _LEFT (2), _TRANSFERRED (3) or _ENDED (4); got ${kind}`);
  }
  checkLength('event.participant_id', participantId, maxIdBytes);
  checkLength('event.to_participant_id', toParticipantId, maxIdBytes);
  checkLength('event.reason', reason, MAX_EVENT_REASON_BYTES);
  if (kind !== EventKind.Ended && participantId === '') throw invalid(`event.participant_id is required for ${eventName(kind)}: who ${verb(kind)}`);
  if (kind === EventKind.Transferred) {
    if (toParticipantId === '') throw invalid('event.to_participant_id is required for EVENT_KIND_TRANSFERRED: who takes the chat over');
    if (toParticipantId === participantId) throw invalid(`event.to_participant_id "${toParticipantId}" is the participant handing over; a transfer goes to someone else`);
  } else if (toParticipantId !== '') {
    throw invalid(`event.to_participant_id is for EVENT_KIND_TRANSFERRED only; leave it empty for ${eventName(kind)}`);
  }
}

/** The wire name of an event kind, for messages. */
export function eventName(kind: EventKind): string {
  return EventKind[kind] ? `EVENT_KIND_${EventKind[kind]!.toUpperCase()}` : String(kind);
}

function verb(kind: EventKind): string {
  return kind === EventKind.Joined ? 'joined' : kind === EventKind.Left ? 'left' : 'hands the chat over';
}

/** Whether a message is an end of its chat. */
export function isEnd(message: Pick<Message, 'event'>): boolean {
  return message.event?.kind === EventKind.Ended;
}

// Kept in conversation.ts, which the client SDK ships without this module's validation.
export { participantsOf } from './conversation.js';
