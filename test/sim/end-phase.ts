import { status } from '@grpc/grpc-js';
import { type ChatEvent, EventKind, MessageType } from '../../generated/chat/v1/chat.js';
import { ChatSdkError } from '../../src/client/errors.js';
import { ChatError } from '../../src/domain/errors.js';
import { CHAT_ID, principalOf, ROLES } from './cast.js';
import { check, finalBound, fingerprint, MAX_FINAL_ROUNDS } from './final-phase.js';
import { SimulationFailure } from './invariants.js';
import type { SimServer } from './sim-server.js';
import type { Simulation } from './simulation.js';

/** The end every run closes with. */
export const ENDED: ChatEvent = { kind: EventKind.EVENT_KIND_ENDED, participantId: '', toParticipantId: '', reason: 'resolved' };

/**
 * A message acknowledged by a server that has not heard of the end: another server is given
 * the final server's chat as it is before the end (a whole copy), and agent-1 sends there, at
 * the wire level. Its chat is uploaded to the final server after the end (endPhase); the late
 * message must be kept and reach every device (invariant 1: it was acknowledged).
 */
function acknowledgeElsewhere(simulation: Simulation): { server: SimServer; id: string } {
  const finalServer = simulation.schedule.finalServer;
  const server = simulation.servers[(finalServer + 1) % simulation.servers.length]!;
  server.handle('rebuild', { chat: { ...simulation.servers[finalServer]!.audit(CHAT_ID).chat!, epoch: '' } });
  const chat = server.audit(CHAT_ID).chat!;
  const agent = simulation.devices[ROLES.findIndex((r) => r.type === MessageType.MESSAGE_TYPE_AGENT)]!;
  const id = `${agent.name}-late`;
  const content = `late message from ${agent.name}`;
  const senderId = ROLES[agent.index]!.senderId;
  const answer = server.handle(
    'addAgentMessage',
    {
      chatId: CHAT_ID,
      agentId: senderId,
      visitorOffset: chat.visitorDataOffset,
      agentOffset: chat.agentDataOffset,
      message: { id, content, messageType: MessageType.MESSAGE_TYPE_AGENT, dataOffset: 0, senderId: '', attachments: [] },
      epoch: chat.epoch,
    },
    principalOf(agent.name),
  );
  if (answer.message?.id !== id) throw new SimulationFailure('end', `${server.name} did not store ${id}: ${JSON.stringify(answer)}`);
  simulation.acknowledged.set(id, `${agent.name} (by ${server.name}, before the end)`);
  simulation.sentAs.set(id, { content, type: MessageType.MESSAGE_TYPE_AGENT, senderId });
  return { server, id };
}

/** Most deliveries an SDK send after the end may take to be refused. */
const REFUSAL_DELIVERIES = 200;

/**
 * After the final phase (failures stopped, everyone converged, liveness shown): another server
 * acknowledges a late message before it hears of the end (acknowledgeElsewhere); the notices
 * device ends the chat (a SYSTEM message carrying ENDED, through the SDK's send with the event
 * added on the wire), and the late message's server is rebuilt into the final one. Then rounds of syncs until nothing changes (invariant 6's bound again),
 * and invariants 1-5 with events and derived participants once more: the end is a message like
 * any other, every copy holds it, and nothing acknowledged before it was lost, duplicated or
 * reordered. Then, on the final server: every read says `ended`; a new send is refused
 * FAILED_PRECONDITION, on the wire and through the SDK (whose outbox drops it); and a resend of
 * the end's id returns the stored end unchanged. Read positions (read-marks.ts) are checked
 * before and after the end. Returns the calls the phase took.
 */
