import * as wire from '../../generated/chat/v1/chat.js';
import type { ChatMethod, RequestOf, ResponseOf } from '../../src/client/transport.js';

/** A ts-proto message codec, as the generated code exports one per message. */
export interface Codec<T> {
  encode(message: T): { finish(): Uint8Array };
  decode(bytes: Uint8Array): T;
}

/**
 * Each method's request and response codecs. Every message goes through its protobuf encoding,
 * as on the wire, so a field the encoding would drop is dropped in the simulation too.
 */
export const CODECS: { readonly [M in ChatMethod]: readonly [Codec<RequestOf<M>>, Codec<ResponseOf<M>>] } = {
  addVisitorMessage: [wire.AddVisitorMessageRequest, wire.AddVisitorMessageResponse],
  addAgentMessage: [wire.AddAgentMessageRequest, wire.AddAgentMessageResponse],
  getNewMessage: [wire.GetNewMessageRequest, wire.GetNewMessageResponse],
  rebuild: [wire.RebuildRequest, wire.RebuildResponse],
};

/** `message` as the other end decodes it: encoded, then decoded again. */
export function overTheWire<T>(codec: Codec<T>, message: T): T {
  return codec.decode(codec.encode(message).finish());
}
