import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { RebuildCause } from '../domain/message.js';
import type { RebuildReason } from '../domain/store.js';
import { countCalls } from './call-metrics.js';
import type { CallTap } from './call-taps.js';

/** What the chat gauges read at each scrape. */
export interface Holdings {
  readonly chats: number;
  readonly messages: number;
  /** As the byte budgets count them (src/domain/held-bytes.ts). */
  readonly bytes: number;
  /** Open WatchChat streams. */
  readonly watchers: number;
  /** Transcripts of ended chats offered and not yet acknowledged (WatchTranscripts). */
  readonly transcriptsPending: number;
}

/** Why chats were evicted: untouched for --idle-chat-ttl-ms, or the heap above its high-water mark. */
export type EvictionCause = 'idle' | 'heap';

// Every label value, so each series is exported from the start at 0 (a rate needs a first sample).
// `satisfies` keeps these lists in step with the domain's words.
const REBUILD_REASONS = Object.keys({ created: 0, merged: 0, epoch_mismatch: 0 } satisfies Record<RebuildReason, 0>);
const REBUILD_CAUSES = Object.keys({ missing_chat: 0, epoch_mismatch: 0, caller_ahead: 0 } satisfies Record<RebuildCause, 0>);
const EVICTION_CAUSES = Object.keys({ idle: 0, heap: 0 } satisfies Record<EvictionCause, 0>);

/**
 * One server's Prometheus metrics, in a registry of its own (never prom-client's global one), so
 * servers in one process (the tests') do not mix: the gRPC calls (src/server/call-metrics.ts),
 * the chats, and prom-client's default process metrics. Counters are told as things happen;
 * gauges read the store at each scrape.
 */
export class ServerMetrics {
  readonly registry = new Registry();
  /** The tap that counts every call (a tap of interceptCalls: src/server/call-taps.ts). */
  readonly calls: CallTap = countCalls(this.registry);
  private readonly rebuilds = this.counter('chat_rebuilds_total', 'Rebuild calls answered, by what they came to: created, merged, epoch_mismatch.', 'reason', REBUILD_REASONS);
  private readonly rebuildsRequired = this.counter(
    'chat_rebuild_required_total',
    'Sends and reads (watches too) answered RESULT_CODE_REBUILD_REQUIRED, by why: missing_chat, epoch_mismatch, caller_ahead.',
    'reason',
    REBUILD_CAUSES,
  );
  private readonly evictions = this.counter('chat_evictions_total', 'Chats evicted from memory, by cause: idle (TTL sweep), heap (high-water mark).', 'cause', EVICTION_CAUSES);

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  /** Counts a Rebuild answered, by what it came to. */
  rebuilt(reason: RebuildReason): void {
    this.rebuilds.inc({ reason });
  }

  /** Counts a send or read answered REBUILD_REQUIRED, by why. */
  rebuildRequired(cause: RebuildCause): void {
    this.rebuildsRequired.inc({ reason: cause });
  }

  /** Counts chats evicted. */
  evicted(cause: EvictionCause, chats: number): void {
    this.evictions.inc({ cause }, chats);
  }

  /** Exports the chat gauges, each read from `read` at every scrape (so they cost nothing between scrapes). Once per server. */
  gaugeHoldings(read: () => Holdings): void {
    const gauge = (name: string, help: string, value: (holdings: Holdings) => number) =>
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.set(value(read()));
        },
      });
    gauge('chat_chats', 'Chats held.', (h) => h.chats);
    gauge('chat_messages', 'Messages held, over all chats.', (h) => h.messages);
    gauge('chat_bytes', 'Bytes held over all chats, as the byte budgets count them (--max-held-bytes).', (h) => h.bytes);
    gauge('chat_watchers', 'Open WatchChat streams.', (h) => h.watchers);
    gauge('chat_transcripts_pending', 'Transcripts of ended chats not yet acknowledged by an archiver.', (h) => h.transcriptsPending);
  }

  /** A counter with one label, every value of it exported at 0 from the start. */
  private counter<L extends string>(name: string, help: string, label: L, values: readonly string[]): Counter<L> {
    const counter = new Counter<L>({ name, help, labelNames: [label], registers: [this.registry] });
    for (const value of values) counter.inc({ [label]: value } as Record<L, string>, 0);
    return counter;
  }
}
