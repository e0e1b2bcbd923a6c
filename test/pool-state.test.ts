/** The read pool's pure decisions: the member reducer and the plan, as tables; no sockets, no timers. */
import t from 'tap';
import type { PoolConfig } from '../src/config/types.js';
import {
  connectFailedState,
  INITIAL_POOL_STATE,
  nextPoolState,
  type PoolMemberState,
  type PoolObservation,
} from '../src/health/pool-state.js';
import { observeRound, type PoolAnswer } from '../src/health/pool-probe.js';
import { PoolPlan, slowStartWeight } from '../src/mirror/pool-plan.js';

const rules = {
  rise: 2,
  maxLagBytes: 1000,
  lagExitAfterMs: 500,
  lagReturnBelowBytes: 400,
  lagReturnAfterMs: 1000,
};
const ok = (lagBytes: number | null = 0): PoolObservation => ({
  kind: 'qualifies',
  lagBytes,
  streaming: null,
});

/** Runs observations at the given times; returns the statuses after each. */
function run(steps: [number, PoolObservation][], from: PoolMemberState = INITIAL_POOL_STATE): string[] {
  let s = from;
  return steps.map(([at, obs]) => (s = nextPoolState(s, obs, rules, at)).status);
}

t.test('joins after rise qualifying checks, leaves at once on 503, primary and death', async (t) => {
  t.same(
    run([
      [0, ok()],
      [100, ok()],
      [200, ok()],
    ]),
    ['joining', 'in', 'in'],
  );
  const seq = (k: PoolObservation['kind']) =>
    run([
      [0, ok()],
      [100, ok()],
      [200, { kind: k, lagBytes: null, streaming: null }],
      [300, ok()],
    ]);
  t.same(
    seq('not_qualifies'),
    ['joining', 'in', 'out', 'joining'],
    'a 503 leaves at once, rejoins after rise',
  );
  t.same(seq('primary'), ['joining', 'in', 'primary', 'joining'], '"primary" is its own state, not down');
  t.same(seq('dead'), ['joining', 'in', 'down', 'joining']);
  t.same(seq('failing'), ['joining', 'in', 'failing', 'joining'], 'a REST failure is not a role change');
});

t.test(
  'lag hysteresis: out only after the limit held, back only below the return mark for a while',
  async (t) => {
    const s = run([
      [0, ok(0)],
      [100, ok(0)],
      [200, ok(5000)], // above: timer starts
      [400, ok(200)], // a blip: back under, timer reset
      [500, ok(5000)],
      [900, ok(5000)], // 400 ms above: still in
      [1000, ok(5000)], // 500 ms: out
      [1100, ok(800)], // under the limit but above the return mark: still out
      [1200, ok(300)], // under the return mark: timer starts
      [1700, ok(300)],
      [2100, ok(300)], // 900 ms
      [2200, ok(300)], // 1000 ms: back
    ]);
    t.same(s, [
      'joining',
      'in',
      'in',
      'in',
      'in',
      'in',
      'lagging',
      'lagging',
      'lagging',
      'lagging',
      'lagging',
      'in',
    ]);
    t.same(
      run([
        [0, ok(null)],
        [100, ok(null)],
      ]),
      ['joining', 'in'],
      'unknown lag changes nothing',
    );
  },
);

t.test('a replica that does not stream is not in the pool', async (t) => {
  t.same(
    run([
      [0, ok()],
      [100, ok()],
      [200, { kind: 'qualifies', lagBytes: 0, streaming: false }],
    ]),
    ['joining', 'in', 'not_streaming'],
  );
});

t.test('a failed connect takes the member out of new clients way at once', async (t) => {
  let s = INITIAL_POOL_STATE;
  s = nextPoolState(s, ok(), rules, 0);
  s = nextPoolState(s, ok(), rules, 1);
  t.equal(connectFailedState(s, 2).status, 'failing');
  t.equal(connectFailedState(INITIAL_POOL_STATE, 2), INITIAL_POOL_STATE);
});

