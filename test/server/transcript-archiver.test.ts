import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { EventKind, MessageType } from '../../generated/chat/v1/chat.js';
import { chatApi, type ChatApi } from '../support/chat-api.js';
import { killChildren, REPO, startTestServer, type TestServer } from '../support/servers.js';
import { waitFor } from '../support/watch-stream.js';

/** The example archiver of examples/archiver, run as its own process, as an operator would. */
function archiver(server: string, dir: string): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', 'examples/archiver/transcript-archiver.ts'], {
    cwd: REPO,
    env: { ...process.env, CHAT_SERVER: server, ARCHIVE_DIR: dir },
    stdio: 'ignore',
  });
}

describe('the example transcript archiver', function () {
  this.timeout(60_000);
  let test: TestServer;
  let api: ChatApi;
  let dir: string;
  const children: ChildProcess[] = [];

  beforeEach(async () => {
    test = await startTestServer({ insecure: true });
    api = chatApi(test.client);
    dir = mkdtempSync(join(tmpdir(), 'transcripts-'));
  });
  afterEach(async () => {
    await killChildren(children.splice(0));
    await test.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function endedChat(chatId: string): Promise<string> {
    const { epoch } = await api.getNewMessage({ chatId });
    await api.addVisitorMessage({ chatId, epoch, message: { id: `${chatId}-v1`, content: 'my parcel is late', senderId: 'visitor-1' } });
    await api.addAgentMessage({ chatId, agentId: 'agent-ann', epoch, message: { id: `${chatId}-end`, content: '', messageType: MessageType.MESSAGE_TYPE_SYSTEM, event: { kind: EventKind.EVENT_KIND_ENDED } } });
    return epoch;
  }

  const fileOf = (chatId: string, epoch: string) => join(dir, encodeURIComponent(chatId), `${encodeURIComponent(epoch)}.json`);
  const archived = (file: string) => (existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { messageCount: number; chat: { messages: { id: string }[] } }) : undefined);

  it('archives each ended chat by chat and epoch, at least once across its own restarts, and keeps the latest revision', async () => {
    children.push(archiver(test.address, dir));
    const e1 = await endedChat('c1');
    await waitFor(() => archived(fileOf('c1', e1))?.messageCount === 2 && test.server.store.pendingTranscripts === 0, 'c1 archived and acknowledged', 30_000);
    expect(archived(fileOf('c1', e1))!.chat.messages.map((m) => m.id)).to.deep.equal(['c1-v1', 'c1-end']);

    // The archiver is down while c2 ends: the server keeps offering it, and the next archiver gets it.
    await killChildren(children.splice(0));
    const e2 = await endedChat('c2');
    expect(test.server.store.pendingTranscripts).to.equal(1);
    children.push(archiver(test.address, dir));
    await waitFor(() => archived(fileOf('c2', e2))?.messageCount === 2 && test.server.store.pendingTranscripts === 0, 'c2 archived after the restart', 30_000);

    // A late message merged into c1 after its end: a new revision, which replaces the file.
    const { messages } = await api.getNewMessage({ chatId: 'c1' });
    await api.rebuild({ chat: { id: 'c1', messages: [...messages, { id: 'c1-late', dataOffset: 2, content: 'thanks!', messageType: MessageType.MESSAGE_TYPE_VISITOR, senderId: 'visitor-1', sendTime: new Date() }] } });
    await waitFor(() => archived(fileOf('c1', e1))?.messageCount === 3, 'the late revision of c1', 30_000);
    expect(archived(fileOf('c1', e1))!.chat.messages.map((m) => m.id)).to.include('c1-late');
  });
});
