import type { Principal } from '../domain/access.js';

/** How many verified tokens a server remembers; past this the oldest is forgotten. */
const MAX_TOKENS = 10_000;
/**
 * The longest a verified token is taken without verifying it again, whatever its expiry: so a
 * key removed from the key set (a JWKS rotated out) stops admitting its tokens within this.
 */
const MAX_REMEMBERED_MS = 60_000;

/**
 * Tokens whose signature and claims were verified, with whom they name, until their expiry (and
 * the clock tolerance) or {@link MAX_REMEMBERED_MS}, whichever comes first. A client sends the
 * same token with every call for its lifetime; verifying it once, not on each call, spares the
 * signature check and a promise a call. Only a verified token is ever remembered, so a refused
 * one costs its check every time, as before. Bounded: the oldest is forgotten first.
 */
export class VerifiedTokens {
  private readonly tokens = new Map<string, { readonly principal: Principal; readonly untilMs: number }>();

  constructor(
    private readonly toleranceMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whom `token` names, if it was verified and has not expired since; undefined otherwise. */
  get(token: string): Principal | undefined {
    const known = this.tokens.get(token);
    if (known === undefined) return undefined;
    if (this.now() < known.untilMs) return known.principal;
    this.tokens.delete(token);
    return undefined;
  }

  /** Remembers a verified `token` naming `principal`, whose `exp` claim (seconds since the epoch) is `expSeconds`. */
  remember(token: string, principal: Principal, expSeconds: number): Principal {
    const untilMs = Math.min(expSeconds * 1000 + this.toleranceMs, this.now() + MAX_REMEMBERED_MS);
    if (this.tokens.size >= MAX_TOKENS) this.tokens.delete(this.tokens.keys().next().value!);
    this.tokens.set(token, { principal, untilMs });
    return principal;
  }
}
