import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InterceptingCall, type Interceptor, type Listener, type Metadata } from '@grpc/grpc-js';
import { SignJWT } from 'jose';
import {
  AddAgentMessageRequest,
  AddVisitorMessageRequest,
  type ChatMessage,
  MessageType,
  type RebuildRequest,
} from '../../generated/chat/v1/chat.js';
import type { Role as SessionRole } from '../../src/client/index.js';
import type { Principal } from '../../src/domain/access.js';
import { type Sealable, Sealer } from '../../src/domain/seal.js';
import type { Config } from '../../src/server/config.js';
import { CHAT_ID_HEADER } from '../../src/server/placement.js';

/**
 * Servers under test run secure, as a deployment does: bearer tokens checked with an HS256
 * secret and history sealed, both from the files written here once per test run. The clients
 * the helpers make carry a token for whoever each request says it is, minted with that secret.
 * A test that wants an insecure server, or keys of its own, says so in its server's settings.
 */

const directory = mkdtempSync(join(tmpdir(), 'chat-test-keys-'));
process.on('exit', () => rmSync(directory, { recursive: true, force: true }));

const secret = randomBytes(32).toString('hex');
const sealKey = randomBytes(32);
const SEAL_KEY_ID = 'test';
const secretFile = join(directory, 'hs256-secret');
const sealKeysFile = join(directory, 'seal-keys.json');
writeFileSync(secretFile, secret);
writeFileSync(sealKeysFile, JSON.stringify({ current: SEAL_KEY_ID, keys: { [SEAL_KEY_ID]: sealKey.toString('base64') } }));

/** What a client may do for a test server: mint its tokens, and seal its uploads, with the test keys. */
export interface TestKeys {
  /** The server checks tokens with the test secret. */
  readonly testTokens: boolean;
  /** The server seals with the test key. */
  readonly testSeals: boolean;
}

/**
 * A test server's settings: `overrides` over the test keys, where the overrides choose neither
 * `insecure` nor keys of their own; and which of the test keys the server then uses.
 */
export function testSecurity(overrides: Partial<Config>): { readonly config: Partial<Config> } & TestKeys {
  if (overrides.insecure) return { config: overrides, testTokens: false, testSeals: false };
  const ownTokens = Boolean(overrides.authHs256SecretFile || overrides.authJwksFile || overrides.authJwksUrl);
  const config = { ...(!ownTokens && { authHs256SecretFile: secretFile }), sealKeysFile, ...overrides };
  return { config, testTokens: !ownTokens, testSeals: config.sealKeysFile === sealKeysFile };
}

/** The same for a spawned server's environment: the test keys unless `env` says INSECURE (even empty) or gives keys. */
export function testSecurityEnv(env: Readonly<Record<string, string>>): { readonly env: Record<string, string> } & TestKeys {
  if ('INSECURE' in env) return { env: { ...env }, testTokens: false, testSeals: false };
  const ownTokens = ['AUTH_HS256_SECRET_FILE', 'AUTH_JWKS_FILE', 'AUTH_JWKS_URL'].some((name) => env[name]);
  const merged = { ...(!ownTokens && { AUTH_HS256_SECRET_FILE: secretFile }), SEAL_KEYS_FILE: sealKeysFile, ...env };
  return { env: merged, testTokens: !ownTokens, testSeals: merged.SEAL_KEYS_FILE === sealKeysFile };
}

/**
 * The test keys as JSON ({"secret", "sealKeyId", "sealKey"}, the key in base64), for a client in
 * another language that mints its own tokens and seals (test/interop/chat_client.py reads it from
 * CHAT_TEST_KEYS).
 */
export function testKeysJson(): string {
  return JSON.stringify({ secret, sealKeyId: SEAL_KEY_ID, sealKey: sealKey.toString('base64') });
}

/** A test server's sealer: what seals the histories tests upload as if a server had issued them. */
const sealer = new Sealer({ current: SEAL_KEY_ID, keys: new Map([[SEAL_KEY_ID, sealKey]]) });

/** The seal a test server gives `message` in chat `chatId`: for requests a test encodes by hand. */
export function testSeal(chatId: string, message: Sealable): string {
  return sealer.seal(chatId, message);
}

/** How long a seal of the test key is, in bytes: what it adds to a stored message. */
export const TEST_SEAL_BYTES = sealer.seal('c', { id: 'm', type: 2, senderId: '', content: '', sendTime: new Date(0) }).length;

/** A token a test server accepts for `principal`, valid for ten minutes. */
export function testToken(principal: Principal): Promise<string> {
  const { sub, role, chatId } = principal;
  return new SignJWT({ role, ...(chatId !== undefined && { chat_id: chatId }) })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime('10m')
    .sign(new TextEncoder().encode(secret));
}

/** The principal an SDK session of `role` in chat `chatId` is; a visitor without an id is `visitor`. */
export function sessionPrincipal(chatId: string, role: SessionRole): Principal {
  switch (role.kind) {
    case 'visitor':
      return { sub: role.visitorId || 'visitor', role: 'visitor', chatId };
    case 'agent':
      return { sub: role.agentId, role: 'agent' };
    case 'service':
      return { sub: role.serviceId, role: 'service' };
  }
}

/** The token source of an SDK session of `role` in chat `chatId` on a secure test server: a fresh token for each call. */
export function sessionToken(chatId: string, role: SessionRole): () => Promise<string> {
  return () => testToken(sessionPrincipal(chatId, role));
}

/** What a chat.v1 request carries that says who sends it. */
interface AnyRequest {
  readonly chatId?: string;
  readonly agentId?: string;
  readonly message?: Partial<ChatMessage>;
  readonly chat?: RebuildRequest['chat'];
  readonly readerId?: string;
  readonly participantId?: string;
}

