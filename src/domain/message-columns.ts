import { type Extras, extrasOf, type Message, type MessageType } from './message.js';

/** Senders one column set names by a linear search; past this many it builds a map. */
const SCANNED_SENDERS = 8;
/** The low bits of a packed sender-and-type cell that hold the type (MessageType is 1 to 4). */
const TYPE_BITS = 3;
const TYPE_MASK = (1 << TYPE_BITS) - 1;

/**
 * Messages at the consecutive indices 0..length-1, held as columns rather than as one object
 * each: one array of strings (each message's id and content), one of numbers (its send time in
 * milliseconds and its type packed with an index into the distinct senders; V8 keeps them as
 * unboxed doubles), and the seals apart, only once there is one. A sender id is held once
 * however many messages name it, so a message costs its strings and about 32 bytes of columns.
 * Plain arrays rather than typed ones: V8 keeps a typed array's objects apart from its data, a
 * few hundred bytes a column that a chat of few messages would feel. A message read back is a
 * new object with these values.
 */
export class MessageColumns {
  /** Message i's id at 2i, its content at 2i + 1. */
  private readonly strings: string[] = [];
  /** Absent until a sealed message arrives; then holes (undefined) for the unsealed ones. */
  private seals: (string | undefined)[] | undefined;
  /** Absent until a message with an event or attachments arrives; then holes for the others. */
  private extras: (Extras | undefined)[] | undefined;
  /** Message i's send time at 2i, its sender index times 8 plus its type at 2i + 1. */
  private readonly numbers: number[] = [];
  private readonly senders: string[] = [];
  private senderIndex: Map<string, number> | undefined;

  get length(): number {
    return this.strings.length >>> 1;
  }

  /** Appends `message` at index `length`; its offset is not kept (the caller knows it). */
  push(message: Message): void {
    const index = this.length;
    if (!(message.type >= 0 && message.type <= TYPE_MASK)) throw new RangeError(`message "${message.id}" has type ${message.type}, not a MessageType`);
    this.strings.push(message.id, message.content);
    this.numbers.push(message.sendTime.getTime(), this.sender(message.senderId) * (TYPE_MASK + 1) + message.type);
    if (message.seal !== undefined) (this.seals ??= [])[index] = message.seal;
    else if (this.seals) this.seals[index] = undefined;
    if (message.event !== undefined || message.attachments !== undefined) (this.extras ??= [])[index] = extrasOf(message);
    else if (this.extras) this.extras[index] = undefined;
  }

  /** The message at `index`, with `dataOffset` as its offset; undefined past the end. */
  message(index: number, dataOffset: number): Message | undefined {
    if (index < 0 || index >= this.length) return undefined;
    const packed = this.numbers[2 * index + 1]!;
    const seal = this.seals?.[index];
    const id = this.strings[2 * index]!;
    const content = this.strings[2 * index + 1]!;
    const type = (packed & TYPE_MASK) as MessageType;
    const sendTime = new Date(this.numbers[2 * index]!);
    const senderId = this.senders[Math.floor(packed / (TYPE_MASK + 1))]!;
    // Two literal shapes rather than a spread: a sealed server reads every message back sealed.
    const message: Message = seal === undefined ? { id, dataOffset, content, type, sendTime, senderId } : { id, dataOffset, content, type, sendTime, senderId, seal };
    const extras = this.extras?.[index];
    return extras === undefined ? message : { ...message, ...extras };
  }

  /** The index of `senderId` among the distinct senders, added when new. */
  private sender(senderId: string): number {
    const { senders } = this;
    if (this.senderIndex) {
      const known = this.senderIndex.get(senderId);
      if (known !== undefined) return known;
    } else {
      const known = senders.indexOf(senderId);
      if (known >= 0) return known;
    }
    senders.push(senderId);
    if (this.senderIndex) this.senderIndex.set(senderId, senders.length - 1);
    else if (senders.length > SCANNED_SENDERS) this.senderIndex = new Map(senders.map((id, i) => [id, i]));
    return senders.length - 1;
  }
}
