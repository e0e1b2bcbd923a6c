/**
 * The prober's pure parts, table-driven and without sockets: the compiled answer rules, the
 * needle scan over chunks, the failure codes, and the state of a probe round.
 */
import t from 'tap';
import {
  answerRules,
  classifyAnswer,
  needlesFor,
  type AnswerRuleOptions,
} from '../src/health/answer-rules.js';
import { NeedleScan } from '../src/health/body-scan.js';
import { memberErrorCode, probeErrorCode, urlErrorCode } from '../src/health/probe-error.js';
import { ProbeRound } from '../src/health/probe-round.js';
import type { UrlAnswer } from '../src/health/types.js';

const IRIS: AnswerRuleOptions = { expectStatus: 200, expectBody: 'SUCCESS', notPrimaryBody: 'FAILED' };
const PATRONI: AnswerRuleOptions = {
  expectStatus: 200,
  expectBody: ['"role": "master"', '"role": "primary"'],
  expectBodyAll: '"state": "running"',
  notPrimaryStatus: [503, 200],
};

const text = (list: readonly Buffer[]): string[] => list.map((b) => b.toString('utf8'));

t.test('compiling the rules', async (t) => {
  const generic = answerRules({ expectStatus: 200, expectBody: null });
  t.same(generic.notPrimaryStatus, [503], 'not-primary status defaults to 503');
  t.same(text(generic.expectBody), []);
  t.ok(Object.isFrozen(generic) && Object.isFrozen(generic.primaryNeedles), 'frozen');
  t.same(
    text(answerRules({ expectStatus: 200, expectBody: ['', 'X'] }).expectBody),
    ['X'],
    'empty text dropped',
  );
  t.same(answerRules({ expectStatus: 200, expectBody: null, notPrimaryStatus: [] }).notPrimaryStatus, []);

  // [name, rules, status, needles looked for]
  const table: [string, AnswerRuleOptions, number, string[]][] = [
    ['generic 200: the status decides', { expectStatus: 200, expectBody: null }, 200, []],
    ['iris 200', IRIS, 200, ['SUCCESS']],
    ['iris 503', IRIS, 503, ['FAILED']],
    ['iris 500: nothing to look for', IRIS, 500, []],
    [
      'patroni 200 is both classes',
      PATRONI,
      200,
      ['"role": "master"', '"role": "primary"', '"state": "running"'],
    ],
    ['patroni 503', PATRONI, 503, []],
  ];
  for (const [name, opts, status, want] of table) {
    t.same(text(needlesFor(answerRules(opts), status)), want, name);
  }
});

t.test('classification reads only the needles it was given', async (t) => {
  // [name, rules, status, needles seen, complete, class]
  const table: [string, AnswerRuleOptions, number, string[], boolean, string | null][] = [
    ['iris primary', IRIS, 200, ['SUCCESS'], false, 'primary'],
    ['iris 200 nothing yet', IRIS, 200, [], false, null],
    ['iris 200 nothing at the end', IRIS, 200, [], true, 'unexpected'],
    ['iris 503 FAILED', IRIS, 503, ['FAILED'], false, 'not_primary'],
    ['iris 503 without FAILED at the end', IRIS, 503, [], true, 'unexpected'],
    ['patroni all but running', PATRONI, 200, ['"role": "master"'], false, null],
    ['patroni role and running', PATRONI, 200, ['"role": "primary"', '"state": "running"'], false, 'primary'],
    ['patroni 200 neither at the end', PATRONI, 200, [], true, 'not_primary'],
  ];
  for (const [name, opts, status, seen, complete, want] of table) {
    const found = (n: Buffer): boolean => seen.includes(n.toString('utf8'));
    t.equal(classifyAnswer(answerRules(opts), status, found, complete), want, name);
  }
});

t.test('needle scan over chunks', async (t) => {
  // [name, needles, chunks, seen]
  const table: [string, string[], string[], string[]][] = [
    ['in one chunk', ['SUCCESS'], ['xxSUCCESSyy'], ['SUCCESS']],
    ['split over two chunks', ['SUCCESS'], ['xxSUC', 'CESSyy'], ['SUCCESS']],
    ['split over three chunks', ['SUCCESS'], ['SU', 'CC', 'ESS'], ['SUCCESS']],
    ['absent', ['SUCCESS'], ['SUCCES', 'x', 'S'], []],
    ['two needles, one each chunk', ['AB', 'CD'], ['xAB', 'CDx'], ['AB', 'CD']],
    ['one-byte needle', ['Z'], ['a', 'Z'], ['Z']],
    ['no needles', [], ['anything'], []],
  ];
  for (const [name, needles, chunks, want] of table) {
    const bufs = needles.map((n) => Buffer.from(n));
    const scan = new NeedleScan(bufs);
    for (const c of chunks) scan.feed(Buffer.from(c));
    t.same(
      bufs.filter((b) => scan.found(b)).map((b) => b.toString()),
      want,
      name,
    );
  }
});

