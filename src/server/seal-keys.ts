import { Sealer } from '../domain/seal.js';
import { type Config, ConfigError, readSettingFile } from './config.js';

/** A seal key shorter than this (in bytes, decoded) is refused at start-up: HMAC-SHA256 wants at least its hash's length. */
const MIN_SEAL_KEY_BYTES = 32;

/** Whether the server seals, and under which keys (their ids, the current one first; never the keys). */
export interface SealStatus {
  readonly seals: 'off' | 'on';
  readonly sealKeyIds: readonly string[];
}

/** What the start-up log says of seals. */
export function sealStatus(sealer: Sealer | undefined): SealStatus {
  return sealer ? { seals: 'on', sealKeyIds: sealer.keyIds } : { seals: 'off', sealKeyIds: [] };
}

/**
 * The sealer of `config.sealKeysFile`, undefined when none is given (seals off). The file is JSON:
 * `{"current": "2026-12", "keys": {"2026-11": "<base64>", "2026-12": "<base64>"}}`, each key at
 * least 32 bytes decoded. Throws a ConfigError, which stops start-up, naming the file and what is
 * wrong with it.
 */
export async function loadSealer(config: Pick<Config, 'sealKeysFile'>): Promise<Sealer | undefined> {
  const path = config.sealKeysFile;
  if (path === '') return undefined;
  const wrong = (what: string) => new ConfigError(`seal-keys-file "${path}" ${what}`);
  const text = readSettingFile('seal-keys-file', path).toString('utf8');
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw wrong(`is not JSON: ${(error as Error).message}`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw wrong('is not a JSON object');
  const { current, keys } = data as { current?: unknown; keys?: unknown };
  if (typeof keys !== 'object' || keys === null || Array.isArray(keys)) throw wrong('has no "keys" object ({"<key id>": "<base64 key>"})');
  const decoded = new Map<string, Buffer>();
  for (const [id, value] of Object.entries(keys)) {
    if (id === '' || id.includes('.')) throw wrong(`has the key id ${JSON.stringify(id)}; a key id must be non-empty and without dots`);
    if (typeof value !== 'string' || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(value.trim())) throw wrong(`has key "${id}" that is not a base64 string`);
    const key = Buffer.from(value.trim(), 'base64');
    if (key.length < MIN_SEAL_KEY_BYTES) throw wrong(`has key "${id}" of ${key.length} bytes; a seal key needs at least ${MIN_SEAL_KEY_BYTES}`);
    decoded.set(id, key);
  }
  if (typeof current !== 'string' || current === '') throw wrong('has no "current" key id (the key that seals)');
  if (!decoded.has(current)) throw wrong(`names "${current}" as current, which is not among its keys (${[...decoded.keys()].join(', ') || 'none'})`);
  return new Sealer({ current, keys: decoded });
}
