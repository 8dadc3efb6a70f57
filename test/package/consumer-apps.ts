import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The two ways an app loads the SDK: `import` (ESM) or `require()` (CommonJS). */
export type Flavour = 'esm' | 'cjs';

/** What a finished child process said. */
export interface Finished {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a command to its end, or kills it once `deadlineMs` have passed (then `code` is null, as
 * for a command that could not start), and resolves with its output either way, so that a
 * failing assertion can show it.
 */
export function run(command: string, args: readonly string[], cwd: string, deadlineMs: number): Promise<Finished> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd, timeout: deadlineMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
      // A command that could not start (ENOENT) printed nothing: its error says why.
      const unstarted = error !== null && code === null && !error.killed ? error.message : '';
      resolve({ code, stdout, stderr: stderr + unstarted });
    });
  });
}

/** A finished process in words, for assertion messages. */
export function describeRun(what: string, finished: Finished): string {
  const how = finished.code === null ? 'did not finish (killed at its deadline, or could not start)' : `exited with ${finished.code}`;
  return `${what} ${how}\n--- stdout:\n${finished.stdout}\n--- stderr:\n${finished.stderr}`;
}

const IMPORTS: Record<Flavour, string> = {
  esm: `import { credentials, Metadata } from '@grpc/grpc-js';
import { ChatSession } from 'chat-rebuild/client';
import { ChatServiceClient, GetNewMessageRequest, messageTypeToJSON } from 'chat-rebuild/generated/chat/v1/chat';
import { HealthCheckRequest, HealthClient, healthCheckResponse_ServingStatusToJSON } from 'chat-rebuild/generated/health/v1/health';

const loadedFrom = import.meta.resolve('chat-rebuild/client');`,
  cjs: `const { credentials, Metadata } = require('@grpc/grpc-js');
const { ChatSession } = require('chat-rebuild/client');
const { ChatServiceClient, GetNewMessageRequest, messageTypeToJSON } = require('chat-rebuild/generated/chat/v1/chat');
const { HealthCheckRequest, HealthClient, healthCheckResponse_ServingStatusToJSON } = require('chat-rebuild/generated/health/v1/health');

const loadedFrom = require.resolve('chat-rebuild/client');`,
};

/**
 * The app: a visitor sends, an agent reads it with sync() and answers, then the generated stubs
 * read the chat back and ask the health service. Its arguments are the server's address, the
 * chat id and the bearer tokens of the visitor, the agent and the reader (a service). Prints one
 * JSON line of what it saw.
 */
function appScript(flavour: Flavour): string {
  return `${IMPORTS[flavour]}

async function main(address, chatId, tokens) {
  const visitor = await ChatSession.open({
    chatId,
    role: { kind: 'visitor', visitorId: 'visitor-1' },
    visitor: { id: 'visitor-1', name: 'Ada', email: 'ada@example.com' },
    servers: [address],
    token: tokens.visitor,
  });
  const sent = await visitor.send('hello from the ${flavour} app');
  await visitor.close();

  const agent = await ChatSession.open({ chatId, role: { kind: 'agent', agentId: 'agent-1' }, servers: [address], token: tokens.agent });
  const synced = await agent.sync();
  await agent.send('hello back');
  await agent.close();

  const chat = new ChatServiceClient(address, credentials.createInsecure());
  const health = new HealthClient(address, credentials.createInsecure());
  try {
    const metadata = new Metadata();
    metadata.set('authorization', \`Bearer \${tokens.reader}\`);
    const read = await unary((done) => chat.getNewMessage(GetNewMessageRequest.fromPartial({ chatId }), metadata, done));
    const served = await unary((done) => health.check(HealthCheckRequest.fromPartial({ service: '' }), done));
    return {
      loadedFrom,
      sentOffset: sent.dataOffset,
      synced: synced.map((m) => m.content),
      read: read.messages.map((m) => [messageTypeToJSON(m.messageType), m.content]),
      health: healthCheckResponse_ServingStatusToJSON(served.status),
    };
  } finally {
    chat.close();
    health.close();
  }
}

function unary(call) {
  return new Promise((resolve, reject) => call((error, response) => (error ? reject(error) : resolve(response))));
}

main(process.argv[2], process.argv[3], JSON.parse(process.argv[4])).then(
  (seen) => console.log(JSON.stringify(seen)),
  (error) => {
    console.error(error);
    process.exitCode = 1;
  },
);
`;
}