t.test('failure codes', async (t) => {
  const err = (code: string): Error => Object.assign(new Error('x'), { code });
  // [code, per URL, per member]
  const table: [string, string, string][] = [
    ['ECONNREFUSED', 'ECONNREFUSED', 'ECONNREFUSED'],
    ['ECONNRESET', 'ECONNRESET', 'ECONNRESET'],
    ['HPE_INVALID_CONSTANT', 'MLB_ERR_BAD_RESPONSE', 'MLB_ERR_BAD_RESPONSE'],
    ['ERR_INVALID_URL', 'MLB_ERR_BAD_URL', 'MLB_ERR_BAD_URL'],
    ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'MLB_ERR_TLS'],
    ['ERR_TLS_CERT_ALTNAME_INVALID', 'ERR_TLS_CERT_ALTNAME_INVALID', 'MLB_ERR_TLS'],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'MLB_ERR_TLS'],
    ['ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'MLB_ERR_TLS'],
    ['EPROTO', 'EPROTO', 'MLB_ERR_TLS'],
  ];
  for (const [code, perUrl, perMember] of table) {
    t.equal(urlErrorCode(err(code)), perUrl, `${code} per URL`);
    t.equal(memberErrorCode(urlErrorCode(err(code))), perMember, `${code} per member`);
    t.equal(probeErrorCode(err(code)), perMember, `${code} probeErrorCode`);
  }
  t.equal(urlErrorCode(new TypeError('bad')), 'MLB_ERR_BAD_URL');
  t.equal(urlErrorCode(null), 'MLB_ERR_PROBE_FAILED');
});

t.test('the state of a probe round', async (t) => {
  const A = (outcome: UrlAnswer['outcome']): UrlAnswer => ({
    url: '',
    outcome,
    status: outcome === 'error' ? null : 200,
    code: outcome === 'error' ? 'ECONNREFUSED' : null,
    latencyMs: 1,
  });
  // [name, URL count, settles as [index, outcome], finished after them, decided, outcomes at the end]
  type Row = [string, number, [number, UrlAnswer['outcome']][], boolean, number, string[]];
  const table: Row[] = [
    ['one primary ends it', 1, [[0, 'primary']], true, 0, ['primary']],
    ['a primary waits for the other URL', 2, [[0, 'primary']], false, 0, ['primary', 'skipped']],
    ['a not-primary ends it at once', 2, [[1, 'not_primary']], true, 1, ['skipped', 'not_primary']],
    [
      'the first authoritative decides',
      2,
      [
        [1, 'primary'],
        [0, 'not_primary'],
      ],
      true,
      1,
      ['not_primary', 'primary'],
    ],
    [
      'failures decide nothing',
      2,
      [
        [0, 'error'],
        [1, 'unexpected'],
      ],
      true,
      -1,
      ['error', 'unexpected'],
    ],
    [
      'an error then a primary',
      2,
      [
        [0, 'error'],
        [1, 'primary'],
      ],
      true,
      1,
      ['error', 'primary'],
    ],
    [
      'a URL settles once',
      2,
      [
        [0, 'error'],
        [0, 'primary'],
      ],
      false,
      -1,
      ['error', 'skipped'],
    ],
  ];
  for (const [name, n, settles, finished, decided, outcomes] of table) {
    const round = new ProbeRound(
      Array.from({ length: n }, (_, i) => `u${i}`),
      60_000,
    );
    let cancelled = false;
    round.end.on(() => (cancelled = true));
    for (const [i, o] of settles) round.settle(i, A(o));
    t.equal(round.finished, finished, `${name}: finished`);
    t.equal(cancelled, finished, `${name}: its requests cancelled with it`);
    if (!finished) round.cancel();
    const out = await round.outcome;
    t.equal(out.decided, decided, `${name}: decided`);
    t.same(
      out.answers.map((a) => a.outcome),
      outcomes,
      `${name}: outcomes`,
    );
    t.equal(out.closed, !finished, `${name}: closed only when cancelled`);
    t.equal(out.timedOut, false, `${name}: not timed out`);
  }
});

t.test('a round at its deadline: silent URLs time out', async (t) => {
  const round = new ProbeRound(['a', 'b'], 1);
  round.settle(0, { url: 'a', outcome: 'error', status: null, code: 'ECONNREFUSED', latencyMs: 0 });
  const out = await round.outcome;
  t.same(
    out.answers.map((a) => a.outcome),
    ['error', 'timeout'],
  );
  t.equal(out.timedOut, true);
  round.settle(1, { url: 'b', outcome: 'primary', status: 200, code: null, latencyMs: 0 });
  t.equal((await round.outcome).decided, -1, 'nothing settles after the end');
});
