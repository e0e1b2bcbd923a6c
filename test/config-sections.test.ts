/** The row sections (health, proxy, shutdown): messages that come from the key rows. */
import t from 'tap';
import { ConfigError } from '../src/config/errors.js';
import { parseConfig } from '../src/config/load.js';

const BASE = [
  'mirrors:',
  '  - name: m1',
  '    listen: 127.0.0.1:0',
  '    members:',
  '      - name: a',
  '        address: 127.0.0.1:1',
  '        check: http://127.0.0.1:2/status',
];

function problems(lines: string[]): string[] {
  try {
    parseConfig([...BASE, ...lines, ''].join('\n'), 'f.yml', {});
    return [];
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return e.problems.map((p) => `${p.line}:${p.col}: ${p.message}`);
  }
}

t.test('a bad duration is explained by the parser or the errorMessage, as its row says', async (t) => {
  t.strictSame(problems(['shutdown:', '  grace: 5x']), [
    '9:10: shutdown.grace: "5x" is not a duration; use a number with unit ms, s, m or h (e.g. 250ms, 1.5s, 2m)',
  ]);
  t.strictSame(problems(['proxy:', '  idle_timeout: 5x']), [
    '9:17: proxy.idle_timeout: must be a positive duration like 30m, or 0 / off for none, got "5x"',
  ]);
  t.strictSame(problems(['shutdown:', '  drain_timeout: 5x']), [
    '9:18: shutdown.drain_timeout: "5x" is not a duration; use a number with unit ms, s, m or h (e.g. 250ms, 1.5s, 2m)',
  ]);
});

t.test('one value too long for a timer is one problem, in every section and scope', async (t) => {
  const got = problems(['health:', '  fence_after: 999999h', 'shutdown:', '  grace: 999999h']);
  t.equal(got.length, 2, JSON.stringify(got));
  t.match(got[0], /^9:16: health\.fence_after: duration "999999h" is longer than the longest timer/);
  t.match(got[1], /^11:10: shutdown\.grace: duration "999999h" is longer than the longest timer/);
});
