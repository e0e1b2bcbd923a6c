import { writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ConfigError, formatProblem } from '../src/config/errors.js';
import { configWarnings, loadConfigFile, loadWarnings, parseConfig, summarize } from '../src/config/load.js';
import type { Config, HealthConfig, ProxyConfig } from '../src/config/types.js';

const FIXTURES = new URL('./fixtures/config/', import.meta.url).pathname;

/** `LINE:COL: message` for every problem of a file, or [] when it is valid. */
function problemsOf(yaml: string, env: Record<string, string | undefined> = {}): string[] {
  try {
    parseConfig(yaml, 'f.yml', env);
    return [];
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return e.problems.map((p) => `${p.line}:${p.col}: ${p.message}`);
  }
}

const MEMBER_A = [
  '      - name: ap1a',
  '        address: ap1a:1972',
  '        check: http://ap1a:52773/csp/mirror_status.cxw',
];
const MEMBER_B = [
  '      - name: ap1b',
  '        address: ap1b:1972',
  '        check: http://ap1b:52773/csp/mirror_status.cxw',
];
/** One mirror, two members: lines 1-10. */
const BASE = [
  'mirrors:',
  '  - name: ap1',
  '    listen: 0.0.0.0:1972',
  '    members:',
  ...MEMBER_A,
  ...MEMBER_B,
];
const yaml = (...lines: string[]): string => `${lines.join('\n')}\n`;
const withBase = (...extra: string[]): string => yaml(...BASE, ...extra);

const DEFAULT_HEALTH: HealthConfig = {
  intervalMs: 200,
  fastIntervalMs: 50,
  fastWindowMs: 2000,
  timeoutMs: 250,
  rise: 1,
  fall: 2,
  expectStatus: 200,
  expectBody: [],
  expectBodyAll: [],
  notPrimaryStatus: [503],
  notPrimaryBody: [],
  fenceAfterMs: 10_000,
  maxBodyBytes: 4096,
  jitter: 0.1,
};
/** What an IRIS mirror changes in the generic health defaults. */
const IRIS_HEALTH = { expectBody: ['SUCCESS'], notPrimaryBody: ['FAILED'], fenceAfterMs: 60_000 };

const DEFAULT_PROXY: ProxyConfig = {
  connectTimeoutMs: 1000,
  holdTimeoutMs: 10_000,
  maxHeld: 10000,
  maxConnections: 0,
  maxConnecting: 128,
  idleTimeoutMs: 0,
};

t.test('the minimal file from the contract loads with every default filled', async (t) => {
  const file = join(FIXTURES, 'minimal.yml');
  const config = await loadConfigFile(file, {});
  const expected: Config = {
    source: file,
    mirrors: [
      {
        name: 'ap1',
        // No kind written: its check URLs are IRIS status pages, so it gets the IRIS rules.
        kind: 'iris',
        kindSource: 'inferred',
        listen: { host: '0.0.0.0', port: 1972 },
        members: [
          {
            name: 'ap1a',
            address: { host: 'ap1a', port: 1972 },
            check: ['http://ap1a:52773/csp/mirror_status.cxw'],
            tls: null,
          },
          {
            name: 'ap1b',
            address: { host: 'ap1b', port: 1972 },
            check: ['http://ap1b:52773/csp/mirror_status.cxw'],
            tls: null,
          },
        ],
        health: { ...DEFAULT_HEALTH, ...IRIS_HEALTH },
        proxy: DEFAULT_PROXY,
        onConflict: 'newest',
        pools: [],
      },
    ],
    admin: { listen: { host: '127.0.0.1', port: 9090 }, token: null },
    log: { level: 'info', sessions: false },
    shutdown: { graceMs: 5000, drainTimeoutMs: 30_000 },
    metrics: { enabled: true },
    workers: 1,
  };
  t.strictSame(config, expected);
  t.strictSame(configWarnings(config), []);
});