/**
 * Who a chat.v1 request says its caller is: a visitor message's sender (`visitor` when unnamed)
 * for its chat; an agent message's agent, or for BOT and SYSTEM messages a service; for reads,
 * watches and Rebuilds a service, which may touch any chat and name its visitor.
 */
export function requestPrincipal(method: string, request: AnyRequest): Principal {
  if (method.endsWith('/AddVisitorMessage')) return { sub: claim(request.message?.senderId, 'visitor'), role: 'visitor', chatId: claim(request.chatId, 'none') };
  if (method.endsWith('/AddAgentMessage')) {
    const type = request.message?.messageType;
    const service = type === MessageType.MESSAGE_TYPE_BOT || type === MessageType.MESSAGE_TYPE_SYSTEM;
    return { sub: claim(request.agentId, service ? 'service' : 'agent'), role: service ? 'service' : 'agent' };
  }
  // A reader or typist named by the request speaks as an agent of that name; unnamed, as a service.
  if (method.endsWith('/MarkRead') && request.readerId) return { sub: claim(request.readerId, 'service'), role: 'agent' };
  if (method.endsWith('/SetTyping') && request.participantId) return { sub: claim(request.participantId, 'service'), role: 'agent' };
  return { sub: 'service', role: 'service' };
}

/** A claim taken from a request: `fallback` for an empty one, or one too long for a header (a fuzzed id). */
function claim(value: string | undefined, fallback: string): string {
  return value && value.length <= 1024 ? value : fallback;
}

/**
 * What the raw bytes of a send (from a client with identity serializers) say, when they decode;
 * nothing (a service: reads, watches, Rebuilds and undecodable requests) otherwise. Raw
 * Rebuilds are not sealed: their bytes go as the test made them.
 */
function decodedSends(method: string, bytes: Uint8Array): AnyRequest {
  try {
    if (method.endsWith('/AddVisitorMessage')) return AddVisitorMessageRequest.decode(bytes);
    if (method.endsWith('/AddAgentMessage')) return AddAgentMessageRequest.decode(bytes);
  } catch {
    // undecodable: the server refuses it before it reads the token
  }
  return {};
}

/**
 * A Rebuild request whose unsealed messages are sealed with the test key, as the server that
 * accepted them would have: tests build the histories they upload by hand. A message without a
 * send time gets one now, the time the server would give it, so the seal covers what it checks.
 */
export function sealedUpload(request: RebuildRequest): RebuildRequest {
  const chat = request.chat;
  if (!chat || chat.messages.every((m) => m.seal !== undefined)) return request;
  return { ...request, chat: { ...chat, messages: sealed(chat.id, chat.messages) } };
}

/**
 * `messages` of chat `chatId` with the test key's seal on each one without a seal, as a server
 * would have given them: for copies a test builds by hand (an upload, a local store). A message
 * without a send time gets one now.
 */
export function sealed<
  M extends Pick<ChatMessage, 'id' | 'messageType' | 'senderId' | 'content'> & {
    sendTime?: Date | undefined;
    seal?: string | undefined;
    event?: ChatMessage['event'];
    attachments?: ChatMessage['attachments'];
  },
>(chatId: string, messages: readonly M[]): (M & { sendTime: Date; seal: string; attachments: ChatMessage['attachments'] })[] {
  const now = new Date();
  return messages.map((m) => {
    const sendTime = m.sendTime ?? now;
    const attachments = m.attachments ?? [];
    const extras = { ...(m.event && { event: { ...m.event, kind: m.event.kind as number } }), ...(attachments.length > 0 && { attachments }) };
    const seal = m.seal ?? sealer.seal(chatId, { id: m.id, type: m.messageType as number, senderId: m.senderId, content: m.content, sendTime, ...extras });
    return { ...m, sendTime, seal, attachments };
  });
}

/**
 * A client interceptor for chat.v1 calls to a test server. With `testTokens` it holds back the
 * call's start until its request is known, then adds the bearer token of
 * {@link requestPrincipal} and the request's chat id as `x-chat-id` (unless the call has one); with `testSeals` it seals a Rebuild's upload ({@link sealedUpload}).
 * A call that already carries an authorization header keeps it, and its request as it is.
 */
export const actAsRequestSays = ({ testTokens, testSeals }: TestKeys): Interceptor => (options, nextCall) => {
  const method = options.method_definition.path;
  let started: { metadata: Metadata; listener: Listener; next: (metadata: Metadata, listener: Listener) => void } | undefined;
  return new InterceptingCall(nextCall(options), {
    start(metadata, listener, next) {
      if (!testTokens || metadata.get('authorization').length > 0) return next(metadata, listener);
      started = { metadata, listener, next };
    },
    sendMessage(message, next) {
      const raw = message instanceof Uint8Array;
      const request = testSeals && !raw && method.endsWith('/Rebuild') ? sealedUpload(message as RebuildRequest) : message;
      const held = started;
      if (!held) return next(request);
      started = undefined;
      const says = raw ? decodedSends(method, message) : (message as AnyRequest);
      void testToken(requestPrincipal(method, says)).then((token) => {
        const metadata = held.metadata.clone(); // the caller's may be shared by its other calls
        metadata.set('authorization', `Bearer ${token}`);
        // As the SDK does: a balancer routes the call by it, and --require-chat-id-header wants
        // it. A chat id no header can carry (a fuzzed one) goes without: the server refuses it.
        const chatId = says.chatId ?? says.chat?.id;
        if (chatId && metadata.get(CHAT_ID_HEADER).length === 0 && /^[\x20-\x7e]{1,1024}$/.test(chatId)) metadata.set(CHAT_ID_HEADER, chatId);
        held.next(metadata, held.listener);
        next(request);
      });
    },
  });
};
