import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import t from 'tap';
import { runCheck } from '../src/cli/check.js';
import { ConfigError } from '../src/config/errors.js';
import { loadConfigFile, parseConfig } from '../src/config/load.js';
import type { Config } from '../src/config/types.js';

const DIR = new URL('./fixtures/config/hostile/', import.meta.url).pathname;
/**
 * CPU time, not wall time, so other people's tests on the same two cores do not count.
 * Generous: the slowest file needs about half a second; what this catches is the quadratic
 * or exponential case that takes minutes.
 */
const FAST_CPU_MS = 5000;

function cpuMs(since: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1000;
}

/** What each fixture must be refused for (one problem must match); a new fixture needs a line here. */
const EXPECT: Record<string, RegExp> = {
  'admin-collision.yml': /collides with admin\.listen \(default 127\.0\.0\.1:9090\)/,
  'alias-bomb-in-mirrors.yml': /alias expansions; refusing what looks like a YAML alias bomb/,
  'alias-cycle.yml': /alias \*h is inside its own anchor \(a cycle\)/,
  'alias-undefined.yml': /alias \*nowhere has no anchor/,
  'ansi-escape-injection.yml': /control character U\+001B/,
  'bad-duration-units.yml': /"1d" is not a duration/,
  'bad-indentation.yml': /invalid YAML/,
  'bad-names.yml': /mirrors\[0\]\.name: must be a name/,
  'billion-laughs.yml': /alias expansions; refusing what looks like a YAML alias bomb/,
  'binary-nul.yml': /control character U\+0000/,
  'binary-png.yml': /not UTF-8 text/,
  'bom-unknown-key.yml': /unknown key "max_hold" in proxy; did you mean "max_held"\?/,
  'check-list-too-long.yml': /got a list of 9/,
  'check-shared-url.yml': /member "ap1a" checks the same URL/,
  'check-urls-bad.yml': /"http:\/\/exa mple\/x" is not a valid URL/,
  'crlf-unknown-key.yml': /unknown key "helth" at the top level; did you mean "health"\?/,
  'deep-block-nesting.yml': /nesting deeper than 64 levels/,
  'deep-compact-sequences.yml': /nesting deeper than 64 levels/,
  'deep-flow-nesting.yml': /nesting deeper than 64 levels/,
  'deep-flow-unclosed.yml': /nesting deeper than 64 levels/,
  'deep-mixed-junk.yml': /nesting deeper than 64 levels/,
  'duplicate-keys.yml': /duplicate key "rise"/,
  'duplicate-names.yml': /duplicate mirror name "ap1"/,
  'duplicate-top-level-key.yml': /duplicate key "mirrors"/,
  'duration-too-long.yml': /longer than the longest timer/,
  'empty.yml': /the file is empty/,
  'env-bad-syntax.yml': /unterminated "\$\{"/,
  'env-into-number.yml': /health\.rise: must be an integer >= 1, got "3" \(a value from \$\{VAR\} is text/,
  'env-unset.yml': /environment variable MLB_TEST_UNSET_HOST is not set/,
  'expect-body-empty.yml':
    /health\.expect_body: must be a non-empty string, a list of 1 to 8 non-empty strings, or null/,
  'fast-interval-longer.yml': /health\.fast_interval 1s is longer than health\.interval 100ms/,
  'html-document.yml': /the top level must be a mapping/,
  'ipv6-bad-brackets.yml': /"\[nothex\]" is not an IPv6 address/,
  'ipv6-unbracketed.yml': /an IPv6 address must be in brackets/,
  'json-document.yml': /mirrors: must be a list of 1 to 64 mirrors, got 5/,
  'listen-collision.yml': /\[::\]:1972 collides with mirrors\[0\]\.listen 0\.0\.0\.0:1972/,
  'many-problems.yml': /^\.\.\. and 50 more problems$/,
  'member-in-two-mirrors.yml': /ap1a:1972 is already a member address in mirror "ap1"/,
  'members-empty-and-null.yml': /mirrors\[1\]\.members: must be a list of 1 to 16 members, got nothing/,
  'merge-key.yml': /unknown key "<<" in mirrors\[0\]; YAML merge keys are not supported/,
  'mirrors-empty.yml': /got an empty list/,
  'mirrors-not-a-list.yml': /mirrors: must be a list of 1 to 64 mirrors, got a mapping/,
  'multiple-documents.yml': /a second YAML document/,
  'negative-durations.yml': /duration "-250ms" is negative/,
  'non-string-keys.yml': /a key must be a plain word/,
  'null-values.yml': /admin\.listen: must be host:port/,
  'numbers-hostile.yml': /health\.rise: must be an integer >= 1, got Infinity/,
  'numbers-out-of-range.yml': /health\.expect_status: must be an HTTP status code/,
  'only-comments.yml': /the file is empty/,
  'per-mirror-override-bad.yml': /unknown key "bogus" in mirrors\[0\]\.health/,
  'port-missing.yml': /needs quotes/,
  'port-not-a-number.yml': /port "http" is not a number/,
  'port-out-of-range.yml': /port 65536 is out of range 1\.\.65535/,
  'port-zero.yml': /port 0 is out of range 1\.\.65535/,
  'prototype-pollution.yml': /unknown key "__proto__" at the top level/,
  'rise-fall-zero.yml': /health\.fall: must be an integer >= 1, got -1/,
  'shell-script.yml': /the top level must be a mapping/,
  'tab-indentation.yml': /tab used for indentation/,
  'token-and-enums.yml': /log\.level: must be one of/,
  'token-with-spaces.yml': /admin\.token: must be null or a token/,
  'too-many-members.yml': /must be a list of 1 to 16 members, got a list of 17/,
  'too-many-mirrors.yml': /must be a list of 1 to 64 mirrors, got a list of 65/,
  'top-level-list.yml': /the top level must be a mapping .*got a list/,
  'top-level-null.yml': /the file is empty/,
  'top-level-scalar.yml': /got the plain value "just some words"/,
  'unclosed-flow.yml': /invalid YAML/,
  'unclosed-quote.yml': /invalid YAML: Missing closing "quote/,
  'unknown-keys.yml': /unknown key "adress" in mirrors\[0\]\.members\[0\]; did you mean "address"\?/,
  'utf16.yml': /not UTF-8 text/,
  'wrong-types.yml': /proxy: must be a mapping, got a list of 2/,
  'yaml-tags.yml': /unsupported YAML tag/,
  'zero-durations.yml': /duration "0h" is zero/,
};

/** Files too big to commit, written for each run. */
function generate(dir: string): Record<string, RegExp> {
  const files: Record<string, [string | Buffer, RegExp]> = {
    'huge.yml': [`mirrors:\n${'  - name: x\n'.repeat(200_000)}`, /^file is larger than 1048576 bytes/],
    'huge-zeros.yml': [Buffer.alloc(3 * 1024 * 1024), /^file is larger than 1048576 bytes/],
    'too-many-list-items.yml': [
      `mirrors: [${'1,'.repeat(500_000)}1]\n`,
      /more than 100000 lines and YAML indicators/,
    ],
    'too-many-lines.yml': [
      `mirrors:\n${'- 1\n'.repeat(200_000)}`,
      /more than 100000 lines and YAML indicators/,
    ],
    'near-limit-list.yml': [`mirrors: [${'1,'.repeat(95_000)}1]\n`, /^mirrors: a list of 95001 items/],
    'near-limit-unknown-keys.yml': [
      Array.from({ length: 24_000 }, (_, i) => `k${i}: ${i}`).join('\n'),
      /^\.\.\. and 23901 more problems$/,
    ],
    'near-limit-aliases.yml': [
      `a: &a [${'x,'.repeat(900)}x]\nb: [${'*a,'.repeat(119)}*a]\n`,
      /more than 100000 values/,
    ],
    'near-limit-long-line.yml': [
      `mirrors:\n  - name: ${'a'.repeat(1_000_000)}\n`,
      /mirrors\[0\]\.name: must be a name/,
    ],
  };
  const expect: Record<string, RegExp> = {};
  for (const [name, [content, re]] of Object.entries(files)) {
    writeFileSync(join(dir, name), content);
    expect[name] = re;
  }
  return expect;
}

class Collect extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

type Asserts = { ok(value: unknown, message?: string, extra?: object): boolean };

/** Every line is FILE:LINE:COL: message, no stack frames, and one message matches `expect`. */
function assertProblems(t: Asserts, file: string, text: string, expect: RegExp): void {
  const lines = text.replace(/\n$/, '').split('\n');
  const shape = new RegExp(`^${escapeRe(file)}:\\d+:\\d+: \\S`);
  t.ok(lines.length > 0 && lines.every((l) => shape.test(l)), 'every line is FILE:LINE:COL: message', {
    lines,
  });
  t.ok(
    lines.every((l) => !l.includes('    at ')),
    'no stack trace',
  );
  const messages = lines.map((l) => l.replace(/^.*?:\d+:\d+: /, ''));
  t.ok(
    messages.some((m) => expect.test(m)),
    `a problem matches ${expect}`,
    { messages: messages.slice(0, 5) },
  );
}

t.test('every hostile file is refused with positioned problems, fast', async (t) => {
  const committed = readdirSync(DIR).filter((f) => f.endsWith('.yml'));
  t.ok(committed.length >= 40, `${committed.length} committed hostile files`);
  t.strictSame(
    committed.filter((f) => !(f in EXPECT)),
    [],
    'every fixture has an expectation',
  );
  const tmp = t.testdir({});
  const cases = [
    ...committed.map((f) => ({ file: join(DIR, f), expect: EXPECT[f] as RegExp, cli: true })),
    // The big generated files go through the loader only: the CLI adds nothing but seconds.
    ...Object.entries(generate(tmp)).map(([f, expect]) => ({ file: join(tmp, f), expect, cli: false })),
  ];
  for (const { file, expect, cli } of cases) {
    await t.test(file.slice(file.lastIndexOf('/') + 1), async (t) => {
      const started = process.cpuUsage();
      const err = await loadConfigFile(file, {}).then(
        () => null,
        (e: unknown) => e,
      );
      const ms = cpuMs(started);
      t.ok(err instanceof ConfigError, 'refused with a ConfigError');
      if (!(err instanceof ConfigError)) return;
      t.equal(err.code, 'MLB_ERR_CONFIG');
      assertProblems(t, file, err.message, expect);
      t.ok(ms < FAST_CPU_MS, `finished in ${ms.toFixed(0)} ms of CPU`);
      if (!cli) return;

      const out = new Collect();
      const errOut = new Collect();
      t.equal(await runCheck(['--config', file], out, errOut), 1, 'check exits 1');
      t.equal(out.text, '', 'nothing on stdout');
      assertProblems(t, file, errOut.text, expect);
    });
  }
});

/** Deterministic, so a failure replays; mutations of a valid file hit every stage of the loader. */
function mutations(seed: number, count: number): string[] {
  const base = readFileSync(join(DIR, '..', 'full.yml'), 'utf8');
  let state = seed;
  const rnd = (): number => (state = (state * 1103515245 + 12345) % 2147483648) / 2147483648;
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)] as T;
  const snippets = [
    '[',
    ']',
    '{',
    '}',
    ',',
    ': ',
    '- ',
    '&a ',
    '*a',
    '!!str ',
    '"',
    "'",
    '#',
    '\n',
    '\n  ',
    '\t',
  ];
  const more = [
    '${X}',
    '$$',
    '${',
    '~',
    '-1',
    '1e9',
    '<<: *a\n',
    '? ',
    '|\n',
    '---\n',
    '%YAML 1.2\n',
    '\\',
    'é',
    '😀',
  ];
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    let s = base;
    for (let n = 1 + Math.floor(rnd() * 6); n > 0; n--) {
      const at = Math.floor(rnd() * (s.length + 1));
      const op = rnd();
      if (op < 0.4) s = s.slice(0, at) + pick([...snippets, ...more]) + s.slice(at);
      else if (op < 0.7) s = s.slice(0, at) + s.slice(at + 1 + Math.floor(rnd() * 20));
      else s = s.slice(0, at) + s.slice(at, at + Math.floor(rnd() * 60)) + s.slice(at);
    }
    out.push(s);
  }
  return out;
}

