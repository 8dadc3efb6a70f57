import type { ServiceError, status } from '@grpc/grpc-js';
import { expect } from 'chai';
import type {
  AddAgentMessageRequest,
  AddAgentMessageResponse,
  AddVisitorMessageRequest,
  AddVisitorMessageResponse,
  ChatServiceClient,
  GetNewMessageRequest,
  GetNewMessageResponse,
  RebuildRequest,
  RebuildResponse,
} from '../../generated/chat/v1/chat.js';

type Callback<Res> = (error: ServiceError | null, response: Res) => void;

function promised<Req, Res>(method: (request: Req, callback: Callback<Res>) => unknown) {
  return (request: Req) =>
    new Promise<Res>((resolve, reject) => method(request, (error, response) => (error ? reject(error) : resolve(response))));
}

/** The generated client's four RPCs as promises. */
export function chatApi(client: ChatServiceClient) {
  return {
    addVisitorMessage: promised<AddVisitorMessageRequest, AddVisitorMessageResponse>((r, cb) => client.addVisitorMessage(r, cb)),
    addAgentMessage: promised<AddAgentMessageRequest, AddAgentMessageResponse>((r, cb) => client.addAgentMessage(r, cb)),
    getNewMessage: promised<GetNewMessageRequest, GetNewMessageResponse>((r, cb) => client.getNewMessage(r, cb)),
    rebuild: promised<RebuildRequest, RebuildResponse>((r, cb) => client.rebuild(r, cb)),
  };
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