/**
 * TypeScript that uses the SDK's and the stubs' types. The `@ts-expect-error` fails the check
 * if the imports resolved to nothing typed (everything `any`).
 */
const TYPED_USE = `import { ChatSdkError, type ChatMessage, ChatSession, MessageType } from 'chat-rebuild/client';
import { ChatServiceClient, GetNewMessageRequest } from 'chat-rebuild/generated/chat/v1/chat';
import { HealthClient } from 'chat-rebuild/generated/health/v1/health';

export async function visit(address: string): Promise<ChatMessage> {
  const session = await ChatSession.open({ chatId: 'c', role: { kind: 'visitor', visitorId: 'v' }, servers: [address] });
  return session.send('hi');
}
export const request: GetNewMessageRequest = GetNewMessageRequest.fromPartial({ chatId: 'c' });
export const clients = [ChatServiceClient, HealthClient] as const;
export const visitorType: MessageType = MessageType.MESSAGE_TYPE_VISITOR;
export const isSdkError = (error: unknown): boolean => error instanceof ChatSdkError;
// @ts-expect-error the types are real: a session has no such method
export const missing = (session: ChatSession) => session.noSuchMethod();
`;

/** A TypeScript set-up a user may have: its tsconfig file name and module options. */
export interface TypeCheck {
  readonly tsconfig: string;
  readonly module: string;
  readonly moduleResolution: string;
}

/** The set-ups checked in each app (a CommonJS app's .ts files are CommonJS under node16). */
export const TYPE_CHECKS: Record<Flavour, readonly TypeCheck[]> = {
  esm: [
    { tsconfig: 'tsconfig.nodenext.json', module: 'nodenext', moduleResolution: 'nodenext' },
    { tsconfig: 'tsconfig.bundler.json', module: 'preserve', moduleResolution: 'bundler' },
  ],
  cjs: [{ tsconfig: 'tsconfig.node16.json', module: 'node16', moduleResolution: 'node16' }],
};

/** The app's script, run as `node main.js <address> <chatId>`: package.json makes it ESM or CommonJS. */
export const APP_SCRIPT = 'main.js';

/**
 * Writes a throwaway app into `dir`: package.json (`"type": "module"` for ESM, nothing for
 * CommonJS), the app's script, and TypeScript using the SDK with a tsconfig per set-up.
 * `typeRoots` gives the checks Node's types (an app would install @types/node itself).
 */
export function writeApp(dir: string, flavour: Flavour, typeRoots: string): void {
  mkdirSync(dir, { recursive: true });
  const manifest = {
    name: `sdk-user-${flavour}`,
    version: '1.0.0',
    private: true,
    ...(flavour === 'esm' ? { type: 'module' } : {}),
    // protobufjs (through @grpc/grpc-js) has a postinstall script that need not run.
    allowScripts: { protobufjs: false },
  };
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  writeFileSync(join(dir, APP_SCRIPT), appScript(flavour));
  writeFileSync(join(dir, 'typed-use.ts'), TYPED_USE);
  for (const check of TYPE_CHECKS[flavour]) {
    const compilerOptions = {
      module: check.module,
      moduleResolution: check.moduleResolution,
      target: 'es2022',
      strict: true,
      noEmit: true,
      skipLibCheck: false, // the package's declarations must compile under the user's settings
      types: ['node'],
      typeRoots: [typeRoots],
    };
    writeFileSync(join(dir, check.tsconfig), `${JSON.stringify({ compilerOptions, files: ['typed-use.ts'] }, null, 2)}\n`);
  }
}
