import { Metadata, type ServerMethodDefinition } from '@grpc/grpc-js';

/** The response metadata an insecure server puts on every chat call and health answer. */
export const INSECURE_HEADER = 'x-chat-insecure';

/** The services whose answers carry the mark: the chat itself, and health, which balancers and probes read. */
const MARKED_SERVICES = ['/chat.v1.ChatService/', '/grpc.health.v1.Health/'];

/**
 * On an insecure server (--insecure), adds `x-chat-insecure: true` to the
 * initial response metadata of every chat.v1.ChatService call and health check, so a client, a
 * balancer's probe or an operator with grpcurl -v can see that nobody's token is checked. (A
 * call refused before any response carries only trailers; the start-up log says it too.) A hook
 * of the server's interceptor (src/server/call-taps.ts).
 */
export function markInsecure(method: Pick<ServerMethodDefinition<unknown, unknown>, 'path'>): Metadata | undefined {
  return MARKED_SERVICES.some((service) => method.path.startsWith(service)) ? INSECURE_MARK : undefined;
}

/** Built once: the interceptor merges it into each marked answer's metadata, or sends a copy. */
const INSECURE_MARK = new Metadata();
INSECURE_MARK.set(INSECURE_HEADER, 'true');