export async function endPhase(simulation: Simulation): Promise<number> {
  const callsBefore = simulation.network.calls;
  const bound = finalBound(simulation);
  const progress = (what: string) =>
    new SimulationFailure('invariant 6 (progress, after the end)', `${what} after ${simulation.network.calls - callsBefore} calls since the end was sent (bound ${bound})`);
  const notices = simulation.devices[ROLES.findIndex((r) => r.type === MessageType.MESSAGE_TYPE_SYSTEM)]!;
  const final = simulation.servers[simulation.schedule.finalServer]!;
  const late = acknowledgeElsewhere(simulation);
  const { id: endId, op } = simulation.sendLast(notices, new AbortController().signal, ENDED);
  await simulation.deliver(bound, () => op.settled);
  if (!op.settled) throw progress(`the end ${endId} was not acknowledged`);
  // The server that acknowledged the late message is rebuilt into the final one: never refused for coming after the end.
  try {
    final.handle('rebuild', { chat: { ...late.server.audit(CHAT_ID).chat!, epoch: '' } });
  } catch (error) {
    throw new SimulationFailure('end', `uploading ${late.server.name}'s copy (with ${late.id}, acknowledged before it heard of the end) to ${final.name} was refused: ${String(error)}`);
  }

  let rounds = 0;
  for (let previous = ''; ; ) {
    rounds += 1;
    if (rounds > MAX_FINAL_ROUNDS) throw progress(`still changing after ${MAX_FINAL_ROUNDS} rounds of syncs`);
    const syncs = simulation.devices.map((d) => simulation.track(d, 'sync after the end', d.session.sync()));
    await simulation.deliver(bound, () => syncs.every((s) => s.settled));
    if (!syncs.every((s) => s.settled)) throw progress('a sync did not finish');
    const now = fingerprint(simulation);
    if (now === previous) break;
    previous = now;
  }
  check(simulation);
  simulation.reads.check(simulation);

  const server = final;
  if (!server.audit(CHAT_ID).chat!.messages.some((m) => m.id === late.id)) throw new SimulationFailure('end', `${server.name} dropped ${late.id}, uploaded after the end`);
  const audit = server.audit(CHAT_ID).chat!;
  const stored = audit.messages.find((m) => m.id === endId);
  if (stored?.event?.kind !== EventKind.EVENT_KIND_ENDED) throw new SimulationFailure('end', `server ${server.name} does not hold the end ${endId} as an ENDED event`);
  const pages = server.read(CHAT_ID);
  if (!pages.every((page) => page.ended)) throw new SimulationFailure('end', `a read of server ${server.name} after the end does not say ended`);

  // A new send on the wire: refused FAILED_PRECONDITION, nothing stored.
  const visitor = simulation.devices[0]!;
  const tooLate = { id: `${visitor.name}-after-end`, content: 'too late', messageType: MessageType.MESSAGE_TYPE_VISITOR, dataOffset: 0, senderId: ROLES[0]!.senderId, attachments: [] };
  try {
    server.handle(
      'addVisitorMessage',
      { chatId: CHAT_ID, visitorOffset: audit.visitorDataOffset, agentOffset: audit.agentDataOffset, message: tooLate, epoch: audit.epoch },
      principalOf(visitor.name),
    );
    throw new SimulationFailure('end', `server ${server.name} stored ${tooLate.id}, sent after the end`);
  } catch (error) {
    if (!(error instanceof ChatError) || error.kind !== 'failed-precondition') {
      if (error instanceof SimulationFailure) throw error;
      throw new SimulationFailure('end', `a send after the end was answered ${String(error)}, not FAILED_PRECONDITION`);
    }
  }

  // The end's id sent again: the stored end comes back, where it is.
  const again = server.handle(
    'addAgentMessage',
    {
      chatId: CHAT_ID,
      agentId: ROLES[notices.index]!.senderId,
      visitorOffset: audit.visitorDataOffset,
      agentOffset: audit.agentDataOffset,
      message: { id: endId, content: stored.content, messageType: MessageType.MESSAGE_TYPE_SYSTEM, dataOffset: 0, senderId: '', event: ENDED, attachments: [] },
      epoch: audit.epoch,
    },
    principalOf(notices.name),
  );
  if (again.message?.id !== endId || again.message.dataOffset !== stored.dataOffset) {
    throw new SimulationFailure('end', `resending the end ${endId} answered ${JSON.stringify(again.message)}, not the stored end at ${stored.dataOffset}`);
  }

  // Through the SDK: the send is refused for good (the outbox drops it), not retried forever.
  const refused = visitor.session.send('too late, through the SDK', { id: `${visitor.name}-sdk-after-end` });
  let outcome: unknown = 'pending';
  refused.then(
    () => (outcome = 'stored'),
    (error: unknown) => (outcome = error),
  );
  await simulation.deliver(REFUSAL_DELIVERIES, () => outcome !== 'pending');
  if (!(outcome instanceof ChatSdkError && outcome.kind === 'rejected' && outcome.code === status.FAILED_PRECONDITION)) {
    throw new SimulationFailure('end', `an SDK send after the end came to ${outcome instanceof Error ? `${outcome.name} ${outcome.message}` : String(outcome)}, not a FAILED_PRECONDITION refusal`);
  }
  check(simulation);
  simulation.reads.check(simulation); // the end changes no read position
  return simulation.network.calls - callsBefore;
}
