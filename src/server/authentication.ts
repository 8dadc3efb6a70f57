import type { Metadata } from '@grpc/grpc-js';
import { createLocalJWKSet, createRemoteJWKSet, errors, type JWTPayload, jwtVerify, type JWTVerifyOptions } from 'jose';
import { type Caller, INSECURE, type Principal, type Role } from '../domain/access.js';
import { ChatError } from '../domain/errors.js';
import { type Config, ConfigError, flagOf, readSettingFile } from './config.js';
import { VerifiedTokens } from './verified-tokens.js';

/** Who sent a call, from its metadata; refuses (UNAUTHENTICATED) a call without a good token. */
/** Who a call's caller is, from its metadata: at once when that needs no key lookup, or later. Throws (or rejects) a refusal. */
export type Authenticate = (metadata: Metadata) => Caller | Promise<Caller>;

/** The settings authentication reads. */
export type AuthConfig = Pick<
  Config,
  'insecure' | 'authHs256SecretFile' | 'authJwksFile' | 'authJwksUrl' | 'authIssuer' | 'authAudience' | 'authClockToleranceMs' | 'sealKeysFile'
>;

/** The request metadata that carries the token: `authorization: Bearer <jwt>`. */
export const AUTHORIZATION_HEADER = 'authorization';

/** The algorithms a JWKS key may sign with: asymmetric ones only, so a public key is never taken for a shared secret. */
const JWKS_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];

/** A shared secret shorter than this (in bytes) is refused at start-up: HS256 wants at least its hash's length. */
const MIN_SECRET_BYTES = 32;

const ROLES: ReadonlySet<string> = new Set<Role>(['visitor', 'agent', 'service']);

/**
 * The server's authentication, from its one key source: an HS256 secret file, a local JWKS file
 * or a JWKS URL (fetched by jose and cached). With `insecure` every caller is {@link INSECURE}.
 * Throws a ConfigError, which stops start-up: for `insecure` with a key source; without
 * `insecure`, for no key source or no seal keys (a secure server needs both: tokens say who may
 * send, seals say which history a Rebuild may bring back); for more than one key source; and for
 * a key file it cannot use. A token verified once is taken again without a check until it
 * expires, for at most a minute (src/server/verified-tokens.ts).
 */
export async function authenticator(config: AuthConfig): Promise<Authenticate> {
  const sources = (['authHs256SecretFile', 'authJwksFile', 'authJwksUrl'] as const).filter((key) => config[key] !== '');
  if (config.insecure && sources.length > 0) throw new ConfigError(`--insecure checks no tokens, so it cannot go with --${flagOf(sources[0]!)}: choose one`);
  if (config.insecure) return () => INSECURE;
  if (sources.length === 0) {
    throw new ConfigError(
      'no key source for bearer tokens: give --auth-hs256-secret-file, --auth-jwks-file or --auth-jwks-url (with --seal-keys-file), or --insecure for a development server that checks nobody',
    );
  }
  if (sources.length > 1) throw new ConfigError(`give one key source; got --${sources.map(flagOf).join(' and --')}`);
  const options: JWTVerifyOptions = {
    requiredClaims: ['exp', 'sub'],
    clockTolerance: config.authClockToleranceMs / 1000,
    ...(config.authIssuer !== '' && { issuer: config.authIssuer }),
    ...(config.authAudience !== '' && { audience: config.authAudience }),
  };
  const verify = await verifier(config, options);
  if (config.sealKeysFile === '') {
    throw new ConfigError(
      `--${flagOf(sources[0]!)} without --seal-keys-file would let any caller upload history nobody sent: give the seal keys all instances share (README, "Sealed history")`,
    );
  }
  const verified = new VerifiedTokens(config.authClockToleranceMs);
  return (metadata) => {
    const token = bearerToken(metadata);
    return verified.get(token) ?? verify(token).then((payload) => verified.remember(token, principalOf(payload), payload.exp!));
  };
}

/** The function that checks a token's signature and claims with the configured key source. */
async function verifier(config: AuthConfig, options: JWTVerifyOptions): Promise<(token: string) => Promise<JWTPayload>> {
  if (config.authHs256SecretFile !== '') {
    const secret = new TextEncoder().encode(readKeyFile('auth-hs256-secret-file', config.authHs256SecretFile).trim());
    if (secret.length < MIN_SECRET_BYTES) {
      throw new ConfigError(`auth-hs256-secret-file "${config.authHs256SecretFile}" holds ${secret.length} bytes; an HS256 secret needs at least ${MIN_SECRET_BYTES}`);
    }
    return async (token) => (await checked(jwtVerify(token, secret, { ...options, algorithms: ['HS256'] }))).payload;
  }
  if (config.authJwksFile !== '') {
    const keys = createLocalJWKSet(await readJwks(config.authJwksFile));
    return async (token) => (await checked(jwtVerify(token, keys, { ...options, algorithms: JWKS_ALGORITHMS }))).payload;
  }
  const keys = createRemoteJWKSet(jwksUrl(config.authJwksUrl));
  return async (token) => (await checked(jwtVerify(token, keys, { ...options, algorithms: JWKS_ALGORITHMS }), config.authJwksUrl)).payload;
}