t.test('every key, with per-mirror overrides inheriting the rest from the top level', async (t) => {
  const config = await loadConfigFile(join(FIXTURES, 'full.yml'), {});
  const [ap1, ap2] = config.mirrors;
  t.ok(ap1 && ap2);
  if (!ap1 || !ap2) return;
  const topHealth = {
    ...DEFAULT_HEALTH,
    intervalMs: 1000,
    fastIntervalMs: 100,
    fastWindowMs: 5000,
    timeoutMs: 300,
  };
  // No kind written and IRIS status URLs: the IRIS defaults under the file's own keys.
  const top = {
    ...topHealth,
    ...IRIS_HEALTH,
    fall: 3,
    expectBody: ['SUCCESS'],
    maxBodyBytes: 1024,
    jitter: 0.2,
  };
  t.strictSame(ap1.health, { ...top, intervalMs: 500, rise: 2 });
  t.strictSame(ap2.health, top);
  const topProxy = {
    connectTimeoutMs: 2000,
    holdTimeoutMs: 60_000,
    maxHeld: 50,
    maxConnections: 0,
    maxConnecting: 64,
    idleTimeoutMs: 8 * 3600_000,
  };
  t.strictSame(ap1.proxy, { ...topProxy, maxConnections: 200 });
  t.strictSame(ap2.proxy, topProxy);
  t.equal(ap1.onConflict, 'hold');
  t.equal(ap2.onConflict, 'newest');
  t.strictSame(ap1.members[0]?.check, [
    'http://webgw1/ap1a/csp/mirror_status.cxw',
    'http://webgw2/ap1a/csp/mirror_status.cxw',
  ]);
  t.strictSame(ap1.members[1]?.address, { host: 'fd00::12', port: 1972 });
  t.strictSame(ap2.listen, { host: '::1', port: 11972 });
  t.strictSame(config.admin, { listen: { host: '0.0.0.0', port: 9090 }, token: 'change-me-please' });
  t.equal(config.log.level, 'debug');
  t.equal(config.shutdown.drainTimeoutMs, 90_000);
  t.equal(config.shutdown.graceMs, 15_000);
});

t.test('check becomes a list; idle_timeout accepts 0, "0" and off', async (t) => {
  for (const idle of ['0', '"0"', 'off', '90s']) {
    const c = parseConfig(withBase('proxy:', `  idle_timeout: ${idle}`), 'f.yml', {});
    t.equal(c.mirrors[0]?.proxy.idleTimeoutMs, idle === '90s' ? 90_000 : 0, `idle_timeout: ${idle}`);
    t.ok(Array.isArray(c.mirrors[0]?.members[0]?.check));
  }
});

t.test('listen port 0 (any free port) is accepted and never collides', async (t) => {
  const c = parseConfig(
    yaml(
      'mirrors:',
      '  - {name: a, listen: "127.0.0.1:0", members: [{name: a1, address: "127.0.0.1:1", check: "http://127.0.0.1:2/s"}]}',
      '  - {name: b, listen: "127.0.0.1:0", members: [{name: b1, address: "127.0.0.1:3", check: "http://127.0.0.1:4/s"}]}',
      'admin: {listen: "127.0.0.1:0"}',
    ),
    'f.yml',
    {},
  );
  t.strictSame(
    c.mirrors.map((m) => m.listen.port),
    [0, 0],
  );
  t.strictSame(problemsOf(withBase().replace('ap1a:1972', 'ap1a:0')), [
    '6:18: mirrors[0].members[0].address: port 0 is out of range 1..65535',
  ]);
});

t.test('environment substitution', async (t) => {
  const env = { HOST: 'db1', PORT: '1972', EMPTY: '', BODY: 'x\n  - evil: [1' };
  const c = parseConfig(
    yaml(
      'mirrors:',
      '  - name: ap1',
      '    listen: 0.0.0.0:${PORT}',
      '    health:',
      '      expect_body: ${BODY}',
      '    members:',
      '      - name: ap1a',
      '        address: ${HOST}:${PORT}',
      '        check: http://${CHECK_HOST:-gw}/${EMPTY:-fallback}/$$x/${EMPTY}end',
      'admin:',
      '  token: pa$word-$${HOST}',
    ),
    'f.yml',
    env,
  );
  const m = c.mirrors[0];
  t.strictSame(m?.listen, { host: '0.0.0.0', port: 1972 });
  t.strictSame(m?.members[0]?.address, { host: 'db1', port: 1972 });
  t.strictSame(m?.members[0]?.check, ['http://gw/fallback/$x/end']);
  t.strictSame(m?.health.expectBody, ['x\n  - evil: [1'], 'substituted text is never parsed as YAML');
  t.equal(c.admin.token, 'pa$word-${HOST}', 'a lone $ stays, $$ is a literal $');

  t.strictSame(problemsOf(withBase('admin:', '  token: ${SECRET}')), [
    '12:10: admin.token: environment variable SECRET is not set (use ${SECRET:-default} for a fallback)',
  ]);
  t.strictSame(problemsOf(withBase('${KEY}: 1'), { KEY: 'health' }), [
    '11:1: unknown key "${KEY}" at the top level',
  ]);
});

