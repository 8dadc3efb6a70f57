import { type ServerMethodDefinition, status } from '@grpc/grpc-js';
import { Counter, Histogram, type Registry } from 'prom-client';
import type { CallTap } from './call-taps.js';

/** The labels of every gRPC series: go-grpc-prometheus's, so its dashboards and alerts apply. */
type CallLabel = 'grpc_type' | 'grpc_service' | 'grpc_method';
type CallLabels = Readonly<Record<CallLabel, string>>;

const CALL_LABELS: CallLabel[] = ['grpc_type', 'grpc_service', 'grpc_method'];

/** Each status code's name as Go's codes.Code.String() gives it, which go-grpc-prometheus puts in grpc_code. */
const GO_CODE_NAMES: Readonly<Record<status, string>> = {
  [status.OK]: 'OK',
  [status.CANCELLED]: 'Canceled',
  [status.UNKNOWN]: 'Unknown',
  [status.INVALID_ARGUMENT]: 'InvalidArgument',
  [status.DEADLINE_EXCEEDED]: 'DeadlineExceeded',
  [status.NOT_FOUND]: 'NotFound',
  [status.ALREADY_EXISTS]: 'AlreadyExists',
  [status.PERMISSION_DENIED]: 'PermissionDenied',
  [status.RESOURCE_EXHAUSTED]: 'ResourceExhausted',
  [status.FAILED_PRECONDITION]: 'FailedPrecondition',
  [status.ABORTED]: 'Aborted',
  [status.OUT_OF_RANGE]: 'OutOfRange',
  [status.UNIMPLEMENTED]: 'Unimplemented',
  [status.INTERNAL]: 'Internal',
  [status.UNAVAILABLE]: 'Unavailable',
  [status.DATA_LOSS]: 'DataLoss',
  [status.UNAUTHENTICATED]: 'Unauthenticated',
};

/**
 * A call tap (src/server/call-taps.ts) that counts every call of every service under
 * go-grpc-prometheus's names in `registry`: grpc_server_started_total as a call begins,
 * grpc_server_handled_total by grpc_code (the status's name as go-grpc-prometheus writes it,
 * Go's codes.Code: OK, InvalidArgument, ResourceExhausted, so its dashboards and alerts match) and grpc_server_handling_seconds (prom-client's default buckets, which are
 * Prometheus's, as go-grpc-prometheus uses) as it ends, and the messages each way. A call
 * refused before any handler runs (undecodable, too large, its deadline passed) counts as well;
 * one cancelled before a status went out (by its client, or a reset of its stream) counts as
 * CANCELLED.
 */
export function countCalls(registry: Registry): CallTap {
  const registers = [registry];
  const started = new Counter({ name: 'grpc_server_started_total', help: 'RPCs started on the server.', labelNames: CALL_LABELS, registers });
  const handled = new Counter({
    name: 'grpc_server_handled_total',
    help: 'RPCs completed on the server, whatever their status.',
    labelNames: [...CALL_LABELS, 'grpc_code'],
    registers,
  });
  const seconds = new Histogram({
    name: 'grpc_server_handling_seconds',
    help: 'How long RPCs took, from their start to their status (a watch: its whole life).',
    labelNames: CALL_LABELS,
    registers,
  });
  const received = new Counter({ name: 'grpc_server_msg_received_total', help: 'Request messages received.', labelNames: CALL_LABELS, registers });
  const sent = new Counter({ name: 'grpc_server_msg_sent_total', help: 'Response messages sent.', labelNames: CALL_LABELS, registers });
  const labelsByPath = new Map<string, CallLabels>();

  return (method) => {
    let labels = labelsByPath.get(method.path);
    if (!labels) labelsByPath.set(method.path, (labels = callLabels(method)));
    started.inc(labels);
    const end = (code: status, ms: number) => {
      handled.inc({ ...labels, grpc_code: GO_CODE_NAMES[code] ?? String(code) });
      seconds.observe(labels, ms / 1000);
    };
    return {
      received: () => received.inc(labels),
      sent: () => sent.inc(labels),
      ended: ({ code, ms }) => end(code, ms),
      cancelled: (ms) => end(status.CANCELLED, ms),
    };
  };
}

/** A method's labels: its kind, and its service and name from its path (`/chat.v1.ChatService/GetNewMessage`). */
function callLabels({ path, requestStream, responseStream }: ServerMethodDefinition<unknown, unknown>): CallLabels {
  const [service = '', name = ''] = path.replace(/^\//, '').split('/');
  return {
    grpc_type: requestStream ? (responseStream ? 'bidi_stream' : 'client_stream') : responseStream ? 'server_stream' : 'unary',
    grpc_service: service,
    grpc_method: name,
  };
}
