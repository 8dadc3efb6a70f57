import { Metadata, type ServiceError, type status } from '@grpc/grpc-js';
import { expect } from 'chai';
import {
  AddAgentMessageRequest,
  type AddAgentMessageResponse,
  AddVisitorMessageRequest,
  type AddVisitorMessageResponse,
  type ChatMessage,
  type ChatServiceClient,
  GetNewMessageRequest,
  type GetNewMessageResponse,
  AckTranscriptRequest,
  type AckTranscriptResponse,
  MarkReadRequest,
  type MarkReadResponse,
  RebuildRequest,
  type RebuildResponse,
  SetTypingRequest,
  type SetTypingResponse,
} from '../../generated/chat/v1/chat.js';

type Callback<Res> = (error: ServiceError | null, response: Res) => void;

/** A request with any field left out (it takes its protobuf default), nested messages too. */
export type Loose<T> = T extends Date ? T : T extends (infer E)[] ? Loose<E>[] : T extends object ? { [K in keyof T]?: Loose<T[K]> } : T;

function promised<Req, Res>(type: { fromPartial(object: Loose<Req>): Req }, method: (request: Req, callback: Callback<Res>) => unknown) {
  return (request: Loose<Req>) =>
    new Promise<Res>((resolve, reject) =>
      method(type.fromPartial(request), (error, response) => (error ? reject(error) : resolve(response))),
    );
}

/** The generated client's unary RPCs as promises, taking requests with defaults left out, each sent with `metadata` (none by default). */
export function chatApi(client: ChatServiceClient, metadata: Metadata = new Metadata()) {
  return {
    addVisitorMessage: promised<AddVisitorMessageRequest, AddVisitorMessageResponse>(AddVisitorMessageRequest as never, (r, cb) => client.addVisitorMessage(r, metadata, cb)),
    addAgentMessage: promised<AddAgentMessageRequest, AddAgentMessageResponse>(AddAgentMessageRequest as never, (r, cb) => client.addAgentMessage(r, metadata, cb)),
    getNewMessage: promised<GetNewMessageRequest, GetNewMessageResponse>(GetNewMessageRequest as never, (r, cb) => client.getNewMessage(r, metadata, cb)),
    rebuild: promised<RebuildRequest, RebuildResponse>(RebuildRequest as never, (r, cb) => client.rebuild(r, metadata, cb)),
    markRead: promised<MarkReadRequest, MarkReadResponse>(MarkReadRequest as never, (r, cb) => client.markRead(r, metadata, cb)),
    setTyping: promised<SetTypingRequest, SetTypingResponse>(SetTypingRequest as never, (r, cb) => client.setTyping(r, metadata, cb)),
    ackTranscript: promised<AckTranscriptRequest, AckTranscriptResponse>(AckTranscriptRequest as never, (r, cb) => client.ackTranscript(r, metadata, cb)),
  };
}

/** The metadata of a call with a bearer token. */
export function bearer(token: string): Metadata {
  const metadata = new Metadata();
  metadata.set('authorization', `Bearer ${token}`);
  return metadata;
}

export type ChatApi = ReturnType<typeof chatApi>;

/** Asserts that a call fails with exactly `code`, and returns the error for further checks. */
export async function expectStatus(call: Promise<unknown>, code: status): Promise<ServiceError> {
  const error = await call.then(
    (response) => expect.fail(`expected status ${code}, got a response: ${JSON.stringify(response)}`),
    (e: unknown) => e as ServiceError,
  );
  expect(error.code, error.details).to.equal(code);
  return error;
}

/**
 * Uploads `messages` into chat `chatId` in Rebuilds of `perPart` (each under the server's
 * default request limit for messages of about 1 KB), the way a test sets up a backlog.
 */
export async function rebuildInParts(api: ChatApi, chatId: string, messages: Loose<ChatMessage>[], perPart = 200): Promise<RebuildResponse> {
  let answer: RebuildResponse | undefined;
  for (let i = 0; i < messages.length || answer === undefined; i += perPart) {
    answer = await api.rebuild({ chat: { id: chatId, messages: messages.slice(i, i + perPart) } });
  }
  return answer;
}