t.test('the result is deeply frozen', async (t) => {
  const c = await loadConfigFile(join(FIXTURES, 'full.yml'), {});
  const m = c.mirrors[0];
  for (const o of [
    c,
    c.mirrors,
    m,
    m?.listen,
    m?.members,
    m?.members[0],
    m?.members[0]?.check,
    m?.health,
    m?.proxy,
    c.admin,
    c.admin.listen,
    c.log,
    c.shutdown,
  ]) {
    t.ok(Object.isFrozen(o));
  }
  t.throws(() => {
    (c.mirrors as Config['mirrors'][number][]).push(c.mirrors[0] as Config['mirrors'][number]);
  }, TypeError);
  t.throws(() => {
    (m?.health as { rise: number }).rise = 9;
  }, TypeError);
});

/** Each broken file and the exact problems it must produce, in order. */
const BROKEN: [string, string, string[]][] = [
  ['empty file', '', ['1:1: the file is empty; it needs at least a "mirrors" list']],
  [
    'a list at the top level',
    yaml('- a', '- b'),
    ['1:1: the top level must be a mapping (mirrors:, health:, ...), got a list'],
  ],
  ['mirrors missing', yaml('health:', '  rise: 2'), ['1:1: missing required key "mirrors" at the top level']],
  [
    'unknown key with a suggestion',
    withBase().replace('        address: ap1b', '        adress: ap1b'),
    [
      '8:9: missing required key "address" in mirrors[0].members[1]',
      '9:9: unknown key "adress" in mirrors[0].members[1]; did you mean "address"?',
    ],
  ],
  [
    'unknown key without a suggestion',
    withBase('colour: blue'),
    ['11:1: unknown key "colour" at the top level'],
  ],
  [
    'camelCase key',
    withBase('health:', '  fastInterval: 1s'),
    ['12:3: unknown key "fastInterval" in health; did you mean "fast_interval"?'],
  ],
  [
    'a health key one level too high',
    withBase('interval: 1s').replace('    members:', '    fall: 3\n    members:'),
    [
      '4:5: unknown key "fall" in mirrors[0]; did you mean "health.fall"?',
      '12:1: unknown key "interval" at the top level; did you mean "health.interval"?',
    ],
  ],
  ['duplicate key', withBase('health:', '  rise: 2', '  rise: 3'), ['13:3: duplicate key "rise"']],
  [
    'tab indentation',
    yaml('mirrors:', '\t- name: ap1'),
    ['2:1: tab used for indentation; YAML allows only spaces'],
  ],
  [
    'wrong types',
    withBase('health: 250ms', 'log:', '  level: 3'),
    [
      '11:9: health: must be a mapping, got "250ms"',
      '13:10: log.level: must be one of fatal, error, warn, info, debug, trace, silent, got 3',
    ],
  ],
  [
    'port out of range',
    withBase().replace('0.0.0.0:1972', '0.0.0.0:65536'),
    ['3:13: mirrors[0].listen: port 65536 is out of range 0..65535'],
  ],
  [
    'port not a number',
    withBase().replace('ap1b:1972', 'ap1b:sql'),
    ['9:18: mirrors[0].members[1].address: port "sql" is not a number'],
  ],
  [
    'unbracketed IPv6',
    withBase().replace('0.0.0.0:1972', '"::1:1972"'),
    ['3:13: mirrors[0].listen: "::1:1972": an IPv6 address must be in brackets, e.g. [::1]:1972'],
  ],
  [
    'empty host',
    withBase().replace('ap1a:1972', '":1972"'),
    [
      '6:18: mirrors[0].members[0].address: ":1972" has an empty host; write e.g. db1:1972 (or 0.0.0.0:1972 to listen on every address)',
    ],
  ],
  [
    'non-http check URL',
    withBase().replace('http://ap1b', 'ftp://ap1b'),
    [
      '10:16: mirrors[0].members[1].check: "ftp://ap1b:52773/csp/mirror_status.cxw" is not an http:// or https:// URL',
    ],
  ],
  [
    'unparsable check URL',
    withBase().replace('http://ap1b:52773', 'http://ap1b:99999'),
    ['10:16: mirrors[0].members[1].check: "http://ap1b:99999/csp/mirror_status.cxw" is not a valid URL'],
  ],
  [
    'zero duration',
    withBase('health:', '  interval: 0s'),
    ['12:13: health.interval: duration "0s" is zero; it must be positive'],
  ],
  [
    'negative duration',
    withBase('proxy:', '  hold_timeout: -5s'),
    ['12:17: proxy.hold_timeout: duration "-5s" is negative; it must be positive'],
  ],
  [
    'duration without unit',
    withBase('shutdown:', '  drain_timeout: "30"'),
    ['12:18: shutdown.drain_timeout: duration "30" has no unit; write 30ms or 30s'],
  ],
  [
    'rise and fall below 1',
    withBase('health:', '  rise: 0', '  fall: -2'),
    [
      '12:9: health.rise: must be an integer >= 1, got 0',
      '13:9: health.fall: must be an integer >= 1, got -2',
    ],
  ],
  [
    'fast_interval longer than interval',
    withBase('health:', '  interval: 100ms', '  fast_interval: 200ms'),
    [
      '13:18: health.fast_interval 200ms is longer than health.interval 100ms; the fast interval must not be the slower one',
    ],
  ],
  [
    'interval shorter than the default fast_interval',
    withBase('health:', '  interval: 20ms'),
    [
      '12:13: health.fast_interval 50ms (the default) is longer than health.interval 20ms; the fast interval must not be the slower one',
    ],
  ],
  [
    'per-mirror fast_interval longer than the inherited interval',
    withBase('health:', '  interval: 100ms').replace(
      '    members:',
      '    health: {fast_interval: 1s}\n    members:',
    ),
    [
      '4:29: mirrors[0].health.fast_interval 1s is longer than health.interval 100ms; the fast interval must not be the slower one',
    ],
  ],
  [
    'duplicate mirror and member names',
    withBase(
      '  - name: ap1',
      '    listen: 0.0.0.0:1973',
      '    members:',
      '      - {name: ap1a, address: "ap2b:1972", check: "http://ap2b/s"}',
    ).replace('name: ap1b\n', 'name: ap1a\n'),
    [
      '8:15: mirrors[0].members[1].name: duplicate member name "ap1a" (first at line 5)',
      '11:11: mirrors[1].name: duplicate mirror name "ap1" (first at line 2)',
      '14:16: mirrors[1].members[0].name: member name "ap1a" is already used in mirror "ap1" (line 5); member names are unique across mirrors',
    ],
  ],
  [
    'member address used in two mirrors',
    withBase(
      '  - name: ap2',
      '    listen: 0.0.0.0:1973',
      '    members:',
      '      - {name: ap2a, address: "AP1B:1972", check: "http://ap2a/s"}',
    ),
    [
      '14:31: mirrors[1].members[0].address: ap1b:1972 is already a member address in mirror "ap1" (line 9); a member belongs to one mirror',
    ],
  ],
  [
    'two mirrors on one port, one on the wildcard',
    withBase(
      '  - name: ap2',
      '    listen: 127.0.0.1:1972',
      '    members:',
      '      - {name: ap2a, address: "ap2a:1972", check: "http://ap2a/s"}',
    ),
    ['12:13: mirrors[1].listen: 127.0.0.1:1972 collides with mirrors[0].listen 0.0.0.0:1972 (line 3)'],
  ],
  [
    'admin on a mirror port',
    withBase('admin:', '  listen: "[::]:1972"'),
    ['12:11: admin.listen: [::]:1972 collides with mirrors[0].listen 0.0.0.0:1972 (line 3)'],
  ],
  [
    'mirror on the default admin port',
    withBase().replace('0.0.0.0:1972', '0.0.0.0:9090'),
    ['3:13: mirrors[0].listen: 0.0.0.0:9090 collides with admin.listen (default 127.0.0.1:9090)'],
  ],
  [
    'a second document',
    withBase('---', 'mirrors: []'),
    ['11:1: a second YAML document ("---"); a config file holds exactly one'],
  ],
  ['undefined alias', withBase('health: *common'), ['11:9: alias *common has no anchor &common before it']],
  [
    'many problems, sorted by position',
    withBase('log:', '  level: loud', 'proxy:', '  max_held: -1').replace('0.0.0.0:1972', '0.0.0.0:1e5'),
    [
      '3:13: mirrors[0].listen: port "1e5" is not a number',
      '12:10: log.level: must be one of fatal, error, warn, info, debug, trace, silent, got "loud"',
      '14:13: proxy.max_held: must be an integer >= 0, got -1',
    ],
  ],
];