/** The token of `authorization: Bearer <token>`; refuses a call without exactly one. */
function bearerToken(metadata: Metadata): string {
  const values = metadata.get(AUTHORIZATION_HEADER);
  if (values.length === 0) throw unauthenticated('no token: send the metadata "authorization: Bearer <token>"');
  if (values.length > 1) throw unauthenticated(`${values.length} authorization metadata values; send one`);
  const match = /^Bearer +(\S+)$/i.exec(String(values[0]).trim());
  if (!match) throw unauthenticated('the authorization metadata must read "Bearer <token>"');
  return match[1]!;
}

/** The principal a verified payload names; refuses one without a usable sub, role or (for a visitor) chat_id. */
function principalOf(payload: JWTPayload): Principal {
  const { sub, role, chat_id: chatId } = payload as JWTPayload & { role?: unknown; chat_id?: unknown };
  if (typeof sub !== 'string' || sub === '') throw unauthenticated('the token has no subject (sub)');
  if (typeof role !== 'string' || !ROLES.has(role)) {
    throw unauthenticated(`the token's role must be "visitor", "agent" or "service"; got ${JSON.stringify(role) ?? 'none'}`);
  }
  if (role !== 'visitor') return { sub, role: role as Role };
  if (typeof chatId !== 'string' || chatId === '') throw unauthenticated('a visitor token must name its chat (chat_id)');
  return { sub, role, chatId };
}

/**
 * jose's refusals of a token, as UNAUTHENTICATED with what is wrong. With `jwksUrl`, any other
 * failure is the key set's fetch (unreachable, timed out, not a JWKS): UNAVAILABLE, which a
 * client may retry here or on another server; jose fetches again on the next call.
 */
async function checked<T>(verification: Promise<T>, jwksUrl?: string): Promise<T> {
  try {
    return await verification;
  } catch (error) {
    const refusal = tokenRefusal(error);
    if (refusal !== error || jwksUrl === undefined) throw refusal;
    throw new ChatError('unavailable', `the server cannot fetch its token keys from --auth-jwks-url ${jwksUrl} (${fetchFailure(error)}); try again, or another server`);
  }
}

/** Why a fetch failed, as short as it can say it: undici's "fetch failed" hides the cause (ECONNREFUSED...). */
function fetchFailure(error: unknown): string {
  const { message, cause } = error as { message?: string; cause?: { code?: string; message?: string } };
  return [message, cause?.code ?? cause?.message].filter(Boolean).join(': ') || String(error);
}

function tokenRefusal(error: unknown): unknown {
  if (error instanceof errors.JWTExpired) {
    const exp = typeof error.payload.exp === 'number' ? new Date(error.payload.exp * 1000).toISOString() : 'an unknown time';
    return unauthenticated(`the token expired at ${exp}; get a fresh one`);
  }
  if (error instanceof errors.JWTClaimValidationFailed) return unauthenticated(`the token's "${error.claim}" claim is refused: ${error.message}`);
  if (error instanceof errors.JWSSignatureVerificationFailed) return unauthenticated("the token's signature does not verify with the server's keys");
  if (error instanceof errors.JOSEAlgNotAllowed) return unauthenticated(`the token's algorithm is not accepted: ${error.message}`);
  if (error instanceof errors.JWKSNoMatchingKey) return unauthenticated("no key of the server's JWKS matches the token (its kid and alg)");
  if (error instanceof errors.JWKSMultipleMatchingKeys) return unauthenticated("several keys of the server's JWKS match the token; give it a kid");
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid || error instanceof errors.JOSENotSupported) {
    return unauthenticated(`the token is malformed: ${error.message}`);
  }
  return error;
}

function unauthenticated(message: string): ChatError {
  return new ChatError('unauthenticated', message);
}

function readKeyFile(setting: string, path: string): string {
  return readSettingFile(setting, path).toString('utf8');
}

async function readJwks(path: string): Promise<Parameters<typeof createLocalJWKSet>[0]> {
  const text = readKeyFile('auth-jwks-file', path);
  try {
    const jwks = JSON.parse(text) as Parameters<typeof createLocalJWKSet>[0];
    if (!Array.isArray(jwks?.keys)) throw new Error('it has no "keys" array');
    createLocalJWKSet(jwks); // refuses a malformed set now rather than at the first call
    return jwks;
  } catch (error) {
    throw new ConfigError(`auth-jwks-file "${path}" is not a JWKS: ${(error as Error).message}`);
  }
}

function jwksUrl(raw: string): URL {
  try {
    const url = new URL(raw);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error(`the scheme is ${url.protocol}`);
    return url;
  } catch (error) {
    throw new ConfigError(`auth-jwks-url "${raw}" is not an http(s) URL: ${(error as Error).message}`);
  }
}
