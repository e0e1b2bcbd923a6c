/**
 * Table-driven tests of the verdict rules of issue 10, with the clock passed in: how one
 * answer is classified, how a member's rounds combine (unexpected answers, contradictions,
 * fencing), and when two claimants are a takeover or a conflict.
 */
import t from 'tap';
import { answerRules, classifyAnswer } from '../src/health/answer-rules.js';
import type { ProbeOptions } from '../src/health/probe.js';
import { choosePrimary } from '../src/health/choose.js';
import { INITIAL_HEALTH, nextHealth } from '../src/health/state.js';
import type { HealthRole, MemberHealth, MemberView, ProbeResult } from '../src/health/types.js';

const BASE: ProbeOptions = {
  timeoutMs: 250,
  expectStatus: 200,
  expectBody: null,
  maxBodyBytes: 4096,
  checkSuperserver: false,
};
const IRIS = { ...BASE, expectBody: 'SUCCESS', notPrimaryBody: 'FAILED' };
const PATRONI = {
  ...BASE,
  expectBody: ['"role": "master"', '"role": "primary"'],
  expectBodyAll: '"state": "running"',
  notPrimaryStatus: [503, 200],
};

t.test('classification of one answer', async (t) => {
  // [name, rules, status, body, complete?, expected]
  const table: [string, ProbeOptions, number, string, boolean, string | null][] = [
    ['generic 200', BASE, 200, '', true, 'primary'],
    ['generic 200 decided before any body', BASE, 200, '', false, 'primary'],
    ['generic 503', BASE, 503, 'anything', true, 'not_primary'],
    ['generic 500 is unexpected', BASE, 500, '', true, 'unexpected'],
    ['generic 404 is unexpected', BASE, 404, 'not found', true, 'unexpected'],
    ['generic 302 is unexpected', BASE, 302, '', true, 'unexpected'],
    ['iris 200 SUCCESS', IRIS, 200, 'SUCCESS', true, 'primary'],
    ['iris 200 SUCCESS found before the end', IRIS, 200, 'SUCCESS', false, 'primary'],
    ['iris 200 without SUCCESS: undecided until the end', IRIS, 200, 'hello', false, null],
    ['iris 200 without SUCCESS is unexpected', IRIS, 200, '<html>login</html>', true, 'unexpected'],
    ['iris 503 FAILED', IRIS, 503, 'FAILED', true, 'not_primary'],
    ['iris 503 FAILED found before the end', IRIS, 503, 'FAILED', false, 'not_primary'],
    [
      'iris 503 with a gateway HTML page is unexpected',
      IRIS,
      503,
      '<html>Service Unavailable</html>',
      true,
      'unexpected',
    ],
    ['iris 500 FAILED is still unexpected (status first)', IRIS, 500, 'FAILED', true, 'unexpected'],
    ['patroni 200 role master', PATRONI, 200, '{"state": "running", "role": "master"}', true, 'primary'],
    [
      'patroni 200 role primary (newer Patroni)',
      PATRONI,
      200,
      '{"state": "running", "role": "primary"}',
      true,
      'primary',
    ],
    [
      'patroni 200 master while PostgreSQL stops (switchover): not primary',
      PATRONI,
      200,
      '{"state": "stopping", "role": "master"}',
      true,
      'not_primary',
    ],
    [
      'patroni 200 master, state not seen yet: undecided until the end',
      PATRONI,
      200,
      '{"role": "master", ',
      false,
      null,
    ],
    [
      'patroni 200 role replica: promotion in progress, not primary',
      PATRONI,
      200,
      '{"role": "replica"}',
      true,
      'not_primary',
    ],
    ['patroni 200 role replica: wait for the whole body', PATRONI, 200, '{"role": "replica"', false, null],
    ['patroni 503', PATRONI, 503, '{"role": "replica"}', true, 'not_primary'],
    ['patroni 502 from a proxy is unexpected', PATRONI, 502, 'Bad Gateway', true, 'unexpected'],
  ];
  for (const [name, opts, status, body, complete, want] of table) {
    const rules = answerRules(opts);
    const found = (n: Buffer): boolean => body.includes(n.toString('utf8'));
    t.equal(classifyAnswer(rules, status, found, complete), want, name);
  }
});

const P: ProbeResult = { kind: 'primary', status: 200, latencyMs: 1, url: 'gw1' };
const PX: ProbeResult = { ...P, contradicted: true };
const N: ProbeResult = { kind: 'not_primary', status: 503, latencyMs: 1, url: 'gw1' };
const U = (superserver: boolean | null): ProbeResult => ({
  kind: 'unexpected',
  status: 500,
  url: 'gw1',
  latencyMs: 1,
  superserver,
});
const T = (superserver: boolean | null): ProbeResult => ({ kind: 'timeout', latencyMs: 250, superserver });
const E = (superserver: boolean | null): ProbeResult => ({
  kind: 'error',
  code: 'ECONNREFUSED',
  latencyMs: 1,
  superserver,
});

/** Runs probes at the given times (ms); returns the roles after each, and whether it was fenced. */
function run(seq: [number, ProbeResult][], fenceAfterMs: number | null, fall = 2): string[] {
  let h: MemberHealth = INITIAL_HEALTH;
  return seq.map(([at, r]) => {
    h = nextHealth(h, r, { rise: 1, fall, fenceAfterMs }, at, at);
    return `${h.role}${h.fenced ? ' fenced' : ''}${h.contradicted ? ' contradicted' : ''}`;
  });
}