t.test('broken files: the exact LINE:COL: message of every problem', async (t) => {
  t.ok(BROKEN.length >= 20);
  for (const [name, text, expected] of BROKEN) t.strictSame(problemsOf(text), expected, name);
});

t.test('ConfigError carries a stable code, the problems and the formatted message', async (t) => {
  const err = t.throws(() => parseConfig(withBase('x: 1', 'y: 2'), 'dir/app.yml', {})) as ConfigError;
  t.ok(err instanceof ConfigError);
  t.equal(err.code, 'MLB_ERR_CONFIG');
  t.equal(err.problems.length, 2);
  t.strictSame(err.problems[0], {
    file: 'dir/app.yml',
    line: 11,
    col: 1,
    message: 'unknown key "x" at the top level',
  });
  t.equal(
    err.message,
    'dir/app.yml:11:1: unknown key "x" at the top level\ndir/app.yml:12:1: unknown key "y" at the top level',
  );
  t.equal(formatProblem({ file: 'a', line: 2, col: 3, message: 'm' }), 'a:2:3: m');
});

t.test('files that cannot be read are problems at 1:1', async (t) => {
  const dir = t.testdir({ 'ok.yml': withBase() });
  const missing = join(dir, 'missing.yml');
  await t.rejects(loadConfigFile(missing, {}), {
    message: `${missing}:1:1: cannot read: ENOENT: no such file or directory, open '${missing}'`,
  });
  await t.rejects(loadConfigFile(dir, {}), { message: new RegExp(`^${dir}:1:1: cannot read: EISDIR`) });
  const big = join(dir, 'big.yml');
  writeFileSync(big, `# ${'x'.repeat(1024 * 1024)}\n`);
  await t.rejects(loadConfigFile(big, {}), {
    message: `${big}:1:1: file is larger than 1048576 bytes (1 MiB); refusing to read it`,
  });
  const latin1 = join(dir, 'latin1.yml');
  writeFileSync(latin1, Buffer.concat([Buffer.from(withBase()), Buffer.from('# caf\xe9\n', 'latin1')]));
  await t.rejects(loadConfigFile(latin1, {}), {
    message: `${latin1}:11:6: not UTF-8 text (an invalid byte sequence here); is this a binary file?`,
  });
  t.equal((await loadConfigFile(join(dir, 'ok.yml'), {})).source, join(dir, 'ok.yml'));
});

