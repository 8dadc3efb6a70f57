/**
 * The server could not listen on one of its addresses (the gRPC one, or the metrics one). The
 * message names the address, says why in a few words and which settings to change; main prints
 * it in one line and exits with status 2.
 */
export class ListenError extends Error {
  override readonly name = 'ListenError';

  /**
   * @param attempt what could not be done, with the address: `cannot listen on 127.0.0.1:50051`
   * @param error what node or grpc-js threw
   * @param settings the flags to change: `--port or --host`
   */
  constructor(attempt: string, error: unknown, settings: string) {
    super(`${attempt}: ${listenFailure(error)}; choose another ${settings}`, { cause: error });
  }
}

/**
 * Why a socket would not listen, in a few words: node's reason and code (grpc-js lists them in
 * its message, node:http's error starts with them), or that the host did not resolve.
 */
function listenFailure(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const refused = /listen (E[A-Z]+): ([a-z][a-z ]*[a-z])/.exec(message);
  if (refused) return `${refused[2]} (${refused[1]})`;
  if (message.startsWith('Name resolution failed') || (error as NodeJS.ErrnoException).code === 'ENOTFOUND') {
    return 'the host name does not resolve to an address';
  }
  return message.replaceAll(/\s+/g, ' ');
}
