import { ChatSession, type ChatSessionOptions } from '../../src/client/index.js';
import { sessionToken } from './security.js';
import { type ServerProcess, spawnServer, startTestServer, type TestServer } from './servers.js';

/**
 * Sessions and servers for one describe block, all closed after each test. Call it inside
 * `describe`: it registers the `afterEach`.
 */
export function sessionHarness(defaults: Partial<ChatSessionOptions> = {}) {
  const sessions: ChatSession[] = [];
  const servers: TestServer[] = [];
  const processes: ServerProcess[] = [];
  afterEach(async () => {
    await Promise.all(sessions.splice(0).map((s) => s.close()));
    await Promise.all(servers.splice(0).map((s) => s.close()));
    await Promise.all(processes.splice(0).map((p) => p.kill()));
  });
  return {
    /**
     * Opens a session with small backoffs (and `defaults`), closed after the test. Unless given
     * one, its token is the test keys' for its role (test/support/security.ts).
     */
    async open(options: ChatSessionOptions): Promise<ChatSession> {
      const token = sessionToken(options.chatId, options.role);
      const session = await ChatSession.open({ backoff: { initialMs: 5, maxMs: 50 }, token, ...defaults, ...options });
      sessions.push(session);
      return session;
    },
    /** An in-process server on 127.0.0.1:0, stopped after the test. */
    async server(...args: Parameters<typeof startTestServer>): Promise<TestServer> {
      const server = await startTestServer(...args);
      servers.push(server);
      return server;
    },
    /** Server child processes, killed after the test. */
    async processes(count: number): Promise<ServerProcess[]> {
      const started = await Promise.all(Array.from({ length: count }, () => spawnServer()));
      processes.push(...started);
      return started;
    },
  };
}
