import t from 'tap';
import { ConfigError } from '../src/config/errors.js';
import { parseConfig } from '../src/config/load.js';
import type { HealthConfig } from '../src/config/types.js';

/** A one-mirror file with `top` lines at the top level and `mirror` lines inside the mirror. */
function file(mirror: string[] = [], top: string[] = []): string {
  return [
    'mirrors:',
    '  - name: m1',
    '    listen: 127.0.0.1:0',
    ...mirror.map((l) => `    ${l}`),
    '    members:',
    '      - name: a',
    '        address: 127.0.0.1:1',
    '        check: http://127.0.0.1:2/status',
    ...top,
    '',
  ].join('\n');
}

function health(mirror: string[] = [], top: string[] = []): HealthConfig & { kind: string } {
  const m = parseConfig(file(mirror, top), 'f.yml', {}).mirrors[0]!;
  return { ...m.health, kind: m.kind };
}

function problems(text: string): string[] {
  try {
    parseConfig(text, 'f.yml', {});
    return [];
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return e.problems.map((p) => p.message);
  }
}

const GENERIC = {
  expectStatus: 200,
  expectBody: [],
  expectBodyAll: [],
  notPrimaryStatus: [503],
  notPrimaryBody: [],
  fenceAfterMs: 10_000,
};
const IRIS = { ...GENERIC, expectBody: ['SUCCESS'], notPrimaryBody: ['FAILED'], fenceAfterMs: 60_000 };
const PATRONI = {
  ...GENERIC,
  expectBody: ['"role": "master"', '"role": "primary"'],
  expectBodyAll: ['"state": "running"'],
  notPrimaryStatus: [503, 200],
  fenceAfterMs: 5_000,
};

t.test('each kind brings its defaults; explicit keys always win', async (t) => {
  const cases: [string, string[], string[], object][] = [
    ['no kind: generic', [], [], { kind: 'generic', ...GENERIC }],
    ['kind: generic', ['kind: generic'], [], { kind: 'generic', ...GENERIC }],
    ['kind: iris', ['kind: iris'], [], { kind: 'iris', ...IRIS }],
    ['kind: patroni', ['kind: patroni'], [], { kind: 'patroni', ...PATRONI }],
    ['top-level kind', [], ['kind: iris'], { kind: 'iris', ...IRIS }],
    [
      'the mirror kind beats the top-level one',
      ['kind: patroni'],
      ['kind: iris'],
      { kind: 'patroni', ...PATRONI },
    ],
    [
      'a top-level health key beats the kind',
      ['kind: iris'],
      ['health:', '  fence_after: 2m', '  not_primary_body: null'],
      { kind: 'iris', ...IRIS, fenceAfterMs: 120_000, notPrimaryBody: [] },
    ],
    [
      'a mirror health key beats the kind and the top level',
      ['kind: patroni', 'health:', '  fence_after: 3s', '  not_primary_status: 503'],
      ['health:', '  fence_after: 4s'],
      { kind: 'patroni', ...PATRONI, fenceAfterMs: 3000, notPrimaryStatus: [503] },
    ],
    [
      'fence_after off; lists of bodies and statuses',
      ['health:', '  fence_after: off', '  expect_body: [OK, YES]', '  not_primary_status: [503, 409]'],
      [],
      {
        kind: 'generic',
        ...GENERIC,
        fenceAfterMs: null,
        expectBody: ['OK', 'YES'],
        notPrimaryStatus: [503, 409],
      },
    ],
  ];
  for (const [name, mirror, top, want] of cases) t.match(health(mirror, top), want, name);
});

t.test('bad values are refused with a clear message', async (t) => {
  const cases: [string[], RegExp][] = [
    [['kind: oracle'], /kind: must be iris, patroni or generic, got "oracle"/],
    [['health:', '  fence_after: 0s'], /fence_after/],
    [['health:', '  fence_after: never'], /fence_after: must be a positive duration like 30s, or off/],
    [['health:', '  not_primary_status: 42'], /not_primary_status: must be an HTTP status code/],
    [['health:', '  not_primary_status: []'], /not_primary_status/],
    [['health:', '  expect_body: []'], /expect_body: must be a non-empty string, a list/],
    [['health:', "  not_primary_body: ['']"], /not_primary_body/],
  ];
  for (const [mirror, re] of cases) {
    const got = problems(file(mirror));
    t.ok(
      got.some((p) => re.test(p)),
      `${mirror.join(' ')} → ${re}`,
      { got },
    );
  }
});
