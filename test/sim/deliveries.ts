import { Metadata, type ServiceError, status } from '@grpc/grpc-js';
import * as wire from '../../generated/chat/v1/chat.js';
import type { ChatMethod } from '../../src/client/transport.js';
import type { SimServer } from './sim-server.js';
import type { SimStream } from './watch-stream.js';

/** A unary call in flight: the server and incarnation it was sent to, and who waits for it. */
export interface Call {
  readonly kind: 'call';
  readonly client: string;
  readonly server: SimServer;
  readonly incarnation: number;
  readonly method: ChatMethod;
  readonly request: unknown;
  /** Absent for a duplicate: nobody waits for its answer. */
  readonly reply?: { resolve(response: unknown): void; reject(error: Error): void; detach(): void };
}

/** A stream's events: its opening, one pushed response, or its end (OK, or broken). */
export type StreamEvent =
  | { readonly kind: 'open'; readonly stream: SimStream }
  | { readonly kind: 'push'; readonly stream: SimStream; readonly response: wire.WatchChatResponse; readonly last: boolean }
  | { readonly kind: 'end'; readonly stream: SimStream; readonly error?: ServiceError };

/** Everything the network holds until the simulation delivers it. */
export type Delivery = Call | StreamEvent;

/** An error shaped like the one grpc-js gives a client. */
export function serviceError(code: status, details: string): ServiceError {
  return Object.assign(new Error(`${code} ${status[code]}: ${details}`), { code, details, metadata: new Metadata() });
}

/** One line of trace for a response: its code, offsets, epoch and the messages it carries. */
export function describeResponse(response: unknown): string {
  const r = response as Partial<wire.GetNewMessageResponse & wire.AddVisitorMessageResponse & wire.RebuildResponse>;
  const chat = r.chat;
  const offsets = chat ? `${chat.visitorDataOffset}/${chat.agentDataOffset}` : `${r.visitorDataOffset}/${r.agentDataOffset}`;
  const code = r.code === wire.ResultCode.RESULT_CODE_REBUILD_REQUIRED ? 'REBUILD_REQUIRED' : 'OK';
  const messages = chat?.messages ?? r.messages ?? (r.message ? [r.message] : []);
  const listed = messages.map((m) => `${m.id}@${m.dataOffset}`).join(' ');
  return `${code} ${offsets} epoch ${chat?.epoch ?? r.epoch ?? ''}${listed ? ` [${listed}]` : ''}${r.truncated ? ' truncated' : ''}`;
}
