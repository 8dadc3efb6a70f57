import { once } from 'node:events';
import { type ClientReadableStream, status } from '@grpc/grpc-js';
import { expect } from 'chai';
import {
  type Attachment,
  type ChatMessage,
  EventKind,
  MessageType,
  ResultCode,
  type WatchTranscriptsResponse,
} from '../../generated/chat/v1/chat.js';
import { bearer, chatApi, type ChatApi, expectStatus, type Loose } from '../support/chat-api.js';
import { testToken } from '../support/security.js';
import { startTestServer, type TestServer } from '../support/servers.js';
import { WatchStream } from '../support/watch-stream.js';

const SHA = 'ab'.repeat(32);
const attachment = (overrides: Partial<Attachment> = {}): Attachment => ({
  uri: 'https://files.example.com/c1/receipt.pdf',
  mediaType: 'application/pdf',
  sizeBytes: 48_213,
  sha256: SHA,
  name: 'receipt.pdf',
  ...overrides,
});
const event = (kind: EventKind, participantId: string, toParticipantId = '', reason = '') => ({ kind, participantId, toParticipantId, reason });
const system = (id: string, ev: ReturnType<typeof event>, content = ''): Loose<ChatMessage> => ({ id, content, messageType: MessageType.MESSAGE_TYPE_SYSTEM, event: ev });

/** The transcripts a WatchTranscripts stream brings, as they come. */
class Transcripts {
  readonly received: WatchTranscriptsResponse[] = [];
  private readonly waiters = new Set<() => void>();

  constructor(readonly call: ClientReadableStream<WatchTranscriptsResponse>) {
    call.on('data', (t: WatchTranscriptsResponse) => {
      this.received.push(t);
      for (const wake of [...this.waiters]) wake();
    });
    call.on('error', () => {});
  }

  /** Resolves with the first transcript `matches` accepts, among those received or to come. */
  next(matches: (t: WatchTranscriptsResponse) => boolean, what: string): Promise<WatchTranscriptsResponse> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 10_000);
      const check = () => {
        const found = this.received.find(matches);
        if (!found) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(found);
      };
      this.waiters.add(check);
      check();
    });
  }

  close(): void {
    this.call.cancel();
  }
}

