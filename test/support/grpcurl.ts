import type { JsonValue } from '@bufbuild/protobuf';
import { describe, invokeAll, listServices, reflectRegistry } from './reflection-client.js';

/** What a grpcurl command line asks for. */
export type GrpcurlCommand =
  | { readonly verb: 'list'; readonly symbol?: string }
  | { readonly verb: 'describe'; readonly symbol?: string }
  | { readonly verb: 'invoke'; readonly method: string; readonly data: string; readonly emitDefaults: boolean; readonly headers: readonly string[] };

/** A parsed command line, and how it was written. */
export interface ParsedGrpcurl {
  readonly command: GrpcurlCommand;
  /** The address as written; {@link grpcurl} replaces it. */
  readonly address: string;
  /**
   * True when a flag came after the address. grpcurl parses flags with Go's `flag` package,
   * which stops at the first argument that is not a flag, so the real tool answers such a
   * line with "Too many arguments"; this front end accepts it anyway.
   */
  readonly flagsAfterAddress: boolean;
}

/**
 * Splits one shell command line into words as sh would: whitespace separates, single quotes
 * are literal, double quotes keep spaces, a backslash escapes (inside double quotes only
 * before $ ` " \). No expansion of any kind: README examples need none.
 */
export function splitCommandLine(line: string): string[] {
  const words: string[] = [];
  let word: string | undefined; // undefined between words, so '' can still be a word
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote === "'" && c !== "'") word += c;
    else if (c === '\\' && quote !== "'" && (quote !== '"' || '$`"\\'.includes(line[i + 1] ?? ''))) word = (word ?? '') + (line[++i] ?? '');
    else if (quote === '"' && c !== '"') word += c;
    else if (c === quote) quote = undefined;
    else if (c === "'" || c === '"') [quote, word] = [c, word ?? ''];
    else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else word = (word ?? '') + c;
  }
  if (quote) throw new Error(`unbalanced ${quote} in: ${line}`);
  if (word !== undefined) words.push(word);
  return words;
}

/**
 * Parses grpcurl's arguments (with or without a leading "grpcurl"): `-plaintext ADDR list
 * [SERVICE]`, `-plaintext ADDR describe [SYMBOL]`, `-plaintext [-H 'name: value']... [-d JSON] ADDR
 * pkg.Service/Method`.
 * Flags this front end does not implement are refused rather than ignored, so an example
 * that depends on one fails loudly.
 */
export function parseGrpcurl(argv: readonly string[]): ParsedGrpcurl {
  const args = argv[0] === 'grpcurl' ? argv.slice(1) : [...argv];
  const positional: string[] = [];
  let data: string | undefined;
  let plaintext = false;
  let emitDefaults = false;
  let flagsAfterAddress = false;
  const headers: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('-') || arg === '-') {
      positional.push(arg);
      continue;
    }
    if (positional.length > 0) flagsAfterAddress = true;
    // Go flags take one or two dashes, and a value either as the next word or after "=".
    const [name = '', inline] = arg.replace(/^--?/, '').split(/=(.*)/s);
    if (name === 'plaintext') plaintext = inline === undefined || inline === 'true';
    else if (name === 'emit-defaults') emitDefaults = inline === undefined || inline === 'true';
    else if (name === 'd') {
      data = inline ?? args[++i];
      if (data === undefined) throw new Error('-d needs a value');
      if (data === '@') throw new Error('-d @ (request from stdin) is not supported');
    } else if (name === 'H') {
      const header = inline ?? args[++i];
      if (header === undefined || !/^[\w-]+:/.test(header)) throw new Error(`-H needs "name: value"; got ${header}`);
      headers.push(header);
    } else throw new Error(`unsupported grpcurl flag: ${arg}`);
  }
  // This server speaks plaintext only; without -plaintext real grpcurl would try TLS and fail.
  if (!plaintext) throw new Error('grpcurl needs -plaintext to talk to this server');
  const [address, verbOrMethod, symbol, ...extra] = positional;
  if (!address || !verbOrMethod) throw new Error(`too few arguments: ${argv.join(' ')}`);
  const tooMany = () => new Error(`too many arguments: ${argv.join(' ')}`);
  if (verbOrMethod === 'list' || verbOrMethod === 'describe') {
    if (extra.length > 0) throw tooMany();
    return { address, flagsAfterAddress, command: { verb: verbOrMethod, ...(symbol ? { symbol } : {}) } };
  }
  if (symbol !== undefined) throw tooMany();
  return { address, flagsAfterAddress, command: { verb: 'invoke', method: verbOrMethod, data: data ?? '{}', emitDefaults, headers } };
}

/**
 * Runs a grpcurl command line against `address` (replacing the address written in it) and
 * returns what grpcurl would print: service or method names one a line, a description, or
 * each response as 2-space-indented protojson (a stream's responses one after the other, once
 * it has ended). A non-OK status rejects with grpc-js's ServiceError, whose `code` is the
 * status.
 */
export async function grpcurl(argv: readonly string[], address: string): Promise<string> {
  const { command } = parseGrpcurl(argv);
  switch (command.verb) {
    case 'list': {
      if (!command.symbol) return (await listServices(address)).join('\n');
      const service = (await reflectRegistry(address, command.symbol)).getService(command.symbol);
      if (!service) throw new Error(`${command.symbol} is not a service`);
      return service.methods.map((m) => `${service.typeName}.${m.name}`).join('\n');
    }
    case 'describe': {
      const symbols = command.symbol ? [command.symbol] : await listServices(address);
      const texts: string[] = [];
      for (const symbol of symbols) texts.push(await describe(address, symbol));
      return texts.join('\n');
    }
    case 'invoke': {
      const request = JSON.parse(command.data) as JsonValue;
      const responses = await invokeAll(address, command.method, request, { emitDefaults: command.emitDefaults, headers: command.headers });
      return responses.map((response) => JSON.stringify(response, null, 2)).join('\n');
    }
  }
}

/** The responses in grpcurl's output for a call: JSON objects one after another, each from column 0. */
export function parseResponses(output: string): unknown[] {
  return output.trim() === '' ? [] : output.split(/\n(?=\{)/).map((text) => JSON.parse(text) as unknown);
}
