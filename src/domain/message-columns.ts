import type { Message, MessageType } from './message.js';

/** Senders one column set names by a linear search; past this many it builds a map. */
const SCANNED_SENDERS = 8;
/** The low bits of a packed sender-and-type cell that hold the type (MessageType is 1 to 4). */
const TYPE_BITS = 3;
const TYPE_MASK = (1 << TYPE_BITS) - 1;

/**
 * Messages at the consecutive indices 0..length-1, held as columns rather than as one object
 * each: the id, content and seal strings in arrays, the send time as milliseconds in a
 * Float64Array, and the type packed with an index into the distinct senders in a Uint32Array.
 * A sender id is held once however many messages name it, so a message costs its strings and
 * about 28 bytes of columns. A message read back is a new object with these values.
 */
export class MessageColumns {
  private readonly ids: string[] = [];
  private readonly contents: string[] = [];
  /** Absent until a sealed message arrives; then holes (undefined) for the unsealed ones. */
  private seals: (string | undefined)[] | undefined;
  private times = new Float64Array(4);
  private senderAndType = new Uint32Array(4);
  private readonly senders: string[] = [];
  private senderIndex: Map<string, number> | undefined;

  get length(): number {
    return this.ids.length;
  }

  /** Appends `message` at index `length`; its offset is not kept (the caller knows it). */
  push(message: Message): void {
    const index = this.ids.length;
    if (!(message.type >= 0 && message.type <= TYPE_MASK)) throw new RangeError(`message "${message.id}" has type ${message.type}, not a MessageType`);
    if (index === this.times.length) this.grow();
    this.ids.push(message.id);
    this.contents.push(message.content);
    this.times[index] = message.sendTime.getTime();
    this.senderAndType[index] = (this.sender(message.senderId) << TYPE_BITS) | message.type;
    if (message.seal !== undefined) (this.seals ??= [])[index] = message.seal;
    else if (this.seals) this.seals[index] = undefined;
  }

  /** The message at `index`, with `dataOffset` as its offset; undefined past the end. */
  message(index: number, dataOffset: number): Message | undefined {
    if (index < 0 || index >= this.ids.length) return undefined;
    const packed = this.senderAndType[index]!;
    const seal = this.seals?.[index];
    const message = {
      id: this.ids[index]!,
      dataOffset,
      content: this.contents[index]!,
      type: (packed & TYPE_MASK) as MessageType,
      sendTime: new Date(this.times[index]!),
      senderId: this.senders[packed >>> TYPE_BITS]!,
    };
    return seal === undefined ? message : { ...message, seal };
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

  /** Doubles the typed columns' capacity (by half once they are large). */
  private grow(): void {
    const capacity = this.times.length;
    const next = capacity < 4096 ? capacity * 2 : capacity + (capacity >>> 1);
    const times = new Float64Array(next);
    times.set(this.times);
    this.times = times;
    const senderAndType = new Uint32Array(next);
    senderAndType.set(this.senderAndType);
    this.senderAndType = senderAndType;
  }
}