t.test(
  'random mutations of a valid file: a sane Config or positioned problems, never anything else',
  async (t) => {
    let valid = 0;
    let refused = 0;
    const started = process.cpuUsage();
    for (const text of mutations(20_251_127, 1000)) {
      let config: Config;
      try {
        config = parseConfig(text, 'm.yml', { X: 'x' });
      } catch (e) {
        refused++;
        if (
          !(e instanceof ConfigError) ||
          !e.message.split('\n').every((l) => /^m\.yml:\d+:\d+: \S/.test(l))
        ) {
          t.fail('not a clean ConfigError', { error: String(e), text });
          break;
        }
        continue;
      }
      valid++;
      const bad = insane(config);
      if (bad) {
        t.fail(bad, { text });
        break;
      }
    }
    t.ok(valid > 20 && refused > 700, `${valid} still valid, ${refused} refused`);
    t.ok(cpuMs(started) < 30_000, 'in reasonable CPU time');
  },
);

/** What the rest of mirrorlb relies on in any Config the loader returns. */
function insane(c: Config): string | null {
  const durations = c.mirrors.flatMap((m) => [
    m.health.intervalMs,
    m.health.fastIntervalMs,
    m.health.fastWindowMs,
    m.health.timeoutMs,
    m.proxy.connectTimeoutMs,
    m.proxy.holdTimeoutMs,
  ]);
  if (!durations.every((ms) => Number.isInteger(ms) && ms >= 1))
    return 'a duration is not a positive integer';
  const addresses = c.mirrors.flatMap((m) => m.members.map((x) => x.address));
  if (!addresses.every((a) => Number.isInteger(a.port) && a.port >= 1 && a.port <= 65535 && a.host !== '')) {
    return 'a member address is out of range';
  }
  const urls = c.mirrors.flatMap((m) => m.members.flatMap((x) => x.check));
  if (!urls.every((u) => /^https?:\/\//i.test(u))) return 'a check URL is not http(s)';
  if (!c.mirrors.every((m) => m.health.fastIntervalMs <= m.health.intervalMs))
    return 'fast_interval > interval';
  if (!Object.isFrozen(c) || !Object.isFrozen(c.mirrors[0]?.members)) return 'not frozen';
  return null;
}
