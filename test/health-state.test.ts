import t from 'tap';
import { INITIAL_HEALTH, nextHealth } from '../src/health/state.js';
import type { HealthRole, MemberHealth, ProbeResult } from '../src/health/types.js';

const P: ProbeResult = { kind: 'primary', status: 200, latencyMs: 1, url: 'u' };
const N: ProbeResult = { kind: 'not_primary', status: 503, latencyMs: 1, url: 'u' };
const T = (superserver: boolean | null): ProbeResult => ({ kind: 'timeout', latencyMs: 250, superserver });
const E = (superserver: boolean | null): ProbeResult => ({
  kind: 'error',
  code: 'ECONNREFUSED',
  latencyMs: 1,
  superserver,
});

function run(seq: ProbeResult[], rise = 1, fall = 2, from: MemberHealth = INITIAL_HEALTH): HealthRole[] {
  let h = from;
  return seq.map((r, i) => (h = nextHealth(h, r, { rise, fall }, i * 100)).role);
}

// [name, sequence, rise, fall, expected roles after each probe]
const table: Array<[string, ProbeResult[], number, number, HealthRole[]]> = [
  ['never primary before the first answer', [T(null), E(null)], 1, 3, ['unknown', 'unknown']],
  ['first primary answer promotes with rise 1', [P], 1, 2, ['primary']],
  ['rise 3 needs three answers in a row', [P, P, P], 3, 2, ['unknown', 'unknown', 'primary']],
  [
    'a not-primary answer resets the rise count',
    [P, P, N, P, P, P],
    3,
    2,
    ['unknown', 'unknown', 'backup', 'backup', 'backup', 'primary'],
  ],
  [
    'a failed check resets the rise count',
    [P, T(null), P, P],
    2,
    5,
    ['unknown', 'unknown', 'unknown', 'primary'],
  ],
  ['not primary demotes at once (no fall)', [P, N], 1, 5, ['primary', 'backup']],
  ['timeout makes a primary suspect', [P, T(true)], 1, 2, ['primary', 'suspect']],
  ['suspect answering primary again is primary', [P, T(true), P], 1, 2, ['primary', 'suspect', 'primary']],
  [
    'suspect with SuperServer accepting never falls',
    [P, T(true), T(true), T(true), T(true)],
    1,
    2,
    ['primary', 'suspect', 'suspect', 'suspect', 'suspect'],
  ],
  [
    'timeouts with SuperServer down fall after fall',
    [P, T(false), T(false)],
    1,
    2,
    ['primary', 'suspect', 'unreachable'],
  ],
  [
    'fall 3 waits for the third',
    [P, T(false), T(false), T(false)],
    1,
    3,
    ['primary', 'suspect', 'suspect', 'unreachable'],
  ],
  [
    'dead status page, live SuperServer: stays primary',
    [P, E(true), E(true), E(true)],
    1,
    2,
    ['primary', 'primary', 'primary', 'primary'],
  ],
  [
    'dead status page and dead SuperServer: suspect then unreachable',
    [P, E(false), E(false)],
    1,
    2,
    ['primary', 'suspect', 'unreachable'],
  ],
  [
    'a live SuperServer between failures resets the fall count',
    [P, T(false), T(true), T(false)],
    1,
    2,
    ['primary', 'suspect', 'suspect', 'suspect'],
  ],
  [
    'backup that stops answering becomes unreachable after fall',
    [N, T(null), T(null)],
    1,
    2,
    ['backup', 'backup', 'unreachable'],
  ],
  [
    'unreachable member answering primary comes back (rise)',
    [P, E(false), E(false), P, P],
    2,
    2,
    ['unknown', 'unknown', 'unreachable', 'unreachable', 'primary'],
  ],
  ['suspect answering not primary is demoted', [P, T(true), N], 1, 2, ['primary', 'suspect', 'backup']],
];

for (const [name, seq, rise, fall, want] of table) {
  t.same(run(seq, rise, fall), want, name);
}

t.test('primarySince is set on promotion and kept through suspicion', async (t) => {
  let h = nextHealth(INITIAL_HEALTH, P, { rise: 1, fall: 2 }, 1000);
  t.equal(h.primarySince, 1000);
  h = nextHealth(h, T(true), { rise: 1, fall: 2 }, 1100);
  t.equal(h.role, 'suspect');
  t.equal(h.primarySince, 1000, 'a suspect primary resuming is not a newer primary');
  h = nextHealth(h, P, { rise: 1, fall: 2 }, 1200);
  t.equal(h.primarySince, 1000);
  h = nextHealth(h, N, { rise: 1, fall: 2 }, 1300);
  t.equal(h.primarySince, null);
  h = nextHealth(h, P, { rise: 1, fall: 2 }, 1400);
  t.equal(h.primarySince, 1400);
});

t.test('reachable, last result and latency follow each probe', async (t) => {
  let h = nextHealth(INITIAL_HEALTH, N, { rise: 1, fall: 2 }, 5);
  t.equal(h.reachable, true);
  t.equal(h.lastResult, 'not_primary 503');
  t.equal(h.lastCheckAt, 5);
  h = nextHealth(h, E(null), { rise: 1, fall: 2 }, 6);
  t.equal(h.reachable, false);
  t.equal(h.lastResult, 'error ECONNREFUSED');
  h = nextHealth(h, T(false), { rise: 1, fall: 2 }, 7);
  t.equal(h.lastResult, 'timeout, superserver down');
  t.equal(h.lastLatencyMs, 250);
});
