import { type Metadata, ServerInterceptingCall, type ServerInterceptor } from '@grpc/grpc-js';

/** The response metadata an insecure server puts on every chat call. */
export const INSECURE_HEADER = 'x-chat-insecure';

const CHAT_METHODS = '/chat.v1.ChatService/';

/**
 * On a server run with --insecure, adds `x-chat-insecure: true` to the initial response metadata
 * of every chat.v1.ChatService call, so a client (or an operator with grpcurl -v) can see that
 * nobody's token was checked. (A call refused before any response carries only trailers, and
 * health answers carry nothing: the start-up log says it too.)
 */
export const markInsecure: ServerInterceptor = (method, call) => {
  return new ServerInterceptingCall(call, {
    sendMetadata: (metadata: Metadata, next: (metadata: Metadata) => void) => {
      if (method.path.startsWith(CHAT_METHODS)) metadata.set(INSECURE_HEADER, 'true');
      next(metadata);
    },
  });
};
