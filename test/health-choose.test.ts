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
const d = (primary: string | null, accepting: boolean, conflict: string[] = []): Decision => ({
  primary,
  accepting,
  conflict,
});

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
  t.same(choosePrimary(members, policy, prev), want, name);
}

t.test('sameDecision', async (t) => {
  t.ok(sameDecision(d('a', true), d('a', true)));
  t.notOk(sameDecision(null, d('a', true)));
  t.notOk(sameDecision(d('a', true), d('a', false)));
  t.notOk(sameDecision(d('a', true), d('b', true)));
  t.notOk(sameDecision(d('a', true, ['b']), d('a', true)));
});
