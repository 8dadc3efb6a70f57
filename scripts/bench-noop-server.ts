/**
 * The floor of `npm run bench`'s throughput figures (scripts/bench-throughput.ts starts it as a
 * process of its own): the generated chat.v1.ChatService on grpc-js, whose handlers do no chat
 * work. Each decodes its request (the generated deserializer), builds an answer of the same
 * shape and size as the real server's, and encodes it (the generated serializer). So the real
 * server's figure over this one is what the chat work costs. A Rebuild is answered as the real
 * server answers a whole copy into a chat it lacks: the chat holding the upload's messages (its
 * offsets the upload's highest per side), a begin time and an epoch. It prints its port on stdout.
 */
import { randomUUID } from 'node:crypto';
import { type sendUnaryData, Server, ServerCredentials, type ServerUnaryCall } from '@grpc/grpc-js';
import {
  type AddAgentMessageRequest,
  type AddAgentMessageResponse,
  type AddVisitorMessageRequest,
  type AddVisitorMessageResponse,
  type ChatMessage,
  ChatServiceService,
  type GetNewMessageRequest,
  type GetNewMessageResponse,
  MessageType,
  type RebuildRequest,
  type RebuildResponse,
  ResultCode,
} from '../generated/chat/v1/chat.js';

/** How many messages a read answers with: the bench reads 10 new messages. */
const READ_MESSAGES = Number(process.env.NOOP_READ_MESSAGES ?? 10);
const EPOCH = randomUUID();
const CONTENT = 'x'.repeat(100);

type Unary<Req, Res> = (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void;

/** The stored message a send's answer carries: the request's, stamped as the server would. */
function stored(message: ChatMessage | undefined, type: MessageType, senderId: string): ChatMessage {
  return { id: message?.id ?? '', dataOffset: 1, content: message?.content ?? '', messageType: type, sendTime: new Date(), senderId, attachments: [] };
}

const addVisitorMessage: Unary<AddVisitorMessageRequest, AddVisitorMessageResponse> = (call, callback) =>
  callback(null, { code: ResultCode.RESULT_CODE_OK, visitorDataOffset: 1, agentDataOffset: 0, message: stored(call.request.message, MessageType.MESSAGE_TYPE_VISITOR, 'visitor-1'), epoch: EPOCH });

const addAgentMessage: Unary<AddAgentMessageRequest, AddAgentMessageResponse> = (call, callback) =>
  callback(null, { code: ResultCode.RESULT_CODE_OK, visitorDataOffset: 0, agentDataOffset: 1, message: stored(call.request.message, MessageType.MESSAGE_TYPE_AGENT, call.request.agentId), epoch: EPOCH });

const getNewMessage: Unary<GetNewMessageRequest, GetNewMessageResponse> = (call, callback) => {
  const from = call.request.visitorOffset;
  const messages = Array.from({ length: READ_MESSAGES }, (_, i) => ({
    id: `${call.request.chatId}-v${from + i + 1}`,
    dataOffset: from + i + 1,
    content: CONTENT,
    messageType: MessageType.MESSAGE_TYPE_VISITOR,
    sendTime: new Date(),
    senderId: 'visitor-1',
    attachments: [],
  }));
  callback(null, { code: ResultCode.RESULT_CODE_OK, visitorDataOffset: from + READ_MESSAGES, agentDataOffset: 0, messages, epoch: EPOCH, ended: false, readPositions: [] });
};

const rebuild: Unary<RebuildRequest, RebuildResponse> = (call, callback) => {
  const messages = call.request.chat?.messages ?? [];
  const highest = (type: MessageType) => messages.reduce((top, m) => (m.messageType === type ? Math.max(top, m.dataOffset) : top), 0);
  const chat = {
    id: call.request.chat?.id ?? '',
    visitorDataOffset: highest(MessageType.MESSAGE_TYPE_VISITOR),
    agentDataOffset: highest(MessageType.MESSAGE_TYPE_AGENT),
    messages,
    visitor: undefined,
    beginTime: new Date(),
    epoch: EPOCH,
    readPositions: [],
  };
  callback(null, { code: ResultCode.RESULT_CODE_OK, chat, truncated: false });
};

const server = new Server();
server.addService(ChatServiceService, {
  addVisitorMessage,
  addAgentMessage,
  getNewMessage,
  rebuild,
  watchChat: (call: { end(): void }) => call.end(),
});
server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, port) => {
  if (error) throw error;
  console.log(JSON.stringify({ port }));
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => server.forceShutdown());