describe('the support conversation on the wire', function () {
  this.timeout(20_000);
  let test: TestServer;
  let api: ChatApi;
  const closing: (() => void)[] = [];

  beforeEach(async () => {
    test = await startTestServer({ typingTtlMs: 400 });
    api = chatApi(test.client);
  });
  afterEach(async () => {
    for (const close of closing.splice(0)) close();
    await test.close();
  });

  /** A chat the visitor opened and wrote in; returns its epoch. */
  async function opened(chatId: string): Promise<string> {
    const { epoch } = await api.getNewMessage({ chatId });
    await api.addVisitorMessage({ chatId, epoch, message: { id: `${chatId}-hello`, content: 'hello', senderId: 'visitor-1' } });
    return epoch;
  }

  const read = (chatId: string) => api.getNewMessage({ chatId });
  const snapshot = async (chatId: string) => {
    const { messages, readPositions, ended, visitorDataOffset, agentDataOffset } = await read(chatId);
    return { ids: messages.map((m) => m.id), readPositions, ended, visitorDataOffset, agentDataOffset };
  };

  describe('lifecycle events', () => {
    it('stores joins, transfers and the end as typed SYSTEM messages; after the end sends are refused and reads say ended', async () => {
      const epoch = await opened('c1');
      await api.addAgentMessage({ chatId: 'c1', agentId: 'router', epoch, message: system('j1', event(EventKind.EVENT_KIND_JOINED, 'agent-ann')) });
      await api.addAgentMessage({ chatId: 'c1', agentId: 'router', epoch, message: system('t1', event(EventKind.EVENT_KIND_TRANSFERRED, 'agent-ann', 'agent-bob', 'billing question'), 'Ann handed you to Bob') });
      const end = await api.addAgentMessage({ chatId: 'c1', agentId: 'router', epoch, message: system('e1', event(EventKind.EVENT_KIND_ENDED, '', '', 'resolved')) });
      expect(end.message!.event).to.deep.equal(event(EventKind.EVENT_KIND_ENDED, '', '', 'resolved'));

      const after = await read('c1');
      expect(after.ended).to.equal(true);
      expect(after.messages.map((m) => [m.id, m.event?.kind])).to.deep.equal([
        ['c1-hello', undefined],
        ['j1', EventKind.EVENT_KIND_JOINED],
        ['t1', EventKind.EVENT_KIND_TRANSFERRED],
        ['e1', EventKind.EVENT_KIND_ENDED],
      ]);
      expect(after.messages[2]!.event!.toParticipantId).to.equal('agent-bob');

      const before = await snapshot('c1');
      const visitorLate = await expectStatus(api.addVisitorMessage({ chatId: 'c1', epoch, message: { id: 'late', content: 'one more thing', senderId: 'visitor-1' } }), status.FAILED_PRECONDITION);
      expect(visitorLate.details).to.match(/ended at .* takes no more messages/);
      await expectStatus(api.addAgentMessage({ chatId: 'c1', agentId: 'agent-bob', epoch, message: { id: 'late-agent', content: 'bye' } }), status.FAILED_PRECONDITION);
      await expectStatus(api.addAgentMessage({ chatId: 'c1', agentId: 'router', epoch, message: system('e2', event(EventKind.EVENT_KIND_ENDED, '')) }), status.FAILED_PRECONDITION);
      expect(await snapshot('c1')).to.deep.equal(before);

      // A resend of what was stored before the end is still answered with it: a retry is not a new message.
      const resend = await api.addAgentMessage({ chatId: 'c1', agentId: 'router', epoch, message: system('e1', event(EventKind.EVENT_KIND_ENDED, '', '', 'resolved')) });
      expect(resend.message!.dataOffset).to.equal(end.message!.dataOffset);
    });

    it('keeps a message acknowledged elsewhere that a rebuild brings after the end, and stays ended', async () => {
      const epoch = await opened('late');
      await api.addAgentMessage({ chatId: 'late', agentId: 'router', epoch, message: system('end', event(EventKind.EVENT_KIND_ENDED, '')) });
      // The visitor's copy, from another server that never learned of the end, holds a later message.
      const hello = (await read('late')).messages[0]!;
      const rebuilt = await api.rebuild({
        chat: { id: 'late', messages: [hello, { id: 'v-late', dataOffset: 2, content: 'are you there?', messageType: MessageType.MESSAGE_TYPE_VISITOR, senderId: 'visitor-1', sendTime: new Date() }] },
      });
      expect(rebuilt.chat!.messages.map((m) => m.id)).to.include('v-late');
      const after = await read('late');
      expect(after.ended).to.equal(true);
      expect(after.messages.map((m) => m.id)).to.deep.equal(['late-hello', 'end', 'v-late']);
      await expectStatus(api.addVisitorMessage({ chatId: 'late', message: { id: 'v-later', content: 'hello?', senderId: 'visitor-1' } }), status.FAILED_PRECONDITION);
    });

    it('refuses a malformed event with INVALID_ARGUMENT and changes nothing', async () => {
      const epoch = await opened('bad');
      const before = await snapshot('bad');
      const refusals: [Loose<ChatMessage>, RegExp][] = [
        [{ id: 'x1', content: '', messageType: MessageType.MESSAGE_TYPE_SYSTEM, event: { kind: 99 as EventKind, participantId: 'a' } }, /event\.kind must be .* got 99/],
        [{ id: 'x2', content: '', messageType: MessageType.MESSAGE_TYPE_SYSTEM, event: { kind: EventKind.EVENT_KIND_UNSPECIFIED, participantId: 'a' } }, /event\.kind must be/],
        [{ id: 'x3', content: 'hi', messageType: MessageType.MESSAGE_TYPE_BOT, event: event(EventKind.EVENT_KIND_JOINED, 'a') }, /event is allowed on MESSAGE_TYPE_SYSTEM/],
        [system('x4', event(EventKind.EVENT_KIND_JOINED, '')), /participant_id is required/],
        [system('x5', event(EventKind.EVENT_KIND_TRANSFERRED, 'a', 'a')), /a transfer goes to someone else/],
        [system('x6', event(EventKind.EVENT_KIND_TRANSFERRED, 'a')), /to_participant_id is required/],
        [system('x7', event(EventKind.EVENT_KIND_LEFT, 'a', 'b')), /for EVENT_KIND_TRANSFERRED only/],
        [system('x8', event(EventKind.EVENT_KIND_ENDED, '', '', 'r'.repeat(1025))), /event\.reason is 1025 bytes/],
        [{ id: 'x9', content: '', messageType: MessageType.MESSAGE_TYPE_SYSTEM }, /content is empty/],
      ];
      for (const [message, why] of refusals) {
        const error = await expectStatus(api.addAgentMessage({ chatId: 'bad', agentId: 'router', epoch, message }), status.INVALID_ARGUMENT);
        expect(error.details).to.match(why);
      }
      // A visitor's message cannot carry an event either.
      await expectStatus(api.addVisitorMessage({ chatId: 'bad', epoch, message: { id: 'x10', content: 'hi', senderId: 'visitor-1', event: event(EventKind.EVENT_KIND_ENDED, '') } }), status.INVALID_ARGUMENT);
      // Nor an upload.
      const hello = (await read('bad')).messages[0]!;
      await expectStatus(
        api.rebuild({ chat: { id: 'bad', messages: [hello, { id: 'x11', dataOffset: 1, content: '', messageType: MessageType.MESSAGE_TYPE_SYSTEM, event: { kind: 7 as EventKind }, sendTime: new Date() }] } }),
        status.INVALID_ARGUMENT,
      );
      expect(await snapshot('bad')).to.deep.equal(before);
    });

    it('lets an agent post events about itself only, a service any, and a visitor none', async () => {
      const epoch = await opened('who');
      const asAgent = chatApi(test.client, bearer(await testToken({ sub: 'agent-ann', role: 'agent' })));
      const asVisitor = chatApi(test.client, bearer(await testToken({ sub: 'visitor-1', role: 'visitor', chatId: 'who' })));
      await asAgent.addAgentMessage({ chatId: 'who', epoch, message: system('j-ann', event(EventKind.EVENT_KIND_JOINED, 'agent-ann')) });
      const denied = await expectStatus(asAgent.addAgentMessage({ chatId: 'who', epoch, message: system('j-bob', event(EventKind.EVENT_KIND_JOINED, 'agent-bob')) }), status.PERMISSION_DENIED);
      expect(denied.details).to.match(/events about itself only/);
      await expectStatus(asAgent.addAgentMessage({ chatId: 'who', epoch, message: { id: 'plain-notice', content: 'notice', messageType: MessageType.MESSAGE_TYPE_SYSTEM } }), status.PERMISSION_DENIED);
      await expectStatus(asVisitor.addAgentMessage({ chatId: 'who', epoch, message: system('v-end', event(EventKind.EVENT_KIND_ENDED, '')) }), status.PERMISSION_DENIED);
      await asAgent.addAgentMessage({ chatId: 'who', epoch, message: system('t-ann', event(EventKind.EVENT_KIND_TRANSFERRED, 'agent-ann', 'agent-bob')) });
      await asAgent.addAgentMessage({ chatId: 'who', epoch, message: system('end-ann', event(EventKind.EVENT_KIND_ENDED, '')) });
      expect((await snapshot('who')).ids).to.deep.equal(['who-hello', 'j-ann', 't-ann', 'end-ann']);
    });
  });

  describe('attachments', () => {
    it('carries references through sends, reads and rebuilds, with or without text', async () => {
      const epoch = await opened('files');
      const two = [attachment(), attachment({ uri: 'https://files.example.com/c1/photo.png?v=2', mediaType: 'image/png', sizeBytes: 1, name: 'photo of the box.png' })];
      const sent = await api.addVisitorMessage({ chatId: 'files', epoch, message: { id: 'f1', content: '', senderId: 'visitor-1', attachments: two } });
      expect(sent.message!.attachments).to.deep.equal(two);
      const copy = (await read('files')).messages;
      expect(copy.find((m) => m.id === 'f1')!.attachments).to.deep.equal(two);

      // Uploaded back into an empty server (the client's copy is the durable store), they survive whole.
      const other = await startTestServer();
      try {
        const rebuilt = await chatApi(other.client).rebuild({ chat: { id: 'files', messages: copy } });
        expect(rebuilt.chat!.messages.find((m) => m.id === 'f1')!.attachments).to.deep.equal(two);
      } finally {
        await other.close();
      }
    });

    it('refuses bad or too many references with INVALID_ARGUMENT and changes nothing', async () => {
      const epoch = await opened('bad-files');
      const before = await snapshot('bad-files');
      const cases: [Attachment[], RegExp][] = [
        [Array.from({ length: 11 }, () => attachment()), /11 references; the limit is 10/],
        [[attachment({ uri: 'http://files.example.com/a' })], /absolute https URI/],
        [[attachment({ uri: 'javascript:alert(1)' })], /absolute https URI/],
        [[attachment({ uri: '' })], /uri is required/],
        [[attachment({ uri: `https://x.example/${'a'.repeat(2100)}` })], /uri is \d+ bytes; the limit is 2048/],
        [[attachment({ mediaType: 'pdf' })], /"type\/subtype"/],
        [[attachment({ sizeBytes: 0 })], /size_bytes must be from 1/],
        [[attachment({ sizeBytes: 100 * 1024 * 1024 + 1 })], /--max-attachment-bytes/],
        [[attachment({ sha256: SHA.toUpperCase() })], /64 lowercase hexadecimal/],
        [[attachment({ sha256: 'ab' })], /64 lowercase hexadecimal/],
        [[attachment({ name: '../../etc/passwd' })], /no slashes/],
        [[attachment({ name: 'bell\u0007.txt' })], /no control characters/],
        [[attachment({ name: '' })], /name is required/],
      ];
      for (const [attachments, why] of cases) {
        const error = await expectStatus(api.addVisitorMessage({ chatId: 'bad-files', epoch, message: { id: 'f', content: 'see attached', senderId: 'visitor-1', attachments } }), status.INVALID_ARGUMENT);
        expect(error.details).to.match(why);
        expect(error.details).to.match(/^message\.attachments/);
      }
      expect(await snapshot('bad-files')).to.deep.equal(before);
    });

    it('seals them: an upload that alters an attachment of a sealed message is refused', async () => {
      const epoch = await opened('sealed-files');
      await api.addVisitorMessage({ chatId: 'sealed-files', epoch, message: { id: 'f1', content: 'receipt', senderId: 'visitor-1', attachments: [attachment()] } });
      const copy = (await read('sealed-files')).messages;
      const other = await startTestServer();
      try {
        const altered = copy.map((m) => (m.id === 'f1' ? { ...m, attachments: [attachment({ uri: 'https://evil.example/receipt.pdf' })] } : m));
        const error = await expectStatus(chatApi(other.client).rebuild({ chat: { id: 'sealed-files', messages: altered } }), status.PERMISSION_DENIED);
        expect(error.details).to.match(/attachments differ from what was sealed/);
        expect((await chatApi(other.client).getNewMessage({ chatId: 'sealed-files' })).code).to.equal(ResultCode.RESULT_CODE_REBUILD_REQUIRED);
      } finally {
        await other.close();
      }
    });
  });

  describe('read positions', () => {
    it('keeps each reader\'s furthest position by message id and shows it to readers and watchers', async () => {
      const epoch = await opened('reads');
      await api.addAgentMessage({ chatId: 'reads', agentId: 'agent-ann', epoch, message: { id: 'a1', content: 'hi, how can I help?' } });
      const watch = new WatchStream(test.client, { chatId: 'reads', epoch });
      closing.push(() => watch.call.cancel());
      await watch.reach(1, 1);
      const held = watch.position;

      const marked = await api.markRead({ chatId: 'reads', readerId: 'visitor-1', messageId: 'a1', epoch });
      expect(marked.code).to.equal(ResultCode.RESULT_CODE_OK);
      expect(marked.readPositions.map(({ readerId, messageId }) => ({ readerId, messageId }))).to.deep.equal([{ readerId: 'visitor-1', messageId: 'a1' }]);
      expect(marked.readPositions[0]!.seal).to.match(/^[^.]+\..+/);
      await watch.until(() => watch.responses.at(-1)!.readPositions.length === 1, 'the read position pushed');
      const pushed = watch.responses.at(-1)!;
      expect(pushed.messages).to.deep.equal([]);
      expect(watch.position).to.deep.equal(held); // moves no offset

      // An earlier message changes nothing: positions only move forward.
      await api.markRead({ chatId: 'reads', readerId: 'visitor-1', messageId: 'reads-hello', epoch });
      expect((await read('reads')).readPositions.map((p) => p.messageId)).to.deep.equal(['a1']);
      await api.markRead({ chatId: 'reads', readerId: 'agent-ann', messageId: 'reads-hello', epoch });
      expect((await read('reads')).readPositions.map((p) => [p.readerId, p.messageId])).to.deep.equal([
        ['visitor-1', 'a1'],
        ['agent-ann', 'reads-hello'],
      ]);
      expect(watch.problem).to.equal(undefined);
    });

    it('answers a missing chat or another epoch with REBUILD_REQUIRED, an unknown message with NOT_FOUND, changing nothing', async () => {
      const missing = await api.markRead({ chatId: 'nowhere', readerId: 'r', messageId: 'm' });
      expect(missing.code).to.equal(ResultCode.RESULT_CODE_REBUILD_REQUIRED);
      const epoch = await opened('strict');
      const other = await api.markRead({ chatId: 'strict', readerId: 'r', messageId: 'strict-hello', epoch: 'another-epoch' });
      expect([other.code, other.epoch]).to.deep.equal([ResultCode.RESULT_CODE_REBUILD_REQUIRED, epoch]);
      const unknown = await expectStatus(api.markRead({ chatId: 'strict', readerId: 'r', messageId: 'no-such-message', epoch }), status.NOT_FOUND);
      expect(unknown.details).to.match(/holds no message "no-such-message"/);
      await expectStatus(api.markRead({ chatId: 'strict', readerId: 'r', messageId: '', epoch }), status.INVALID_ARGUMENT);
      expect((await read('strict')).readPositions).to.deep.equal([]);
    });

    it('survives a rebuild into an empty server, where the merge keeps the furthest; bad uploaded positions are refused whole', async () => {
      const epoch = await opened('carry');
      await api.addAgentMessage({ chatId: 'carry', agentId: 'agent-ann', epoch, message: { id: 'a1', content: 'one' } });
      await api.addAgentMessage({ chatId: 'carry', agentId: 'agent-ann', epoch, message: { id: 'a2', content: 'two' } });
      const first = (await api.markRead({ chatId: 'carry', readerId: 'visitor-1', messageId: 'a1', epoch })).readPositions;
      const furthest = (await api.markRead({ chatId: 'carry', readerId: 'visitor-1', messageId: 'a2', epoch })).readPositions;
      const { messages } = await read('carry');

      const other = await startTestServer();
      const b = chatApi(other.client);
      try {
        // A copy holding the furthest position, then one holding an older one: the furthest stays.
        await b.rebuild({ chat: { id: 'carry', messages, readPositions: furthest } });
        await b.rebuild({ chat: { id: 'carry', messages, readPositions: first } });
        expect((await b.getNewMessage({ chatId: 'carry' })).readPositions.map((p) => p.messageId)).to.deep.equal(['a2']);

        const before = (await b.getNewMessage({ chatId: 'carry' })).readPositions;
        const unknown = await expectStatus(b.rebuild({ chat: { id: 'carry', messages, readPositions: [{ readerId: 'agent-ann', messageId: 'ghost', seal: furthest[0]!.seal }] } }), status.INVALID_ARGUMENT);
        expect(unknown.details).to.match(/read_positions\[0\]\.message_id "ghost" names no message/);
        const forged = await expectStatus(b.rebuild({ chat: { id: 'carry', messages, readPositions: [{ readerId: 'agent-ann', messageId: 'a2', seal: furthest[0]!.seal }] } }), status.PERMISSION_DENIED);
        expect(forged.details).to.match(/reader, or message differs|chat, reader or message differs/);
        await expectStatus(b.rebuild({ chat: { id: 'carry', messages, readPositions: [{ readerId: 'agent-ann', messageId: 'a2' }] } }), status.PERMISSION_DENIED);
        expect((await b.getNewMessage({ chatId: 'carry' })).readPositions).to.deep.equal(before);
      } finally {
        await other.close();
      }
    });
  });

  describe('typing', () => {
    it('pushes an ephemeral indication that moves no offset, throttles renewals, and lapses', async () => {
      const epoch = await opened('typing');
      const watch = new WatchStream(test.client, { chatId: 'typing', epoch });
      closing.push(() => watch.call.cancel());
      await watch.reach(1, 0);
      const held = watch.position;
      const at = watch.responses.length;
      const answer = await api.setTyping({ chatId: 'typing', participantId: 'agent-ann', typing: true });
      expect(answer.expireTime!.getTime()).to.be.greaterThan(Date.now());
      // Renewed at once, again and again: watchers hear of it once.
      for (let i = 0; i < 5; i += 1) await api.setTyping({ chatId: 'typing', participantId: 'agent-ann', typing: true });
      await watch.until(() => watch.responses.slice(at).some((r) => r.typing.length === 1), 'the typing indication');
      const shown = watch.responses.slice(at).find((r) => r.typing.length === 1)!;
      expect(shown.typing[0]!.participantId).to.equal('agent-ann');
      expect(shown.messages).to.deep.equal([]);
      expect(watch.position).to.deep.equal(held);
      // It lapses (400 ms here) without anyone saying so, and the watcher is told.
      await watch.until(() => watch.responses.at(-1)!.typing.length === 0 && watch.responses.length > at + 1, 'the indication to lapse');
      const pushes = watch.responses.slice(at).filter((r) => r.typing.length === 1).length;
      expect(pushes, 'typing pushes for six calls within the throttle').to.equal(1);
      expect(watch.position).to.deep.equal(held);
      expect(watch.problem).to.equal(undefined);
    });

    it('ends with the participant\'s message, and is never stored', async () => {
      const epoch = await opened('typed');
      const watch = new WatchStream(test.client, { chatId: 'typed', epoch });
      closing.push(() => watch.call.cancel());
      await watch.reach(1, 0);
      await api.setTyping({ chatId: 'typed', participantId: 'agent-ann', typing: true });
      await watch.until(() => watch.responses.at(-1)!.typing.length === 1, 'typing shown');
      await api.addAgentMessage({ chatId: 'typed', agentId: 'agent-ann', epoch, message: { id: 'a1', content: 'here is the answer' } });
      await watch.reach(1, 1);
      const last = watch.responses.at(-1)!;
      expect(last.messages.map((m) => m.id)).to.deep.equal(['a1']);
      expect(last.typing).to.deep.equal([]);
      const { messages } = await read('typed');
      expect(messages.every((m) => m.event === undefined)).to.equal(true);
      expect(messages.map((m) => m.id)).to.deep.equal(['typed-hello', 'a1']);
    });

    it('is refused for a chat the server does not hold (NOT_FOUND) and for an ended one (FAILED_PRECONDITION)', async () => {
      await expectStatus(api.setTyping({ chatId: 'never-seen', participantId: 'agent-ann', typing: true }), status.NOT_FOUND);
      expect(test.server.store.size).to.equal(0);
      const epoch = await opened('over');
      await api.addAgentMessage({ chatId: 'over', agentId: 'router', epoch, message: system('end', event(EventKind.EVENT_KIND_ENDED, '')) });
      await expectStatus(api.setTyping({ chatId: 'over', participantId: 'agent-ann', typing: true }), status.FAILED_PRECONDITION);
      await expectStatus(api.setTyping({ chatId: '', participantId: 'agent-ann', typing: true }), status.INVALID_ARGUMENT);
    });
  });

  describe('transcripts', () => {
    const follow = () => {
      const transcripts = new Transcripts(test.client.watchTranscripts({}));
      closing.push(() => transcripts.close());
      return transcripts;
    };

    it('offers an ended chat\'s history at least once until it is acknowledged, and again when it grows', async () => {
      const archiver = follow();
      const epoch = await opened('t1');
      await api.addAgentMessage({ chatId: 't1', agentId: 'agent-ann', epoch, message: { id: 'a1', content: 'all sorted' } });
      await api.markRead({ chatId: 't1', readerId: 'visitor-1', messageId: 'a1', epoch });
      await api.addAgentMessage({ chatId: 't1', agentId: 'router', epoch, message: system('end', event(EventKind.EVENT_KIND_ENDED, '')) });
      const offered = await archiver.next((t) => t.chat?.id === 't1', 'the transcript of t1');
      expect(offered.chat!.messages.map((m) => m.id)).to.deep.equal(['t1-hello', 'a1', 'end']);
      expect([offered.chat!.epoch, offered.messageCount, offered.truncated]).to.deep.equal([epoch, 3, false]);
      expect(offered.chat!.readPositions.map((p) => p.messageId)).to.deep.equal(['a1']);
      expect(offered.endTime!.getTime()).to.equal(offered.chat!.messages[2]!.sendTime!.getTime());

      // Not acknowledged: a new stream (the archiver restarted) is offered it again.
      const restarted = follow();
      await restarted.next((t) => t.chat?.id === 't1', 'the transcript offered again');
      await api.ackTranscript({ chatId: 't1', epoch, messageCount: 3 });

      // A late message merged after the end is a new revision, offered again.
      const hello = offered.chat!.messages[0]!;
      await api.rebuild({ chat: { id: 't1', messages: [hello, { id: 'v-late', dataOffset: 2, content: 'thanks!', messageType: MessageType.MESSAGE_TYPE_VISITOR, senderId: 'visitor-1', sendTime: new Date() }] } });
      const grown = await restarted.next((t) => t.chat?.id === 't1' && t.messageCount === 4, 'the grown transcript');
      expect(grown.chat!.messages.map((m) => m.id)).to.include('v-late');
      await api.ackTranscript({ chatId: 't1', epoch, messageCount: 4 });
      expect(test.server.store.pendingTranscripts).to.equal(0);

      // Acknowledged: a new stream gets nothing of it (another chat's end shows the stream works).
      const third = follow();
      const epoch2 = await opened('t2');
      await api.addAgentMessage({ chatId: 't2', agentId: 'router', epoch: epoch2, message: system('end2', event(EventKind.EVENT_KIND_ENDED, '')) });
      await third.next((t) => t.chat?.id === 't2', 'the transcript of t2');
      expect(third.received.map((t) => t.chat!.id)).to.deep.equal(['t2']);
    });

    it('offers an unacknowledged transcript before its chat is evicted', async () => {
      const epoch = await opened('gone');
      await api.addAgentMessage({ chatId: 'gone', agentId: 'router', epoch, message: system('end', event(EventKind.EVENT_KIND_ENDED, '')) });
      const archiver = follow();
      await archiver.next((t) => t.chat?.id === 'gone', 'the first offer');
      const count = archiver.received.length;
      expect(test.server.store.evict('gone')).to.equal(true);
      await archiver.next(() => archiver.received.length > count, 'the last offer');
      expect(archiver.received.at(-1)!.chat!.messages.map((m) => m.id)).to.deep.equal(['gone-hello', 'end']);
      expect(test.server.store.pendingTranscripts).to.equal(0);
    });

    it('is for services only, and AckTranscript checks its fields', async () => {
      const asAgent = test.client.watchTranscripts({}, bearer(await testToken({ sub: 'agent-ann', role: 'agent' })));
      asAgent.on('data', () => expect.fail('an agent was sent a transcript'));
      const [error] = (await once(asAgent, 'error')) as [{ code: number; details: string }];
      expect(error.code).to.equal(status.PERMISSION_DENIED);
      expect(error.details).to.match(/takes a service token/);
      await expectStatus(chatApi(test.client, bearer(await testToken({ sub: 'agent-ann', role: 'agent' }))).ackTranscript({ chatId: 'c', epoch: 'e', messageCount: 1 }), status.PERMISSION_DENIED);
      await expectStatus(api.ackTranscript({ chatId: 'c', epoch: '', messageCount: 1 }), status.INVALID_ARGUMENT);
      await expectStatus(api.ackTranscript({ chatId: 'c', epoch: 'e', messageCount: 0 }), status.INVALID_ARGUMENT);
      await api.ackTranscript({ chatId: 'never-ended', epoch: 'e', messageCount: 1 }); // nothing to acknowledge: OK
    });
  });
});
