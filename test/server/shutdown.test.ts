import { EventEmitter, once } from 'node:events';
import { credentials } from '@grpc/grpc-js';
import { expect } from 'chai';
import { ResultCode } from '../../generated/chat/v1/chat.js';
import { type HealthCheckResponse, HealthCheckResponse_ServingStatus, HealthClient } from '../../generated/health/v1/health.js';
import { REPEATED_SIGNAL_MS, shutdownOnSignals } from '../../src/server/shutdown.js';
import { chatApi } from '../support/chat-api.js';
import { memoryLogger } from '../support/memory-log.js';
import { startTestServer, type TestServer } from '../support/servers.js';
import { describeSettlement, settleWithin } from '../support/settle.js';

/** A server that records what the shutdown asks of it; its stop ends when the test says. */
function fakeServer() {
  const calls: string[] = [];
  let finish = () => {};
  const stopping = new Promise<void>((resolve) => (finish = resolve));
  return {
    calls,
    finish: () => finish(),
    server: {
      drain: () => void calls.push('drain'),
      stop: (graceMs?: number) => {
        calls.push(`stop ${graceMs}`);
        return stopping;
      },
    },
  };
}

describe('shutdown on signals', () => {
  const config = { drainMs: 60_000, shutdownGraceMs: 5_000 };

  it('drains for drain-ms, then closes with the grace, and stops listening for signals once stopped', async () => {
    const { calls, finish, server } = fakeServer();
    const { logger, lines } = memoryLogger();
    const signals = new EventEmitter();
    const stopped = shutdownOnSignals(server, { ...config, drainMs: 20 }, logger, { signals });
    expect(signals.listenerCount('SIGTERM') + signals.listenerCount('SIGINT')).to.equal(2);
    signals.emit('SIGTERM', 'SIGTERM');
    expect(calls).to.deep.equal(['drain']);
    finish();
    await stopped;
    expect(calls).to.deep.equal(['drain', 'stop 5000']);
    expect(lines.map((l) => l.msg)).to.deep.equal(['shutting down', 'drain over', 'listener closed', 'stopped']);
    expect(lines[0]).to.include({ signal: 'SIGTERM', drainMs: 20, shutdownGraceMs: 5000 });
    expect(signals.listenerCount('SIGTERM') + signals.listenerCount('SIGINT')).to.equal(0);
  });

  it('closes at once with drain-ms 0', async () => {
    const { calls, finish, server } = fakeServer();
    const { logger, lines } = memoryLogger();
    const signals = new EventEmitter();
    const stopped = shutdownOnSignals(server, { ...config, drainMs: 0 }, logger, { signals });
    signals.emit('SIGINT', 'SIGINT');
    expect(calls).to.deep.equal(['drain', 'stop 5000']);
    finish();
    await stopped;
    expect(lines.map((l) => l.msg)).to.deep.equal(['shutting down', 'listener closed', 'stopped']);
  });

  it('takes each further signal as a skip of the current step: the drain, then the grace; a repeat counts once', async () => {
    const { calls, finish, server } = fakeServer();
    const { logger, lines } = memoryLogger();
    const signals = new EventEmitter();
    let now = 1_000;
    const stopped = shutdownOnSignals(server, config, logger, { signals, now: () => now });

    signals.emit('SIGTERM', 'SIGTERM');
    now += 0.5; // npm forwarding what the process-group kill delivered too
    signals.emit('SIGTERM', 'SIGTERM');
    expect(calls, 'a repeat').to.deep.equal(['drain']);

    now += REPEATED_SIGNAL_MS;
    signals.emit('SIGINT', 'SIGINT');
    expect(calls, 'the second signal').to.deep.equal(['drain', 'stop 5000']);
    now += 1;
    signals.emit('SIGINT', 'SIGINT');
    expect(calls, 'its repeat').to.deep.equal(['drain', 'stop 5000']);

    now += REPEATED_SIGNAL_MS;
    signals.emit('SIGTERM', 'SIGTERM');
    expect(calls, 'the third').to.deep.equal(['drain', 'stop 5000', 'stop 0']);
    finish();
    await stopped;
    expect(lines.map((l) => l.msg)).to.deep.equal([
      'shutting down',
      'signal taken as a repeat',
      'drain cut short',
      'listener closed',
      'signal taken as a repeat',
      'cutting off the calls in flight',
      'stopped',
    ]);
    expect(lines[1]).to.include({ signal: 'SIGTERM', sinceMs: 0.5, repeatedSignalMs: REPEATED_SIGNAL_MS });
    expect(lines[2]).to.include({ signal: 'SIGINT', drainedMs: 501 });
    expect(lines.at(-1)).to.include({ ms: 1002 });
  });
});

describe('a server draining and stopping', () => {
  let server: TestServer;
  let health: HealthClient;
  beforeEach(async () => {
    server = await startTestServer();
    health = new HealthClient(server.address, credentials.createInsecure());
  });
  afterEach(async () => {
    health.close();
    await server.close();
  });

  it('drains: health says NOT_SERVING (pushed to its watchers too), and calls are still served', async () => {
    const watch = health.watch({ service: 'chat.v1.ChatService' });
    watch.on('error', () => {}); // CANCELLED, when the test is done with it
    const next = async () => ((await once(watch, 'data'))[0] as HealthCheckResponse).status;
    expect(await next()).to.equal(HealthCheckResponse_ServingStatus.SERVING);
    server.server.drain();
    expect(await next()).to.equal(HealthCheckResponse_ServingStatus.NOT_SERVING);
    const checked = await new Promise<HealthCheckResponse>((resolve, reject) => health.check({ service: '' }, (e, r) => (e ? reject(e) : resolve(r))));
    expect(checked.status).to.equal(HealthCheckResponse_ServingStatus.NOT_SERVING);
    const read = await chatApi(server.client).getNewMessage({ chatId: 'c', visitorOffset: 0, agentOffset: 0 });
    expect(read.code).to.equal(ResultCode.RESULT_CODE_REBUILD_REQUIRED);
    const closed = new Promise((resolve) => watch.on('close', resolve));
    watch.cancel();
    await closed;
  });

  it('cuts off sooner when stopped again with a shorter grace', async () => {
    const watch = health.watch({ service: '' }); // a call that never ends by itself
    watch.on('error', () => {});
    await once(watch, 'data');
    const first = server.server.stop(60_000);
    const second = server.server.stop(0);
    expect(second).to.equal(first);
    const settled = await settleWithin(first, 10_000);
    expect(settled.state, describeSettlement(settled)).to.equal('resolved');
  });
});