t.test('observeRound measures lag against the primary and tells streaming from not', async (t) => {
  const primary = (replication?: unknown[]): PoolAnswer => ({
    status: 503,
    body: {
      role: 'master',
      timeline: 2,
      xlog: { location: 10_000 },
      ...(replication ? { replication } : {}),
    },
  });
  const replica = (replayed: number, timeline = 2): PoolAnswer => ({
    status: 200,
    body: { role: 'replica', state: 'running', timeline, xlog: { replayed_location: replayed } },
  });
  let r = observeRound(
    new Map<string, PoolAnswer>([
      ['a', primary()],
      ['b', replica(9_000)],
      ['c', replica(10_000, 1)],
      ['d', { status: null, portUp: false }],
      ['e', { status: null, portUp: true }],
      ['f', { status: 500, body: null }],
    ]),
  );
  let o = r.observations;
  t.equal(r.memory.namesMatch, false, 'no name seen: whether names match is not known');
  t.equal(r.memory.leader, 'a', 'the primary is remembered');
  t.same(o.get('a'), { kind: 'primary', lagBytes: null, streaming: null });
  t.same(o.get('b'), { kind: 'qualifies', lagBytes: 1000, streaming: null });
  t.equal(o.get('c')!.streaming, false, 'another timeline: not streaming from this primary');
  t.equal(o.get('d')!.kind, 'dead');
  t.equal(o.get('e')!.kind, 'failing');
  t.equal(o.get('f')!.kind, 'failing', 'an unexpected answer is a failed check, not "not in pool"');
  r = observeRound(
    new Map<string, PoolAnswer>([
      ['a', primary([{ application_name: 'b', state: 'streaming' }])],
      ['b', replica(10_000)],
      ['c', replica(10_000)],
    ]),
  );
  o = r.observations;
  t.equal(o.get('b')!.streaming, true);
  t.equal(o.get('c')!.streaming, false, 'the primary names its replicas and c is not among them');
  t.equal(r.memory.namesMatch, true, 'names learned');
  // A new primary right after a leader change: no replica has reconnected to it yet.
  const round = (names: boolean) =>
    observeRound(
      new Map<string, PoolAnswer>([
        ['a', primary()],
        ['b', replica(10_000)],
      ]),
      { namesMatch: names, leader: null },
    ).observations.get('b')!.streaming;
  t.equal(round(true), false, 'once names are known, a primary listing nobody: nobody streams');
  t.equal(round(false), null, 'names never matched: unknown (member names may not be Patroni names)');
  t.equal(
    observeRound(new Map<string, PoolAnswer>([['b', replica(10_000)]]), {
      namesMatch: true,
      leader: null,
    }).observations.get('b')!.streaming,
    null,
    'no primary ever answered: unknown',
  );
});

const pool = (over: Partial<PoolConfig> = {}): PoolConfig => ({
  name: 'r',
  listen: { host: '127.0.0.1', port: 0 },
  checks: {},
  balance: 'leastconn',
  slowStartMs: 1000,
  rise: 1,
  maxLagBytes: null,
  lagExitAfterMs: 0,
  lagReturnBelowBytes: null,
  lagReturnAfterMs: 0,
  whenEmpty: 'hold',
  onLag: 'keep',
  onPrimary: 'keep',
  ...over,
});
const st = (status: PoolMemberState['status'], inSince: number | null = -10_000): PoolMemberState => ({
  ...INITIAL_POOL_STATE,
  status,
  inSince: status === 'in' ? inSince : null,
});

t.test(
  'PoolPlan: least connections with slow start, sessions kept or cut per setting, when_empty',
  async (t) => {
    const view = (
      states: Record<string, PoolMemberState>,
      p: Partial<PoolConfig> = {},
      admin: Record<string, 'enabled' | 'draining' | 'disabled'> = {},
    ) =>
      new PoolPlan({
        pool: pool(p),
        states: new Map(Object.entries(states)),
        admin: new Map(Object.entries(admin)),
        primary: 'p',
        now: 0,
        cursor: { next: 0 },
      });
    const plan = view({ p: st('primary'), a: st('in'), b: st('in'), c: st('lagging'), d: st('down') });
    const load = { a: 3, b: 1 } as Record<string, number>;
    t.equal(
      plan.pick((m) => load[m] ?? 0),
      'b',
      'fewest connections',
    );
    t.ok(
      plan.keeps('p') && plan.keeps('c') && plan.keeps('a'),
      'primary and lagging sessions kept by default',
    );
    t.notOk(plan.keeps('d'), 'a dead member is cut');
    t.equal(plan.cutReason('d'), 'pool_down');
    const cut = view({ p: st('primary'), c: st('lagging') }, { onLag: 'cut', onPrimary: 'cut' });
    t.notOk(cut.keeps('c'));
    t.notOk(cut.keeps('p'));
    const slow = view({ a: st('in', -5000), b: st('in', -100) });
    t.equal(
      slow.pick(() => 0),
      'a',
      'a member that just joined gets a smaller share',
    );
    t.equal(
      view({ a: st('in'), b: st('in') }, {}, { a: 'draining' }).pick(() => 0),
      'b',
      'a drained member takes no new client',
    );
    t.notOk(view({ a: st('in') }, {}, { a: 'disabled' }).keeps('a'), 'disable cuts');
    const empty = { p: st('primary'), a: st('out') };
    t.equal(view(empty).pick(), null, 'hold');
    t.equal(view(empty, { whenEmpty: 'primary' }).pick(), 'p', 'to the primary');
    t.ok(view(empty, { whenEmpty: 'refuse' }).refuses, 'refuse');
    const rr = view({ a: st('in'), b: st('in') }, { balance: 'roundrobin' });
    t.same([rr.pick(() => 0), rr.pick(() => 0), rr.pick(() => 0)], ['a', 'b', 'a']);
  },
);