t.test('combination of rounds and fencing, clock passed in', async (t) => {
  // [name, fence_after, [time, result][], roles after each]
  const table: [string, number | null, [number, ProbeResult][], string[]][] = [
    [
      'unexpected with the port up keeps the primary',
      null,
      [
        [0, P],
        [100, U(true)],
        [200, U(true)],
      ],
      ['primary', 'primary', 'primary'],
    ],
    [
      'unexpected never demotes, even with the port down: fall decides',
      null,
      [
        [0, P],
        [100, U(false)],
        [200, U(false)],
      ],
      ['primary', 'suspect', 'unreachable'],
    ],
    [
      'unexpected never promotes a backup',
      null,
      [
        [0, N],
        [100, U(null)],
      ],
      ['backup', 'backup'],
    ],
    [
      'not primary still demotes at once after unexpected answers',
      null,
      [
        [0, P],
        [100, U(true)],
        [200, N],
      ],
      ['primary', 'primary', 'backup'],
    ],
    [
      'a contradicted primary answer: holder keeps its sessions, takes no new clients',
      null,
      [
        [0, P],
        [100, PX],
        [200, P],
      ],
      ['primary', 'suspect contradicted', 'primary'],
    ],
    [
      'a contradicted primary answer never promotes',
      null,
      [
        [0, N],
        [100, PX],
        [200, PX],
        [300, P],
      ],
      ['backup', 'backup contradicted', 'backup contradicted', 'primary'],
    ],
    [
      'fencing: a suspect primary loses the role at fence_after',
      1000,
      [
        [0, P],
        [300, T(true)],
        [600, T(true)],
        [999, T(true)],
        [1000, T(true)],
        [1300, T(true)],
      ],
      ['primary', 'suspect', 'suspect', 'suspect', 'unreachable fenced', 'unreachable fenced'],
    ],
    [
      'fencing: a primary with a dead status page and a live port too',
      1000,
      [
        [0, P],
        [500, E(true)],
        [1200, U(true)],
      ],
      ['primary', 'primary', 'unreachable fenced'],
    ],
    [
      'fencing counts from the last primary answer, not the first',
      1000,
      [
        [0, P],
        [800, P],
        [1500, T(true)],
        [1900, T(true)],
      ],
      ['primary', 'primary', 'suspect', 'unreachable fenced'],
    ],
    [
      'contradicted answers do not hold fencing off',
      1000,
      [
        [0, P],
        [500, PX],
        [1100, PX],
      ],
      ['primary', 'suspect contradicted', 'unreachable fenced contradicted'],
    ],
    [
      'fence_after off: never fenced',
      null,
      [
        [0, P],
        [100_000, T(true)],
        [900_000, E(true)],
      ],
      ['primary', 'suspect', 'primary'],
    ],
    [
      'a fenced member regains the role only by answering primary',
      1000,
      [
        [0, P],
        [1000, T(true)],
        [1100, E(true)],
        [1200, N],
        [1300, P],
      ],
      ['primary', 'unreachable fenced', 'unreachable fenced', 'backup', 'primary'],
    ],
  ];
  for (const [name, fence, seq, want] of table) t.strictSame(run(seq, fence), want, name);
});

t.test('a primary answer is dated by when its probe was sent', async (t) => {
  const h = nextHealth(INITIAL_HEALTH, P, { rise: 1, fall: 2 }, 500, 420);
  t.equal(h.lastPrimaryAnswerAt, 420);
  t.equal(h.primarySince, 500, 'the claim is known when the probe ends');
  t.equal(
    nextHealth(INITIAL_HEALTH, { ...P, latencyMs: 30 }, { rise: 1, fall: 2 }, 500).lastPrimaryAnswerAt,
    470,
  );
});

function claimant(name: string, primarySince: number, lastPrimaryAnswerAt: number): MemberView {
  return {
    name,
    admin: 'enabled',
    health: { ...INITIAL_HEALTH, role: 'primary' as HealthRole, primarySince, lastPrimaryAnswerAt },
  };
}

t.test('takeover or conflict', async (t) => {
  // a held the role; b claimed it at 1000. [name, a's last primary answer (probe sent), policy, primary, accepting, conflict]
  const table: [string, number, 'newest' | 'hold', string | null, boolean, string[]][] = [
    ["a's last answer older than b's claim: takeover, b routes", 900, 'newest', 'b', true, []],
    ["a's answer sent before the claim, seen after it: still a takeover", 999, 'newest', 'b', true, []],
    ['a answered primary again after the claim: conflict, newest wins', 1001, 'newest', 'b', true, ['a']],
    ['takeover under hold: wait for a check of a, no new clients, no conflict', 900, 'hold', 'a', false, []],
    ['conflict under hold: keep a, no new clients', 1100, 'hold', 'a', false, ['a', 'b']],
  ];
  for (const [name, aAnswered, policy, primary, accepting, conflict] of table) {
    const members = [claimant('a', 0, aAnswered), claimant('b', 1000, 1000)];
    const prev = { primary: 'a', accepting: true, conflict: [] };
    t.match(choosePrimary(members, policy, prev), { primary, accepting, conflict }, name);
  }
});