t.test('parseConfig refuses over-sized text and control characters too', async (t) => {
  t.strictSame(problemsOf(`${withBase()}#${'x'.repeat(1024 * 1024)}`), [
    `1:1: file is too large (${withBase().length + 1 + 1024 * 1024} bytes); a config file may have at most 1048576 bytes (1 MiB)`,
  ]);
  t.strictSame(problemsOf(withBase('log: {level: "\u001b[31minfo"}')), [
    '11:15: control character U+001B: this is a binary file, not YAML text',
  ]);
});

t.test('warnings and the summary', async (t) => {
  const open = parseConfig(withBase('admin:', '  listen: 0.0.0.0:9090'), 'f.yml', {});
  t.strictSame(configWarnings(open), [
    'admin listens on 0.0.0.0:9090 without admin.token: maintenance actions (drain, disable, enable) are refused with 403 until a token is set',
  ]);
  const single = parseConfig(yaml(...BASE.slice(0, 7)), 'f.yml', {});
  t.strictSame(configWarnings(single), [
    'mirror "ap1" has only one member: there is nothing to fail over to',
  ]);

  const full = await loadConfigFile(join(FIXTURES, 'full.yml'), { MLB_ADMIN_TOKEN: 'secret-token-123' });
  const s = summarize(full);
  t.match(s, /full\.yml: OK, 2 mirrors, 4 members\n/);
  t.match(s, /^mirror ap1 {2}listen 0\.0\.0\.0:1972 {2}on_conflict hold$/m);
  t.match(s, /^ {2}ap1a {2}ap1a\.example\.com:1972 {2}http:\/\/webgw1\/ap1a\/csp\/mirror_status\.cxw$/m);
  t.match(s, /^ {26,}http:\/\/webgw2\/ap1a\/csp\/mirror_status\.cxw$/m);
  t.match(s, /^ {2}ap1b {2}\[fd00::12\]:1972 +https:\/\/ap1b:52773\/csp\/mirror_status\.cxw$/m);
  t.match(s, /^mirror ap2 {2}listen \[::1\]:11972/m);
  t.match(
    s,
    /health {2}every 500ms \(100ms for 5s after a change\), timeout 300ms, rise 2, fall 3, primary = 200 with "SUCCESS"/,
  );
  t.match(
    s,
    /proxy {3}connect 2s \(at most 64 per member at once\), hold 1m \(at most 50 held\), sessions 200, idle timeout 8h/,
  );
  t.match(s, /^admin +0\.0\.0\.0:9090 \(token set\)$/m);
  t.notMatch(s, /secret-token-123/, 'the token itself is never printed');
  t.match(s, /^shutdown +grace 15s, drain 90s$/m);
  t.ok(s.split('\n').length < 40, 'fits on one screen');
});

