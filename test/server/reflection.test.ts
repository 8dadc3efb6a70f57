import { status } from '@grpc/grpc-js';
import { clone, create, createFileRegistry, type JsonObject } from '@bufbuild/protobuf';
import { type FileDescriptorProto, FileDescriptorProtoSchema, FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { expect } from 'chai';
import { grpcurl } from '../support/grpcurl.js';
import { describe as describeSymbol, fetchFileDescriptors, invoke, listServices, strictRegistry } from '../support/reflection-client.js';
import { MessageType } from '../../src/domain/message.js';
import { expectStatus } from '../support/chat-api.js';
import { testSeal, testToken } from '../support/security.js';
import { startTestServer, type TestServer } from '../support/servers.js';

const CHAT_SERVICE = 'chat.v1.ChatService';
const CHAT_FILE = 'chat/v1/chat.proto';
const TIMESTAMP_FILE = 'google/protobuf/timestamp.proto';
const WRAPPERS_FILE = 'google/protobuf/wrappers.proto';

function byName(files: FileDescriptorProto[], name: string): FileDescriptorProto {
  const file = files.find((f) => f.name === name);
  expect(file, `${name} among ${files.map((f) => f.name).join(', ')}`).to.exist;
  return file!;
}

// Everything here goes through reflection only: no generated type is imported, so these
// tests fail if the served descriptors cannot describe the API on their own.
describe('server reflection, seen by a client without compiled types', () => {
  let server: TestServer;
  /** The bearer tokens of a service (reads, Rebuilds) and of visitor-1 of chat reflection-rebuild, as grpcurl -H headers. */
  const headers = { service: [] as string[], visitor: [] as string[] };
  before(async () => {
    server = await startTestServer();
    headers.service = [`authorization: Bearer ${await testToken({ sub: 'reflection', role: 'service' })}`];
    headers.visitor = [`authorization: Bearer ${await testToken({ sub: 'visitor-1', role: 'visitor', chatId: 'reflection-rebuild' })}`];
  });
  after(async () => {
    await server?.close();
  });

  const chatCall = (method: string, request: JsonObject, as: keyof typeof headers = 'service') =>
    // emitDefaults, so that RESULT_CODE_OK (0) is printed and can be asserted.
    invoke(server.address, `${CHAT_SERVICE}/${method}`, request, { emitDefaults: true, headers: headers[as] }) as Promise<JsonObject>;
  /** The seal the server gave a message of chat reflection-rebuild (the copy uploaded below was received with these). */
  const sealOf = (id: string, type: MessageType, senderId: string, content: string, sendTime: string) =>
    testSeal('reflection-rebuild', { id, type, senderId, content, sendTime: new Date(sendTime) });

  it('lists the chat and health services', async () => {
    // @grpc/reflection lists only the services of the package definitions it is given; it
    // does not list itself (grpc-go's reflection does), so grpc.reflection.* is not expected.
    expect(await listServices(server.address)).to.include.members([CHAT_SERVICE, 'grpc.health.v1.Health', 'grpc.reflection.v1.ServerReflection']);
  });

  it('serves chat.proto with its real dependency list, and the descriptors resolve strictly', async () => {
    const files = await fetchFileDescriptors(server.address, CHAT_SERVICE);
    expect(byName(files, CHAT_FILE).dependency).to.deep.equal([TIMESTAMP_FILE, WRAPPERS_FILE]);
    byName(files, TIMESTAMP_FILE);
    byName(files, WRAPPERS_FILE);

    const registry = strictRegistry(files);
    const service = registry.getService(CHAT_SERVICE);
    expect(service?.methods.map((m) => m.name)).to.have.members(['AddVisitorMessage', 'AddAgentMessage', 'GetNewMessage', 'Rebuild', 'WatchChat', 'MarkRead', 'SetTyping', 'WatchTranscripts', 'AckTranscript']);
    expect(service?.methods.find((m) => m.name === 'WatchChat')?.methodKind).to.equal('server_streaming');
    for (const method of service!.methods) {
      expect(registry.getMessage(method.input.typeName), `${method.name} input`).to.equal(method.input);
      expect(registry.getMessage(method.output.typeName), `${method.name} output`).to.equal(method.output);
    }
    // Timestamp comes from the reflected timestamp.proto, the only place this registry can get it.
    const sendTime = registry.getMessage('chat.v1.ChatMessage')?.fields.find((f) => f.name === 'send_time');
    expect(sendTime?.message?.file.proto.name).to.equal(TIMESTAMP_FILE);
    const seal = registry.getMessage('chat.v1.ChatMessage')?.fields.find((f) => f.name === 'seal');
    expect(seal?.message?.file.proto.name).to.equal(WRAPPERS_FILE);
  });

  it('describes a message with its imported field type', async () => {
    const text = await describeSymbol(server.address, 'chat.v1.ChatMessage');
    expect(text).to.match(/^chat\.v1\.ChatMessage is a message:/);
    expect(text).to.include('.google.protobuf.Timestamp send_time = 5;');
  });

  it('runs read, rebuild and send with reflected types, Timestamps included', async () => {
    const chatId = 'reflection-rebuild';
    expect(await chatCall('GetNewMessage', { chatId })).to.deep.include({
      code: 'RESULT_CODE_REBUILD_REQUIRED',
      visitorDataOffset: '-1', // protojson writes int64 as a string
      agentDataOffset: '-1',
      messages: [],
    });

    // Earlier than the chat the read above created, so the server keeps this begin time.
    const beginTime = '2024-05-01T09:00:00Z';
    const visitorSent = '2024-05-01T09:00:05.250Z';
    const agentSent = '2024-05-01T09:00:07Z';
    const rebuilt = await chatCall('Rebuild', {
      chat: {
        id: chatId,
        visitorDataOffset: '1',
        agentDataOffset: '1',
        beginTime,
        messages: [
          { id: 'v1', dataOffset: '1', content: 'My order is late', messageType: 'MESSAGE_TYPE_VISITOR', sendTime: visitorSent, senderId: 'visitor-1', seal: sealOf('v1', MessageType.Visitor, 'visitor-1', 'My order is late', visitorSent) },
          { id: 'a1', dataOffset: '1', content: 'Let me check', messageType: 'MESSAGE_TYPE_AGENT', sendTime: agentSent, senderId: 'agent-1', seal: sealOf('a1', MessageType.Agent, 'agent-1', 'Let me check', agentSent) },
        ],
      },
    });
    expect(rebuilt.code).to.equal('RESULT_CODE_OK');
    const chat = rebuilt.chat as JsonObject;
    expect(chat).to.include({ id: chatId, visitorDataOffset: '1', agentDataOffset: '1', beginTime });
    expect((chat.messages as JsonObject[]).map((m) => [m.id, m.dataOffset, m.sendTime])).to.deep.equal([
      ['v1', '1', visitorSent],
      ['a1', '1', agentSent],
    ]);

    // docs/reference.md §3: a send takes the next offset of its own side, so visitor 2 (not 3).
    const sent = await chatCall(
      'AddVisitorMessage',
      {
        chatId,
        visitorOffset: '1',
        agentOffset: '1',
        message: { id: 'v2', content: 'Order 42' },
      },
      'visitor',
    );
    expect(sent).to.include({ code: 'RESULT_CODE_OK', visitorDataOffset: '2', agentDataOffset: '1' });
    expect(sent.message).to.include({ id: 'v2', dataOffset: '2', messageType: 'MESSAGE_TYPE_VISITOR', content: 'Order 42' });
    expect((sent.message as JsonObject).sendTime).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
  });

  it('answers a health check with reflected types', async () => {
    const check = (service: string) => invoke(server.address, 'grpc.health.v1.Health/Check', { service });
    expect(await check('')).to.deep.equal({ status: 'SERVING' });
    expect(await check(CHAT_SERVICE)).to.deep.equal({ status: 'SERVING' });
  });

  it('surfaces INVALID_ARGUMENT for an empty chat id, from the client and the grpcurl front end', async () => {
    const error = await expectStatus(chatCall('GetNewMessage', { chatId: '' }), status.INVALID_ARGUMENT);
    expect(error.details).to.include('chat_id');
    const argv = ['grpcurl', '-plaintext', '-H', headers.service[0]!, '-d', '{"chatId": ""}', 'localhost:50051', `${CHAT_SERVICE}/GetNewMessage`];
    await expectStatus(grpcurl(argv, server.address), status.INVALID_ARGUMENT);
  });

  it('cannot resolve chat.proto without its import (negative control: the registry is strict)', async () => {
    const files = await fetchFileDescriptors(server.address, CHAT_SERVICE);
    const chatFile = byName(files, CHAT_FILE);
    const withoutDependencies = clone(FileDescriptorProtoSchema, chatFile);
    withoutDependencies.dependency = [];
    expect(() => createFileRegistry(create(FileDescriptorSetSchema, { file: [withoutDependencies] }))).to.throw(
      /google\.protobuf\.Timestamp/,
    );
    // The client's own path: a declared import that reflection did not deliver is an error too.
    expect(() => strictRegistry([chatFile])).to.throw(/Cannot find google\/protobuf\/timestamp\.proto/);
    // And the same calls succeed once the imports are there, so they are the cause.
    expect(() => strictRegistry([byName(files, TIMESTAMP_FILE), byName(files, WRAPPERS_FILE), chatFile])).not.to.throw();
  });
});
