import t from 'tap';
import { choosePrimary, sameDecision } from '../src/health/choose.js';
import { INITIAL_HEALTH } from '../src/health/state.js';
import type { AdminState, Decision, HealthRole, MemberView } from '../src/health/types.js';

function m(
  name: string,
  role: HealthRole,
  primarySince: number | null = role === 'primary' || role === 'suspect' ? 0 : null,
  admin: AdminState = 'enabled',
): MemberView {
  // Primaries here answered just now (after any claim): two of them are a real conflict.
  const lastPrimaryAnswerAt = role === 'primary' ? 1000 : null;
  return { name, admin, health: { ...INITIAL_HEALTH, role, primarySince, lastPrimaryAnswerAt } };
}
const d = (
  primary: string | null,
  accepting: boolean,
  conflict: string[] = [],
  fallback: string | null = null,
): Decision => ({ primary, accepting, conflict, fallback, cutReason: {} });

// [name, members, policy, previous decision, expected]
const table: Array<[string, MemberView[], 'newest' | 'hold', Decision | null, Decision]> = [
  [
    'fresh start: nothing known, nothing routed',
    [m('a', 'unknown'), m('b', 'unknown')],
    'newest',
    null,
    d(null, false),
  ],
  ['one primary', [m('a', 'primary'), m('b', 'backup')], 'newest', null, d('a', true)],
  ['primary is the second member', [m('a', 'backup'), m('b', 'primary')], 'newest', null, d('b', true)],
  ['no primary, both backups', [m('a', 'backup'), m('b', 'backup')], 'newest', d('a', true), d(null, false)],
  [
    'suspect primary keeps the role, holds clients',
    [m('a', 'suspect'), m('b', 'backup')],
    'newest',
    d('a', true),
    d('a', false),
  ],
  [
    'a confirmed primary beats a suspect one',
    [m('a', 'suspect', 0), m('b', 'primary', 50)],
    'newest',
    d('a', false),
    d('b', true),
  ],
  [
    'confirmed primary beats a suspect even if older',
    [m('a', 'suspect', 90), m('b', 'primary', 50)],
    'newest',
    d('a', false),
    d('b', true),
  ],
  [
    'two primaries: newest wins',
    [m('a', 'primary', 10), m('b', 'primary', 20)],
    'newest',
    d('a', true),
    d('b', true, ['a']),
  ],
  [
    'two primaries: newest wins (other order)',
    [m('a', 'primary', 30), m('b', 'primary', 20)],
    'newest',
    d('a', true),
    d('a', true, ['b']),
  ],
  [
    'two primaries, same time: list order',
    [m('a', 'primary', 10), m('b', 'primary', 10)],
    'newest',
    null,
    d('a', true, ['b']),
  ],
  [
    'hold policy keeps the established primary without new clients',
    [m('a', 'primary', 10), m('b', 'primary', 20)],
    'hold',
    d('a', true),
    d('a', false, ['a', 'b']),
  ],
  [
    'hold policy with no established primary holds everything',
    [m('a', 'primary', 10), m('b', 'primary', 20)],
    'hold',
    null,
    d(null, false, ['a', 'b']),
  ],
  [
    'draining primary keeps the role, takes no new clients',
    [m('a', 'primary', 0, 'draining'), m('b', 'backup')],
    'newest',
    d('a', true),
    d('a', false),
  ],
  [
    'disabled primary loses the role',
    [m('a', 'primary', 0, 'disabled'), m('b', 'backup')],
    'newest',
    d('a', true),
    d(null, false),
  ],
  [
    'disabled member cannot cause a conflict',
    [m('a', 'primary', 10), m('b', 'primary', 20, 'disabled')],
    'newest',
    d('a', true),
    d('a', true),
  ],
  [
    'unreachable members never hold the role',
    [m('a', 'unreachable'), m('b', 'unknown')],
    'newest',
    d('a', true),
    d(null, false),
  ],
  [
    'three members, one primary',
    [m('a', 'backup'), m('b', 'unreachable'), m('c', 'primary')],
    'newest',
    null,
    d('c', true),
  ],
];

for (const [name, members, policy, prev, want] of table) {
  const { primary, accepting, conflict } = choosePrimary(members, policy, prev);
  t.same(
    { primary, accepting, conflict },
    { primary: want.primary, accepting: want.accepting, conflict: want.conflict },
    name,
  );
}

// Fallback at the hold timeout and cut reasons: [name, members, policy, fallback, cutReason]
const acting: Array<[string, MemberView[], 'newest' | 'hold', string | null, Record<string, string>]> = [
  [
    'an accepting primary needs no fallback',
    [m('a', 'primary'), m('b', 'backup')],
    'newest',
    null,
    { b: 'demoted' },
  ],
  [
    'a suspect primary is the fallback',
    [m('a', 'suspect'), m('b', 'backup')],
    'newest',
    'a',
    { b: 'demoted' },
  ],
  [
    'a draining suspect primary is no fallback',
    [m('a', 'suspect', 0, 'draining'), m('b', 'backup')],
    'newest',
    null,
    { b: 'demoted' },
  ],
  [
    'a draining primary is no fallback',
    [m('a', 'primary', 0, 'draining'), m('b', 'backup')],
    'newest',
    null,
    { b: 'demoted' },
  ],
  [
    'no primary: no fallback',
    [m('a', 'backup'), m('b', 'unreachable')],
    'newest',
    null,
    { a: 'demoted', b: 'demoted' },
  ],
  [
    'a disabled primary is cut as disabled',
    [m('a', 'primary', 0, 'disabled'), m('b', 'backup')],
    'newest',
    null,
    { a: 'disabled', b: 'demoted' },
  ],
  [
    'the loser of a conflict is cut as conflict',
    [m('a', 'primary', 10), m('b', 'primary', 20)],
    'newest',
    null,
    { a: 'conflict' },
  ],
  [
    'hold policy: every claimant but the kept one is cut as conflict, no fallback',
    [m('a', 'primary', 10), m('b', 'primary', 20), m('c', 'backup')],
    'hold',
    null,
    { b: 'conflict', c: 'demoted' },
  ],
];

for (const [name, members, policy, fallback, cutReason] of acting) {
  const got = choosePrimary(members, policy, d('a', true));
  t.same({ fallback: got.fallback, cutReason: got.cutReason }, { fallback, cutReason }, name);
}

t.test('a decision is frozen data', async (t) => {
  const got = choosePrimary([m('a', 'primary', 10), m('b', 'primary', 20)], 'newest', null);
  t.ok(Object.isFrozen(got) && Object.isFrozen(got.conflict) && Object.isFrozen(got.cutReason));
});

t.test('sameDecision', async (t) => {
  t.ok(sameDecision(d('a', true), d('a', true)));
  t.notOk(sameDecision(null, d('a', true)));
  t.notOk(sameDecision(d('a', true), d('a', false)));
  t.notOk(sameDecision(d('a', true), d('b', true)));
  t.notOk(sameDecision(d('a', true, ['b']), d('a', true)));
  t.notOk(sameDecision(d('a', false, [], 'a'), d('a', false)), 'a changed fallback is a change');
  t.ok(
    sameDecision(d('a', true), { ...d('a', true), cutReason: { b: 'disabled' } }),
    'cut reasons alone do not change routing',
  );
});
