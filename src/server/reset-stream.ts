import { constants } from 'node:http2';

/** The part of node's Http2Stream this needs. */
export interface ResettableStream {
  readonly rstCode?: number;
  readonly closed: boolean;
  close(code: number): void;
  once(event: 'close', listener: () => void): unknown;
}

function isResettable(value: unknown): value is ResettableStream {
  return typeof value === 'object' && value !== null && 'rstCode' in value && typeof (value as ResettableStream).close === 'function';
}

/**
 * Resets the HTTP/2 stream under a grpc-js server call with RST_STREAM ENHANCE_YOUR_CALM,
 * which gRPC clients (grpc-js, grpc-go, grpc-core) report as RESOURCE_EXHAUSTED. Returns false
 * when it found no stream; the caller then destroys the call.
 *
 * Why: a status goes out in HTTP/2 trailers, and trailers only after every DATA frame before
 * them, which wait for the peer's flow-control window. A peer that reads nothing never lets
 * the status through, and grpc-js offers no public way to end such a call. So this finds the
 * Http2Stream in grpc-js's call chain (`call.call`, then `nextCall` through any interceptors,
 * to the base call's `stream`) by duck typing. test/server/watch.test.ts checks what a client
 * that does not read sees, so a grpc-js upgrade that moves the stream fails a test.
 */
export function resetCall(call: object, code: number = constants.NGHTTP2_ENHANCE_YOUR_CALM): boolean {
  const stream = http2StreamOf(call);
  if (stream === undefined) return false;
  if (!stream.closed) stream.close(code);
  return true;
}

/**
 * The Http2Stream under a grpc-js server call (unary or streaming: grpc-js 1.14 runs both over
 * the same call chain), found as {@link resetCall} describes; undefined when it is not there.
 * Its 'close' is the one sure sign that an answer has left or been dropped: grpc-js tells a
 * unary handler neither. test/server/connection-limits.test.ts fails if it cannot be found.
 */
export function http2StreamOf(call: object): ResettableStream | undefined {
  let link: unknown = (call as { call?: unknown }).call;
  for (let depth = 0; typeof link === 'object' && link !== null && depth < 16; depth += 1) {
    const { stream } = link as { stream?: unknown };
    if (isResettable(stream)) return stream;
    link = (link as { nextCall?: unknown }).nextCall;
  }
  return undefined;
}