t.test('a member that is mirrorlb itself is refused, with the line', async (t) => {
  const local = (address: string, listen = '0.0.0.0:1972', extra: string[] = []) =>
    problemsOf(
      withBase(...extra)
        .replace('0.0.0.0:1972', listen)
        .replace('ap1a:1972', address),
    );
  const own = (addr: string, _listen: string) =>
    `6:18: mirrors[0].members[0].address: ${addr} is the listen address of mirror "ap1" (line 3), so this member is its own mirror: every client would be proxied back into mirrorlb, without end`;
  t.strictSame(
    local('127.0.0.1:1972', '127.0.0.1:1972'),
    [own('127.0.0.1:1972', '127.0.0.1:1972')],
    'the same address',
  );
  t.strictSame(
    local('localhost:1972'),
    [own('localhost:1972', '0.0.0.0:1972')],
    'localhost on a wildcard listen',
  );
  t.strictSame(
    local('127.0.0.5:1972'),
    [own('127.0.0.5:1972', '0.0.0.0:1972')],
    'any loopback on a wildcard listen',
  );
  t.strictSame(
    local('"[::1]:1972"', '"[::]:1972"'),
    [own('[::1]:1972', '[::]:1972')],
    '::1 on the IPv6 wildcard',
  );
  t.strictSame(
    local(`${hostname()}:1972`),
    [own(`${hostname()}:1972`, '0.0.0.0:1972')],
    "this machine's name",
  );
  t.strictSame(
    local('localhost:1972', '127.0.0.1:1972'),
    [own('localhost:1972', '127.0.0.1:1972')],
    'localhost for 127.0.0.1',
  );
  t.strictSame(local('127.0.0.1:1973'), [], 'another port is another listener');
  t.strictSame(local('127.0.0.1:1972', '10.9.9.9:1972'), [], 'a listener on another address');
  t.strictSame(local('127.0.0.1:1972', '127.0.0.1:0'), [], 'port 0 is never named in advance');
  t.strictSame(
    local('127.0.0.1:9090'),
    [
      '6:18: mirrors[0].members[0].address: 127.0.0.1:9090 is admin.listen (default 127.0.0.1:9090), so this member is mirrorlb itself, not a database',
    ],
    'the default admin listener',
  );
  t.strictSame(
    local('localhost:8080', '0.0.0.0:1972', ['admin:', '  listen: 0.0.0.0:8080']),
    [
      '6:18: mirrors[0].members[0].address: localhost:8080 is admin.listen (line 12), so this member is mirrorlb itself, not a database',
    ],
    'an explicit admin listener',
  );
  t.strictSame(
    local('0.0.0.0:1972', '127.0.0.1:2000'),
    [
      '6:18: mirrors[0].members[0].address: 0.0.0.0 means "every address" to a listener; as a member address it reaches this machine, not a database: write the member\'s own host name or address',
    ],
    'a wildcard is never a member address',
  );
});

