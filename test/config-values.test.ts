import t from 'tap';
import { formatDuration, MAX_DURATION_MS, parseDuration } from '../src/config/duration.js';
import { substituteEnv } from '../src/config/env.js';
import { ConfigValueError } from '../src/config/errors.js';
import { parseHostPort, parseListenAddress } from '../src/config/hostport.js';
import { nearestKey } from '../src/config/suggest.js';
import { formatHostPort } from '../src/config/types.js';

t.test('parseDuration', async (t) => {
  const good: [string, number][] = [
    ['250ms', 250],
    ['1ms', 1],
    ['0.5ms', 1],
    ['1.5s', 1500],
    ['2m', 120_000],
    ['1h', 3_600_000],
    ['0.25h', 900_000],
    ['596h', 2_145_600_000],
  ];
  for (const [s, ms] of good) t.equal(parseDuration(s), ms, s);
  const bad: [string, string][] = [
    ['0s', 'duration "0s" is zero; it must be positive'],
    ['0.0ms', 'duration "0.0ms" is zero; it must be positive'],
    ['0.4ms', 'duration "0.4ms" is shorter than 1ms'],
    ['-1s', 'duration "-1s" is negative; it must be positive'],
    ['250', 'duration "250" has no unit; write 250ms or 250s'],
    ['1d', '"1d" is not a duration; use a number with unit ms, s, m or h (e.g. 250ms, 1.5s, 2m)'],
    ['1S', '"1S" is not a duration; use a number with unit ms, s, m or h (e.g. 250ms, 1.5s, 2m)'],
    [' 1s', '" 1s" is not a duration; use a number with unit ms, s, m or h (e.g. 250ms, 1.5s, 2m)'],
    ['', '"" is not a duration; use a number with unit ms, s, m or h (e.g. 250ms, 1.5s, 2m)'],
    [
      '597h',
      'duration "597h" is longer than the longest timer Node.js supports (2147483647ms, about 24.8 days)',
    ],
  ];
  for (const [s, message] of bad)
    t.throws(() => parseDuration(s), new ConfigValueError(message), JSON.stringify(s));
  t.throws(() => parseDuration(5 as unknown as string), { code: 'MLB_ERR_CONFIG_VALUE' });
});

t.test('formatDuration picks the largest exact unit and round-trips', async (t) => {
  const cases: [number, string][] = [
    [0, '0ms'],
    [250, '250ms'],
    [999, '999ms'],
    [1000, '1s'],
    [1500, '1.5s'],
    [1234, '1.234s'],
    [60_000, '1m'],
    [90_000, '90s'],
    [3_600_000, '1h'],
    [5_400_000, '90m'],
  ];
  for (const [ms, s] of cases) t.equal(formatDuration(ms), s, String(ms));
  t.throws(() => formatDuration(-1), { code: 'MLB_ERR_CONFIG_VALUE' });
  for (const ms of [1, 7, 999, 1001, 59_999, 61_000, 3_599_999, 86_400_000, MAX_DURATION_MS]) {
    t.equal(parseDuration(formatDuration(ms)), ms, `round trip ${ms}`);
  }
});

t.test('parseHostPort', async (t) => {
  const good: [string, string, number][] = [
    ['a:1', 'a', 1],
    ['0.0.0.0:1972', '0.0.0.0', 1972],
    ['ap1a.example.com:65535', 'ap1a.example.com', 65535],
    ['[::1]:1972', '::1', 1972],
    ['[::]:80', '::', 80],
    ['[fe80::1%eth0]:80', 'fe80::1%eth0', 80],
  ];
  for (const [s, host, port] of good) {
    t.strictSame(parseHostPort(s), { host, port }, s);
    t.equal(formatHostPort(parseHostPort(s)), s, `${s} formats back`);
  }
  const bad: [string, string][] = [
    ['ap1a', '"ap1a" has no port; write host:port, e.g. ap1a:1972'],
    [':1972', '":1972" has an empty host; write e.g. db1:1972 (or 0.0.0.0:1972 to listen on every address)'],
    ['::1:1972', '"::1:1972": an IPv6 address must be in brackets, e.g. [::1]:1972'],
    ['a:0', 'port 0 is out of range 1..65535'],
    ['a:65536', 'port 65536 is out of range 1..65535'],
    ['a:x', 'port "x" is not a number'],
    ['a:', 'port "" is not a number'],
    ['a:-1', 'port "-1" is not a number'],
    ['[::1]', '"[::1]" has no ":port" after the "]"'],
    ['[::1:1972', '"[::1:1972" has no "]" closing the IPv6 address'],
    ['[zz]:1', '"[zz]" is not an IPv6 address'],
    ['999.1.1.1:5', '"999.1.1.1" is not a valid IPv4 address'],
    ['a b:1', '"a b" is not a valid host name or address'],
  ];
  for (const [s, message] of bad) t.throws(() => parseHostPort(s), new ConfigValueError(message), s);
  t.strictSame(
    parseListenAddress('127.0.0.1:0'),
    { host: '127.0.0.1', port: 0 },
    'a listen address may use port 0',
  );
  t.throws(() => parseListenAddress('127.0.0.1:65536'), { message: 'port 65536 is out of range 0..65535' });
});

t.test('substituteEnv', async (t) => {
  const env = { A: 'a', EMPTY: '', URL: 'http://x:1/y' };
  const good: [string, string][] = [
    ['plain', 'plain'],
    ['${A}', 'a'],
    ['x${A}y${A}', 'xaya'],
    ['${EMPTY}', ''],
    ['${EMPTY:-d}', 'd'],
    ['${UNSET:-}', ''],
    ['${UNSET:-a:b}', 'a:b'],
    ['${URL}', 'http://x:1/y'],
    ['$$', '$'],
    ['$${A}', '${A}'],
    ['$$$${A}', '$${A}'],
    ['cost $5', 'cost $5'],
    ['end$', 'end$'],
  ];
  for (const [s, out] of good) t.strictSame(substituteEnv(s, env), { ok: true, value: out }, s);
  const bad: [string, string][] = [
    ['${UNSET}', 'environment variable UNSET is not set (use ${UNSET:-default} for a fallback)'],
    ['${ A }', '"${ A }" is not a variable reference; use ${NAME} or ${NAME:-default}'],
    ['${}', '"${}" is not a variable reference; use ${NAME} or ${NAME:-default}'],
    ['${A', 'unterminated "${" (write $$ for a literal $)'],
  ];
  for (const [s, message] of bad) t.strictSame(substituteEnv(s, env), { ok: false, message }, s);
});

t.test('nearestKey suggests only close keys', async (t) => {
  const keys = ['name', 'address', 'check'];
  t.equal(nearestKey('adress', keys), 'address');
  t.equal(nearestKey('addres', keys), 'address');
  t.equal(nearestKey('Address', keys), 'address');
  t.equal(nearestKey('chekc', keys), 'check');
  t.equal(nearestKey('nmae', keys), 'name');
  t.equal(nearestKey('fastInterval', ['interval', 'fast_interval']), 'fast_interval');
  t.equal(nearestKey('weight', keys), null);
  t.equal(nearestKey('x', keys), null);
});
