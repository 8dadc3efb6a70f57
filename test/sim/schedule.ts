import fc from 'fast-check';

/** The cast of every run: three servers and six devices of one chat (two of them the visitor's). */
export const SERVER_NAMES = ['S0', 'S1', 'S2'] as const;
export const CLIENT_NAMES = ['visitor-a', 'visitor-b', 'agent-1', 'agent-2', 'bot', 'notices'] as const;

/** How a device's session receives in the background: a WatchChat stream, or polling. */
export type Receive = 'watch' | 'poll';

/** Fault rates in percent. */
export interface FaultRates {
  readonly lostRequest: number;
  readonly lostResponse: number;
  readonly duplicate: number;
}

/**
 * One step of a schedule. `wait` is how many deliveries the step waits for its operation;
 * `luck` seeds the network's choices during the step (which call goes next, which fails).
 */
export type Action =
  | { readonly kind: 'send'; readonly client: number; readonly wait: number; readonly luck: number }
  | { readonly kind: 'sync'; readonly client: number; readonly wait: number; readonly luck: number }
  | { readonly kind: 'deliver'; readonly count: number; readonly luck: number }
  | { readonly kind: 'reopen'; readonly client: number }
  | { readonly kind: 'crash'; readonly server: number }
  | { readonly kind: 'restart'; readonly server: number }
  | { readonly kind: 'down'; readonly server: number }
  | { readonly kind: 'up'; readonly server: number }
  | { readonly kind: 'evict'; readonly server: number }
  | { readonly kind: 'switch'; readonly client: number; readonly server: number }
  | { readonly kind: 'rehome'; readonly client: number; readonly server: number }
  | { readonly kind: 'restart-watched'; readonly server: number; readonly gap: number; readonly luck: number }
  | { readonly kind: 'flap'; readonly server: number; readonly times: number; readonly gap: number; readonly luck: number }
  | { readonly kind: 'faults'; readonly rates: FaultRates };

/** A whole run: what happens while failures last; then everyone syncs on `finalServer`. */
export interface Schedule {
  /** Seeds the epochs, the clients' jitter, and (with each step's luck) the network's choices. */
  readonly seed: number;
  /** Pages and uploads of a few messages each, so paging, truncated answers and chunked rebuilds run. */
  readonly smallPages: boolean;
  readonly faults: FaultRates;
  /** The server each client starts on (by CLIENT_NAMES index). */
  readonly homes: readonly number[];
  /** How each client receives (by CLIENT_NAMES index). */
  readonly receive: readonly Receive[];
  readonly actions: readonly Action[];
  readonly finalServer: number;
}

/** How long a schedule may be, by default. */
export const MAX_ACTIONS = 60;
/** The longest an operation is waited for, in deliveries, before its wait is aborted. */
export const MAX_WAIT = 40;

const client = fc.integer({ min: 0, max: CLIENT_NAMES.length - 1 });
const server = fc.integer({ min: 0, max: SERVER_NAMES.length - 1 });
const wait = fc.integer({ min: 0, max: MAX_WAIT });
const luck = fc.nat(9999);

export const faultRates: fc.Arbitrary<FaultRates> = fc.record({
  lostRequest: fc.integer({ min: 0, max: 30 }),
  lostResponse: fc.integer({ min: 0, max: 30 }),
  duplicate: fc.integer({ min: 0, max: 20 }),
});

export const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('send' as const), client, wait, luck }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('sync' as const), client, wait, luck }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('deliver' as const), count: fc.integer({ min: 1, max: 12 }), luck }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reopen' as const), client }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('crash' as const), server }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('restart' as const), server }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('down' as const), server }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('up' as const), server }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('evict' as const), server }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('switch' as const), client, server }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('rehome' as const), client, server }) },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('restart-watched' as const), server, gap: fc.integer({ min: 0, max: 6 }), luck }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('flap' as const),
      server,
      times: fc.integer({ min: 1, max: 4 }),
      gap: fc.integer({ min: 0, max: 6 }),
      luck,
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('faults' as const), rates: faultRates }) },
);

/** Schedules of up to `maxActions` steps; `receive` forces every device's way of receiving. */
export function schedules(maxActions = MAX_ACTIONS, receive?: Receive): fc.Arbitrary<Schedule> {
  const way: fc.Arbitrary<Receive> = receive ? fc.constant(receive) : fc.constantFrom('watch', 'poll');
  return fc.record({
    seed: fc.integer(),
    smallPages: fc.boolean(),
    faults: faultRates,
    homes: fc.array(server, { minLength: CLIENT_NAMES.length, maxLength: CLIENT_NAMES.length }),
    receive: fc.array(way, { minLength: CLIENT_NAMES.length, maxLength: CLIENT_NAMES.length }),
    actions: fc.array(action, { minLength: 1, maxLength: maxActions, size: 'max' }),
    finalServer: server,
  });
}

/** One action as a line a person can follow. */
export function describeAction(a: Action): string {
  switch (a.kind) {
    case 'send':
      return `${CLIENT_NAMES[a.client]} sends, waits ${a.wait} deliveries for the ack`;
    case 'sync':
      return `${CLIENT_NAMES[a.client]} syncs, waits ${a.wait} deliveries`;
    case 'deliver':
      return `network delivers ${a.count} calls`;
    case 'reopen':
      return `${CLIENT_NAMES[a.client]} restarts: closes its session, opens it again from its store`;
    case 'switch':
      return `${CLIENT_NAMES[a.client]} switches to ${SERVER_NAMES[a.server]} (its connections drop: open watches break)`;
    case 'rehome':
      return `${CLIENT_NAMES[a.client]}'s transport moves to ${SERVER_NAMES[a.server]} quietly (no failure; its open watch stays where it is)`;
    case 'restart-watched':
      return `the most watched server (else ${SERVER_NAMES[a.server]}) crashes, ${a.gap} deliveries, restarts empty on its address`;
    case 'flap':
      return `${SERVER_NAMES[a.server]} flaps ${a.times}x (crash, ${a.gap} deliveries, restart, ${a.gap} deliveries)`;
    case 'faults':
      return `faults: ${describeFaults(a.rates)}`;
    default:
      return `${SERVER_NAMES[a.server]} ${a.kind === 'evict' ? 'evicts the chat' : a.kind === 'crash' ? 'crashes (stays down)' : a.kind === 'restart' ? 'restarts' : `goes ${a.kind}`}`;
  }
}

export function describeFaults(rates: FaultRates): string {
  return `lost requests ${rates.lostRequest}%, lost responses ${rates.lostResponse}%, duplicates ${rates.duplicate}%`;
}

/** A schedule as numbered lines. */
export function describeSchedule(s: Schedule): string {
  return [
    `seed ${s.seed}, ${s.smallPages ? 'small pages and uploads' : 'default page size'}, ${describeFaults(s.faults)}`,
    `  start: ${CLIENT_NAMES.map((name, i) => `${name} on ${SERVER_NAMES[s.homes[i]!]} (${s.receive[i] === 'poll' ? 'polling' : 'watching'})`).join(', ')}`,
    ...s.actions.map((a, i) => `  ${String(i + 1).padStart(2)}. ${describeAction(a)}`),
    `  then: faults stop, all servers up, everyone on ${SERVER_NAMES[s.finalServer]}, drain and sync until stable; then each device sends once, heard by every other through its receiver alone; then notices ends the chat (ENDED), everyone syncs, later sends are refused`,
  ].join('\n');
}