/** A Patroni status body: the primary (503 on /replica) with its replication list, or a replica. */
const leaderAns = (streamingTo: string[] = []): PoolAnswer => ({
  status: 503,
  body: {
    role: 'master',
    timeline: 3,
    xlog: { location: 10_000 },
    ...(streamingTo.length
      ? { replication: streamingTo.map((n) => ({ application_name: n, state: 'streaming' })) }
      : {}),
  },
});
const replicaAns = (status = 200): PoolAnswer => ({
  status,
  body: { role: 'replica', state: 'running', timeline: 3, xlog: { replayed_location: 10_000 } },
});

t.test('a round with no primary: judged by what the last primary answered', async (t) => {
  const memory = { namesMatch: true, leader: 'a' };
  const cases: [string, PoolAnswer, boolean | 'held' | null][] = [
    ['the last primary answers as a replica (demoted)', replicaAns(), false],
    ['the last primary answers 503 as a replica (stopping)', replicaAns(503), false],
    ['the last primary is dead', { status: null, portUp: false }, false],
    ['the last primary check failed, its port up (REST error)', { status: null, portUp: true }, 'held'],
    ['the last primary answered 500', { status: 500, body: null }, 'held'],
  ];
  for (const [what, a, want] of cases) {
    const r = observeRound(
      new Map<string, PoolAnswer>([
        ['a', a],
        ['b', replicaAns()],
      ]),
      memory,
    );
    t.equal(r.observations.get('b')!.streaming, want, what);
    t.equal(r.memory.leader, 'a', `${what}: still the one to judge by`);
  }
  t.equal(
    observeRound(new Map<string, PoolAnswer>([['b', replicaAns()]]), memory).observations.get('b')!.streaming,
    null,
    'the last primary not checked by this pool (reloaded away): unknown',
  );
  t.equal(
    observeRound(
      new Map<string, PoolAnswer>([
        ['a', replicaAns()],
        ['b', replicaAns()],
      ]),
      { namesMatch: false, leader: 'a' },
    ).observations.get('b')!.streaming,
    false,
    'a primary gone means nobody streams, whether or not names match',
  );
  const next = observeRound(
    new Map<string, PoolAnswer>([
      ['a', replicaAns()],
      ['b', leaderAns(['a'])],
    ]),
    memory,
  );
  t.equal(next.memory.leader, 'b', 'a new primary replaces the last');
  t.equal(next.observations.get('a')!.streaming, true, 'and judges streaming from then on');
});

t.test('with no primary to judge by, a member keeps its place but gains none', async (t) => {
  const held: PoolObservation = { kind: 'qualifies', lagBytes: null, streaming: 'held' };
  const inState = nextPoolState(nextPoolState(INITIAL_POOL_STATE, ok(), rules, 0), ok(), rules, 100);
  t.equal(inState.status, 'in');
  t.equal(nextPoolState(inState, held, rules, 200).status, 'in', 'in stays in');
  const lagging: PoolMemberState = { ...inState, status: 'lagging', lagged: true };
  t.equal(nextPoolState(lagging, held, rules, 200).status, 'lagging', 'lagging stays lagging');
  for (const status of ['unknown', 'joining', 'not_streaming', 'out', 'down', 'failing', 'primary'] as const)
    t.equal(
      nextPoolState({ ...INITIAL_POOL_STATE, status, ok: 1 }, held, rules, 200).status,
      'not_streaming',
      `${status} does not join`,
    );
});

