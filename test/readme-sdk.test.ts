import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { MessageType } from '../generated/chat/v1/chat.js';
import { chatApi } from './support/chat-api.js';
import { startTestServer, type TestServer } from './support/servers.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The ```ts blocks of the README's "Client SDK" section that import the SDK, in order. */
function sdkExamples(markdown: string): string[] {
  const section = markdown.split(/^## /m).find((part) => part.startsWith('Client SDK')) ?? '';
  return [...section.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]!).filter((code) => code.includes("from 'chat-rebuild/client'"));
}

/** Runs one example as its own process, as a user would, and resolves with its output. */
async function run(file: string, env: Record<string, string>): Promise<string> {
  const child = spawn(process.execPath, ['--import', 'tsx', file], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const [code] = await once(child, 'exit');
  expect(code, `${file} failed:\n${output}`).to.equal(0);
  return output;
}

describe('README SDK examples', () => {
  const examples = sdkExamples(readFileSync(join(ROOT, 'README.md'), 'utf8'));
  let server: TestServer;
  let scratch: string;
  before(async () => {
    server = await startTestServer();
    // Inside the repo, so that 'chat-rebuild/client' resolves to this package as it would for a user.
    scratch = mkdtempSync(join(ROOT, 'test', '.readme-'));
  });
  after(async () => {
    await server?.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('has the visitor, agent and bot examples', () => {
    expect(examples).to.have.length(3);
  });

  it('run in order against a real server and leave the conversation they describe', async () => {
    const env = { CHAT_SERVERS: server.address, CHAT_DATA_DIR: join(scratch, 'agent-data') };
    const outputs: string[] = [];
    for (const [i, code] of examples.entries()) {
      const file = join(scratch, `example-${i + 1}.ts`);
      writeFileSync(file, code);
      outputs.push(await run(file, env));
    }
    expect(outputs[0]).to.contain('stored at visitor offset 1');
    expect(outputs[1]).to.contain('visitor-42: Hi, my order #4711 has not arrived.');

    const chat = await chatApi(server.client).getNewMessage({ chatId: 'order-4711', visitorOffset: 0, agentOffset: 0 });
    expect(chat.messages.map((m) => [m.messageType, m.senderId, m.dataOffset])).to.deep.equal([
      [MessageType.MESSAGE_TYPE_VISITOR, 'visitor-42', 1],
      [MessageType.MESSAGE_TYPE_AGENT, 'agent-7', 1],
      [MessageType.MESSAGE_TYPE_BOT, 'order-bot', 2],
    ]);
  });
});
