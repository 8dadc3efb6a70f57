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
 * reader is exactly the furthest any server ever acknowledged to that reader, and every read
 * of it carries the same positions.
 */
export class ReadMarks {
  /** Per reader: the furthest acknowledged position, and which device holds it. */
  private readonly held = new Map<string, { position: wire.ReadPosition; message: Ranked; device: Device }>();
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
    const kept = this.held.get(reader);
    const message = byId.get(own.messageId)!;
    if (!kept || further(message, kept.message)) this.held.set(reader, { position: own, message, device });
  }

  /** Every holder uploads its positions to the final server; then each reader is at its furthest. */
  check(simulation: Simulation): void {
    const server = simulation.servers[simulation.schedule.finalServer]!;
    for (const { position, device } of this.held.values()) {
      const chat = { id: CHAT_ID, visitorDataOffset: 0, agentDataOffset: 0, messages: [], visitor: undefined, beginTime: undefined, epoch: '', readPositions: [position] };
      try {
        server.handle('rebuild', { chat }, principalOf(device.name));
      } catch (error) {
        throw new SimulationFailure('read positions', `${device.name}'s upload of ${position.readerId} at ${position.messageId} to ${server.name} was refused: ${String(error)}`);
      }
    }
    this.expect(server, 'after the uploads', server.audit(CHAT_ID).chat!.readPositions);
    for (const page of server.read(CHAT_ID)) this.expect(server, 'in a read', page.readPositions);
  }

  private expect(server: SimServer, where: string, positions: readonly wire.ReadPosition[]): void {
    const actual = [...positions].map((p) => `${p.readerId}@${p.messageId}`).sort().join(', ');
    const wanted = [...this.held].map(([reader, { position }]) => `${reader}@${position.messageId}`).sort().join(', ');
    if (actual !== wanted) {
      throw new SimulationFailure('read positions (furthest kept)', `${server.name} ${where} holds [${actual}]; the furthest acknowledged are [${wanted}]`);
    }
  }
}