t.test('a switchover, round by round: no replica takes reads until the new primary lists it', async (t) => {
  // a: leader, then demoted; b: promoted; c: the other replica. rise 2.
  const rounds: [string, Record<string, PoolAnswer>, Record<string, string>][] = [
    [
      'before',
      { a: leaderAns(['b', 'c']), b: replicaAns(), c: replicaAns() },
      { b: 'joining', c: 'joining' },
    ],
    ['before', { a: leaderAns(['b', 'c']), b: replicaAns(), c: replicaAns() }, { b: 'in', c: 'in' }],
    [
      'a stops: primary, listing nobody',
      { a: leaderAns(), b: replicaAns(), c: replicaAns() },
      { a: 'primary', b: 'not_streaming', c: 'not_streaming' },
    ],
    [
      'no primary: a answers as a replica, b not promoted yet',
      { a: replicaAns(503), b: replicaAns(), c: replicaAns() },
      { a: 'out', b: 'not_streaming', c: 'not_streaming' },
    ],
    [
      'still no primary: a is a replica again',
      { a: replicaAns(), b: replicaAns(), c: replicaAns() },
      { a: 'not_streaming', b: 'not_streaming', c: 'not_streaming' },
    ],
    [
      'b promoted, nobody reconnected yet',
      { a: replicaAns(), b: leaderAns(), c: replicaAns() },
      { a: 'not_streaming', b: 'primary', c: 'not_streaming' },
    ],
    [
      'c streams from b',
      { a: replicaAns(), b: leaderAns(['c']), c: replicaAns() },
      { a: 'not_streaming', b: 'primary', c: 'joining' },
    ],
    [
      'both stream from b',
      { a: replicaAns(), b: leaderAns(['c', 'a']), c: replicaAns() },
      { a: 'joining', b: 'primary', c: 'in' },
    ],
  ];
  let memory = { namesMatch: false, leader: null as string | null };
  const states = new Map<string, PoolMemberState>();
  let at = 0;
  for (const [what, answers, want] of rounds) {
    const r = observeRound(new Map(Object.entries(answers)), memory);
    memory = r.memory;
    at += 200;
    for (const [m, obs] of r.observations)
      states.set(m, nextPoolState(states.get(m) ?? INITIAL_POOL_STATE, obs, rules, at));
    const got = Object.fromEntries(Object.keys(want).map((m) => [m, states.get(m)!.status]));
    t.same(got, want, what);
  }
});

t.test('slow start: a member back from a lag exit is warm, a cold one ramps up', async (t) => {
  const slowMs = 10_000;
  const steps = (obs: [number, PoolObservation][], from = INITIAL_POOL_STATE) => {
    let s = from;
    for (const [at, o] of obs) s = nextPoolState(s, o, rules, at);
    return s;
  };
  const warm = steps([
    [0, ok(0)],
    [100, ok(0)], // in
    [20_000, ok(5000)],
    [20_500, ok(5000)], // lagging
    [21_000, ok(300)],
    [22_000, ok(300)], // back in
  ]);
  t.equal(warm.status, 'in');
  t.equal(warm.inSince, 100, 'the join time is kept through the lag exit');
  t.equal(slowStartWeight(warm, slowMs, 22_000), 1, 'full share at once');
  const cold = steps([
    [0, ok(5000)],
    [500, ok(5000)], // lagging before ever being in
    [1000, ok(300)],
    [2000, ok(300)],
  ]);
  t.equal(cold.status, 'in');
  t.equal(slowStartWeight(cold, slowMs, 2000), 0.1, 'never in before: slow start from its first join');
  const restarted = steps(
    [
      [30_000, { kind: 'dead', lagBytes: null, streaming: null }],
      [31_000, ok()],
      [31_100, ok()],
    ],
    warm,
  );
  t.equal(restarted.inSince, 31_100, 'back from down: slow start again');
  const plan = new PoolPlan({
    pool: pool({ slowStartMs: slowMs }),
    states: new Map([
      ['a', { ...INITIAL_POOL_STATE, status: 'in' as const, inSince: 0 }],
      ['b', warm],
    ]),
    admin: new Map(),
    primary: null,
    now: 22_000,
    cursor: { next: 0 },
  });
  const load: Record<string, number> = { a: 3, b: 2 };
  t.equal(
    plan.pick((m) => load[m] ?? 0),
    'b',
    'with its kept sessions the fewest, the returning member gets the next client',
  );
});
