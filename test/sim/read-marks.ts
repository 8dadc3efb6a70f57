import * as wire from '../../generated/chat/v1/chat.js';
import { ChatError } from '../../src/domain/errors.js';
import { furtherThan } from '../../src/domain/read-positions.js';
import { CHAT_ID, type Device, principalOf } from './cast.js';
import { SimulationFailure } from './invariants.js';
import type { SimServer } from './sim-server.js';
import type { Simulation } from './simulation.js';

type Ranked = Pick<wire.ChatMessage, 'id' | 'sendTime'>;
const rank = (m: Ranked) => ({ id: m.id, sendTime: m.sendTime ?? new Date(0) });
const further = (a: Ranked, b: Ranked) => furtherThan(rank(a), rank(b));

/**
 * Read positions in the simulation, at the wire level (the SDK has no MarkRead, and does not
 * upload positions in its Rebuild yet). After each of its syncs a device marks read the last
 * message of its copy on the server it is routed to (straight to that server's handler, no
 * network faults), and keeps, as a Replica-like client would, the furthest position of its
 * reader any server acknowledged (sealed). Positions are durable only while some client holds
 * them, so what is checked is: (1) within one incarnation of a server's chat no answer moves a
 * reader back; (2) once every device has uploaded the positions it holds in a Rebuild (a whole
 * copy of no messages, with read_positions) to the final server, that server's position of each
 * reader is exactly the furthest any server ever acknowledged to that reader, ranked by the final
 * server's own messages, and every read of it carries the same positions. (By the final server's
 * messages: one id can carry different send times on two servers, when a resend reached a second
 * server after the first stored it, so "furthest" is a property of the server that ranks.)
 */
export class ReadMarks {
  /** Per reader: every position acknowledged to it, by message id, and which device holds it. */
  private readonly held = new Map<string, Map<string, { position: wire.ReadPosition; device: Device }>>();
  /** Per server, incarnation and chat epoch: each reader's position in the last answer. */
  private readonly answered = new Map<string, Map<string, Ranked>>();
  marks = 0;

  /** The device marks read the last message it holds, on the server it is routed to. */
  mark(simulation: Simulation, device: Device): void {
    const server = simulation.servers.find((s) => s.name === device.transport.address)!;
    const last = device.session.messages.at(-1);
    if (!server.isUp || !last) return;
    let answer: wire.MarkReadResponse;
    try {
      answer = server.markRead({ chatId: CHAT_ID, readerId: '', messageId: last.id, epoch: '' }, principalOf(device.name));
    } catch (error) {
      if (error instanceof ChatError && error.kind === 'not-found') return; // this server does not hold it (yet)
      throw new SimulationFailure('read positions', `${device.name}'s MarkRead of ${last.id} on ${server.name} failed: ${String(error)}`);
    }
    if (answer.code === wire.ResultCode.RESULT_CODE_REBUILD_REQUIRED) return;
    this.marks += 1;
    const byId = new Map(server.audit(CHAT_ID).chat!.messages.map((m) => [m.id, m]));
    const key = `${server.name}#${server.incarnation}#${answer.epoch}`;
    const before = this.answered.get(key) ?? new Map<string, Ranked>();
    const now = new Map<string, Ranked>();
    for (const p of answer.readPositions) {
      const message = byId.get(p.messageId);
      if (!message) throw new SimulationFailure('read positions', `${server.name} answers a position of ${p.readerId} at ${p.messageId}, which it does not hold`);
      const was = before.get(p.readerId);
      if (was && further(was, message)) {
        throw new SimulationFailure('read positions (monotone)', `${server.name} moved ${p.readerId} back from ${was.id} to ${p.messageId}`);
      }
      now.set(p.readerId, message);
    }
    for (const [reader, was] of before) {
      if (!now.has(reader)) throw new SimulationFailure('read positions (monotone)', `${server.name} lost ${reader}'s position at ${was.id} within one chat epoch`);
    }
    this.answered.set(key, now);
    const reader = principalOf(device.name).sub;
    const own = answer.readPositions.find((p) => p.readerId === reader);
    if (!own) throw new SimulationFailure('read positions', `${server.name} acknowledged ${device.name}'s MarkRead without a position of ${reader}`);
    let kept = this.held.get(reader);
    if (!kept) this.held.set(reader, (kept = new Map()));
    if (!kept.has(own.messageId)) kept.set(own.messageId, { position: own, device });
  }

  /** Every holder uploads its positions to the final server; then each reader is at its furthest. */
  check(simulation: Simulation): void {
    const server = simulation.servers[simulation.schedule.finalServer]!;
    for (const { position, device } of [...this.held.values()].flatMap((positions) => [...positions.values()])) {
      const chat = { id: CHAT_ID, visitorDataOffset: 0, agentDataOffset: 0, messages: [], visitor: undefined, beginTime: undefined, epoch: '', readPositions: [position] };
      try {
        server.handle('rebuild', { chat }, principalOf(device.name));
      } catch (error) {
        throw new SimulationFailure('read positions', `${device.name}'s upload of ${position.readerId} at ${position.messageId} to ${server.name} was refused: ${String(error)}`);
      }
    }
    const audit = server.audit(CHAT_ID).chat!;
    const byId = new Map(audit.messages.map((m) => [m.id, m]));
    const wanted = [...this.held]
      .map(([reader, positions]) => {
        let furthest: Ranked | undefined;
        for (const messageId of positions.keys()) {
          const message = byId.get(messageId);
          if (!message) throw new SimulationFailure('read positions', `${server.name} lacks ${messageId}, which ${reader} was acknowledged reading`);
          if (!furthest || further(message, furthest)) furthest = message;
        }
        return `${reader}@${furthest!.id}`;
      })
      .sort()
      .join(', ');
    this.expect(server, 'after the uploads', audit.readPositions, wanted);
    for (const page of server.read(CHAT_ID)) this.expect(server, 'in a read', page.readPositions, wanted);
  }

  private expect(server: SimServer, where: string, positions: readonly wire.ReadPosition[], wanted: string): void {
    const actual = [...positions].map((p) => `${p.readerId}@${p.messageId}`).sort().join(', ');
    if (actual !== wanted) {
      throw new SimulationFailure('read positions (furthest kept)', `${server.name} ${where} holds [${actual}]; the furthest acknowledged are [${wanted}]`);
    }
  }
}
