import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { grpcurl, parseGrpcurl, parseResponses, splitCommandLine } from './support/grpcurl.js';
import { startTestServer, type TestServer } from './support/servers.js';

const README = fileURLToPath(new URL('../README.md', import.meta.url));
/** The address the README's examples are written against; the tests substitute a real one. */
const README_ADDRESS = 'localhost:50051';

/** A grpcurl command from the README, and the part of its output the README promises. */
interface Example {
  readonly command: string;
  /**
   * From a `#=> ...` line right after the command: fields the output must contain. An object
   * for a call with one response; an array, one element per response, for a stream.
   */
  readonly expected?: unknown;
}

/**
 * Every line starting with "grpcurl " inside a ```sh fenced block, in order, each with the
 * `#=> JSON` line that follows it, if any.
 */
function grpcurlExamples(markdown: string): Example[] {
  const examples: Example[] = [];
  let fence: string | undefined; // the open fence's marker, while inside a block
  let inSh = false;
  for (const line of markdown.split(/\r?\n/)) {
    const marker = /^\s*(`{3,}|~{3,})\s*([^\s`]*)/.exec(line);
    if (marker && fence === undefined) {
      [fence, inSh] = [marker[1], marker[2] === 'sh'];
    } else if (marker && fence !== undefined && marker[1]!.startsWith(fence) && marker[2] === '') {
      [fence, inSh] = [undefined, false];
    } else if (inSh && line.trimStart().startsWith('grpcurl ')) {
      examples.push({ command: line.trim() });
    } else if (inSh && line.trimStart().startsWith('#=> ') && examples.length > 0) {
      const last = examples.pop()!;
      examples.push({ ...last, expected: JSON.parse(line.trimStart().slice(4)) });
    }
  }
  return examples;
}

/**
 * Whether `actual` has every field of `expected` with the same value: objects are compared
 * field by field (extra fields allowed), arrays element by element (same length).
 */
function contains(actual: unknown, expected: unknown): boolean {
  if (Array.isArray(expected)) {
    return Array.isArray(actual) && actual.length === expected.length && expected.every((e, i) => contains(actual[i], e));
  }
  if (expected !== null && typeof expected === 'object') {
    if (actual === null || typeof actual !== 'object') return false;
    return Object.entries(expected).every(([key, value]) => contains((actual as Record<string, unknown>)[key], value));
  }
  return actual === expected;
}

/** A test title that still says which example it is when the command is long. */
function title(index: number, command: string): string {
  const max = 100;
  return `#${index + 1} ${command.length > max ? `${command.slice(0, max - 1)}…` : command}`;
}

// Read when the file loads, because mocha needs one it() per example before anything runs.
const readme = existsSync(README) ? readFileSync(README, 'utf8') : undefined;
const examples = readme === undefined ? [] : grpcurlExamples(readme);

// The examples run in order against one server, so a later one may rely on an earlier one
// (a Rebuild after the GetNewMessage that created the chat, say), as a reader's would.
describe('README grpcurl examples', () => {
  let server: TestServer;
  before(async () => {
    // The examples are the quick start's: they run against `npm start`, an insecure server.
    server = await startTestServer({ insecure: true });
  });
  after(async () => {
    await server?.close();
  });

  it('README.md has grpcurl examples in ```sh blocks', () => {
    expect(readme, `${README} is missing`).to.be.a('string');
    // An examples section that disappeared is a regression, not a pass.
    expect(examples, 'no line starting with "grpcurl " inside a ```sh block').to.not.be.empty;
  });

  examples.forEach(({ command, expected }, index) => {
    it(title(index, command), async () => {
      const argv = splitCommandLine(command);
      const parsed = parseGrpcurl(argv);
      expect(parsed.address, 'the README address').to.equal(README_ADDRESS);
      // grpcurl parses flags with Go's flag package, which stops at the first non-flag
      // argument: the real tool answers "Too many arguments" to flags after the address.
      expect(parsed.flagsAfterAddress, 'flags must come before the address for real grpcurl').to.equal(false);

      const output = await grpcurl(argv, server.address); // rejects on a non-OK status
      switch (parsed.command.verb) {
        case 'invoke': {
          // A stream's example must end by itself: the front end gives up after 10 s (DEADLINE_EXCEEDED).
          const responses = parseResponses(output);
          for (const response of responses) expect(response).to.be.an('object');
          if (!Array.isArray(expected)) expect(responses, 'one response').to.have.lengthOf(1);
          const actual = Array.isArray(expected) ? responses : responses[0];
          if (expected !== undefined) {
            expect(contains(actual, expected), `the output does not contain what the README shows:\n${output}`).to.equal(true);
          }
          break;
        }
        case 'list':
          for (const name of output.split('\n')) expect(name).to.match(/^[\w.]+$/);
          break;
        case 'describe':
          expect(output).to.match(/ is an? (service|method|message|enum):\n/);
          break;
      }
    });
  });
});
