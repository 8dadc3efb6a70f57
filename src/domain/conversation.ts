import { type Attachment, EventKind, type Message } from './message.js';

/** An event's strings, as the server's messages and the SDK's copies (the wire's types) both hold them. */
interface EventStrings {
  readonly participantId: string;
  readonly toParticipantId: string;
  readonly reason: string;
}

/** What ordering and sizing look at: shared by the server's messages and the SDK's copies. */
type Sized = Pick<Message, 'id' | 'content' | 'senderId'> & {
  readonly seal?: string | undefined;
  readonly event?: EventStrings | undefined;
  readonly attachments?: readonly Attachment[] | undefined;
};
type Timed = Sized & { readonly sendTime?: Date | undefined };

/**
 * Conservative size of a message on the wire: its strings' UTF-8 bytes plus a fixed allowance
 * for field tags, lengths, the offset, the type and the timestamp (at most about 40 bytes); a
 * seal (ASCII) adds its length and 2 for its tag and length.
 */
export function wireBytes(message: Sized): number {
  return (
    Buffer.byteLength(message.id) +
    Buffer.byteLength(message.content) +
    Buffer.byteLength(message.senderId) +
    48 +
    (message.seal ? message.seal.length + 2 : 0) +
    extrasBytes(message)
  );
}

/** An event's and attachments' share of {@link wireBytes}: 0 for a message with neither. */
function extrasBytes({ event, attachments }: Sized): number {
  let bytes = 0;
  if (event) bytes += Buffer.byteLength(event.participantId) + Buffer.byteLength(event.toParticipantId) + Buffer.byteLength(event.reason) + 16;
  if (attachments) for (const attachment of attachments) bytes += attachmentBytes(attachment);
  return bytes;
}

/** A page of messages in conversation order. */
export interface Page<T extends Timed = Message> {
  readonly messages: T[];
  /** True when the budget cut the page short. */
  readonly truncated: boolean;
}

/**
 * Interleaves the two sides into conversation order (by send time; on a tie the visitor's
 * message first) and keeps the longest prefix whose wire size fits the budget, but never
 * less than one message. Each side is consumed in its own offset order, so whatever is
 * returned continues each side without a gap. Costs O(k) for k messages returned.
 *
 * @param visitor reads the visitor side's i-th candidate (0-based), undefined past the end
 * @param agent reads the agent side's i-th candidate
 */
export function interleave<T extends Timed>(
  visitor: (index: number) => T | undefined,
  agent: (index: number) => T | undefined,
  budgetBytes = Number.POSITIVE_INFINITY,
): Page<T> {
  const messages: T[] = [];
  let used = 0;
  let v = 0;
  let a = 0;
  for (;;) {
    const nextVisitor = visitor(v);
    const nextAgent = agent(a);
    if (!nextVisitor && !nextAgent) return { messages, truncated: false };
    const takeVisitor =
      nextVisitor !== undefined &&
      (nextAgent === undefined || timeOf(nextVisitor) <= timeOf(nextAgent));
    const next = takeVisitor ? nextVisitor : nextAgent!;
    used += wireBytes(next);
    if (used > budgetBytes && messages.length > 0) return { messages, truncated: true };
    messages.push(next);
    if (takeVisitor) v += 1;
    else a += 1;
  }
}

function timeOf(message: Timed): number {
  return message.sendTime?.getTime() ?? 0;
}

/** The UTF-8 bytes an attachment's strings take, plus room for its tags and size. */
export function attachmentBytes(attachment: Attachment): number {
  return (
    Buffer.byteLength(attachment.uri) + Buffer.byteLength(attachment.mediaType) + attachment.sha256.length + Buffer.byteLength(attachment.name) + 24
  );
}

/**
 * The chat's participants on the agent side, derived from its events in conversation order: a
 * join adds one, a leave removes one, a transfer replaces the one handing over with the one taking
 * over. Events are the history's, so every copy that holds the same messages derives the same set.
 * In the order each (last) joined.
 */
export function participantsOf(messages: Iterable<Pick<Message, 'event'>>): string[] {
  const present = new Set<string>();
  for (const { event } of messages) {
    if (!event) continue;
    if (event.kind === EventKind.Joined) {
      present.delete(event.participantId);
      present.add(event.participantId);
    } else if (event.kind === EventKind.Left) present.delete(event.participantId);
    else if (event.kind === EventKind.Transferred) {
      present.delete(event.participantId);
      present.delete(event.toParticipantId);
      present.add(event.toParticipantId);
    }
  }
  return [...present];
}

/**
 * Whether `a` lies further in the conversation than `b`: by send time, then by id, as the one
 * ranking holds them. Within a server's incarnation no held message changes (nor, so, its send
 * time), so "keep the furthest" is a maximum over one fixed total order there: it commutes, it
 * is idempotent, and merges in any order and grouping reach the same positions. (Two servers
 * may hold one id with two send times, a resend stamped anew: the ranking is the server's, and
 * after convergence everyone's is the home's; docs/protocol.md.)
 */
export function furtherThan(a: { readonly sendTime: Date; readonly id: string }, b: { readonly sendTime: Date; readonly id: string }): boolean {
  const at = a.sendTime.getTime();
  const bt = b.sendTime.getTime();
  return at > bt || (at === bt && a.id > b.id);
}