t.test('secrets are never repeated in a message', async (t) => {
  const token = (v: string) => problemsOf(withBase('admin:', `  token: ${v}`), { TOK: 'hunter2' });
  t.strictSame(token('short7!'), [
    '12:10: admin.token: must be null or a token of at least 8 printable ASCII characters without spaces, got a string of 7 characters (not shown)',
  ]);
  t.strictSame(
    token('${TOK}'),
    [
      '12:10: admin.token: must be null or a token of at least 8 printable ASCII characters without spaces, got a string of 7 characters (not shown)',
    ],
    'a token from ${VAR} is not shown either',
  );
  t.strictSame(token('"sec ret word"'), [
    '12:10: admin.token: must be null or a token of at least 8 printable ASCII characters without spaces, got a string of 12 characters, with a space or a character outside printable ASCII (not shown)',
  ]);
  t.strictSame(token('12345678901'), [
    '12:10: admin.token: must be null or a token of at least 8 printable ASCII characters without spaces, got a number',
  ]);
  const creds = problemsOf(withBase().replace('http://ap1b:52773', 'http://monitor:s3cr3t-pw@ap1b:52773'));
  t.strictSame(creds, [
    '10:16: mirrors[0].members[1].check: "http://***@ap1b:52773/csp/mirror_status.cxw": credentials in a check URL are not supported (the status page is read without authentication, and /status shows check URLs to anyone); give the status page a path that needs no login',
  ]);
  const bad = problemsOf(withBase().replace('http://ap1b:52773', 'http://monitor:s3cr3t-pw@ap1b:99999'));
  t.equal(bad.length, 1);
  t.notMatch(bad.join('\n'), /s3cr3t|monitor/, 'an unusable URL with credentials is shown without them');
  t.notMatch(token('short7!').join('\n'), /short7/);
});

t.test('sanity bounds: absurd values refused, doubtful ones warned, each with its line', async (t) => {
  t.strictSame(problemsOf(withBase('health:', '  interval: 1ms', '  fast_interval: 1ms')), [
    '12:13: health.interval: 1ms is below the lowest sensible 10ms: more than 100 probes a second per member would load the members, not watch them',
    '13:18: health.fast_interval: 1ms is below the lowest sensible 10ms: more than 100 probes a second per member would load the members, not watch them',
  ]);
  t.strictSame(
    problemsOf(
      withBase('health:', '  rise: 1000000000').replace(
        '    members:',
        '    health: {fall: 101}\n    members:',
      ),
    ),
    [
      '4:20: mirrors[0].health.fall: 101 is above the highest sensible 100: that many failed checks in a row would keep a dead primary for ages',
      '13:9: health.rise: 1000000000 is above the highest sensible 100: that many "primary" answers in a row would keep a new primary untrusted for ages',
    ],
  );
  const c = parseConfig(withBase('proxy:', '  hold_timeout: 1ms', '  connect_timeout: 5ms'), 'f.yml', {});
  t.strictSame(
    loadWarnings(c).map((w) => formatProblem(w)),
    [
      'f.yml:12:17: proxy.hold_timeout: 1ms is very short: held clients are closed before any failover can complete: holding is in effect off',
      'f.yml:13:20: proxy.connect_timeout: 5ms is very short: a connect over a network rarely completes that fast; most clients would be refused',
    ],
  );
  t.strictSame(loadWarnings(parseConfig(withBase(), 'f.yml', {})), [], 'the defaults earn no warning');
  t.strictSame(
    problemsOf(withBase('health:', '  interval: 10ms', '  fast_interval: 10ms', '  rise: 100')),
    [],
    'the bounds themselves pass',
  );
});
