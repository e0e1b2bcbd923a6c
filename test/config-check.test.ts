import { join } from 'node:path';
import { Writable } from 'node:stream';
import t from 'tap';
import { runCheck } from '../src/cli/check.js';
import type { Lookup } from '../src/cli/member-dns.js';

const FIXTURES = new URL('./fixtures/config/', import.meta.url).pathname;

class Collect extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

/** Every name resolves: these tests are about the file, not this machine's DNS. */
const resolves = async (): Promise<void> => undefined;

async function check(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  return checkWith(resolves, ...argv);
}

async function checkWith(
  lookup: Lookup | undefined,
  ...argv: string[]
): Promise<{ code: number; out: string; err: string }> {
  const out = new Collect();
  const err = new Collect();
  const code = await runCheck(argv, out, err, lookup ? { lookup } : {});
  return { code, out: out.text, err: err.text };
}

t.test('a valid file: exit 0, the summary on stdout', async (t) => {
  const file = join(FIXTURES, 'minimal.yml');
  for (const argv of [['--config', file], ['-c', file], [`--config=${file}`]]) {
    const r = await check(...argv);
    t.equal(r.code, 0, argv.join(' '));
    t.equal(r.err, '');
    t.match(r.out, new RegExp(`^${file}: OK, 1 mirror, 2 members\\n`));
    t.match(r.out, /^mirror ap1 {2}listen 0\.0\.0\.0:1972/m);
    t.match(r.out, /^ {2}ap1b {2}ap1b:1972 {2}http:\/\/ap1b:52773\/csp\/mirror_status\.cxw$/m);
    t.notMatch(r.out, /warning/);
  }
});

t.test('warnings follow the summary on stdout', async (t) => {
  const dir = t.testdir({
    'open.yml': `mirrors:
  - name: ap1
    listen: 0.0.0.0:1972
    members:
      - {name: ap1a, address: "ap1a:1972", check: "http://ap1a/s"}
admin:
  listen: 0.0.0.0:9090
`,
  });
  const r = await check('--config', join(dir, 'open.yml'));
  t.equal(r.code, 0);
  t.equal(r.err, '');
  t.match(
    r.out,
    /\nwarning: admin listens on 0\.0\.0\.0:9090 without admin\.token: maintenance actions \(drain, disable, enable\) are refused with 403 until a token is set\nwarning: mirror "ap1" has only one member: there is nothing to fail over to\n$/,
  );
});

t.test('an invalid file: exit 1, one FILE:LINE:COL: message line per problem on stderr', async (t) => {
  const dir = t.testdir({
    'bad.yml': `mirrors:
  - name: ap1
    listen: 0.0.0.0:99999
    members:
      - name: ap1a
        adress: ap1a:1972
        check: http://ap1a/s
log:
  level: chatty
`,
  });
  const file = join(dir, 'bad.yml');
  const r = await check('-c', file);
  t.equal(r.code, 1);
  t.equal(r.out, '');
  t.equal(
    r.err,
    [
      `${file}:3:13: mirrors[0].listen: port 99999 is out of range 0..65535`,
      `${file}:5:9: missing required key "address" in mirrors[0].members[0]`,
      `${file}:6:9: unknown key "adress" in mirrors[0].members[0]; did you mean "address"?`,
      `${file}:9:10: log.level: must be one of fatal, error, warn, info, debug, trace, silent, got "chatty"`,
      '',
    ].join('\n'),
  );
});

t.test('a missing file: exit 1 with the reason at 1:1', async (t) => {
  const file = join(t.testdir({}), 'nope.yml');
  const r = await check('--config', file);
  t.equal(r.code, 1);
  t.equal(r.err, `${file}:1:1: cannot read: ENOENT: no such file or directory, open '${file}'\n`);
});

t.test('usage errors: exit 2', async (t) => {
  const cases: [string[], RegExp][] = [
    [[], /^mirrorlb check: --config FILE is required\n\nUsage: mirrorlb check --config FILE/],
    [['--config'], /^mirrorlb check: --config needs a file name\n/],
    [['-c', ''], /^mirrorlb check: -c needs a file name\n/],
    [['--verbose'], /^mirrorlb check: unknown option --verbose\n/],
    [['file.yml'], /^mirrorlb check: unexpected argument file\.yml\n/],
    [['-c', 'a.yml', '-c', 'b.yml'], /^mirrorlb check: --config given twice\n/],
  ];
  for (const [argv, message] of cases) {
    const r = await check(...argv);
    t.equal(r.code, 2, `[${argv.join(' ')}]`);
    t.equal(r.out, '');
    t.match(r.err, message);
  }
  const help = await check('--help');
  t.equal(help.code, 0);
  t.match(help.out, /^Usage: mirrorlb check --config FILE/);
  t.equal(help.err, '');
});

t.test('warnings with a line: FILE:LINE:COL: warning: message, after the summary', async (t) => {
  const dir = t.testdir({
    'w.yml': `mirrors:
  - name: ap1
    listen: 127.0.0.1:1972
    members:
      - {name: ap1a, address: "127.0.0.1:2001", check: "http://127.0.0.1:2002/s"}
      - {name: ap1b, address: "b13-nohost.invalid:2001", check: "http://127.0.0.1:2003/s"}
      - {name: ap1c, address: "localhost:2001", check: "http://127.0.0.1:2004/s"}
proxy:
  hold_timeout: 50ms
`,
  });
  const file = join(dir, 'w.yml');
  // The real resolver: .invalid never resolves (RFC 6761), localhost always does.
  const r = await checkWith(undefined, '-c', file);
  t.equal(r.code, 0, 'warnings do not fail the check');
  t.equal(r.err, '');
  const warnings = r.out.split('\n').filter((l) => l.includes(': warning: '));
  t.equal(warnings.length, 2, r.out);
  t.match(
    warnings[0],
    new RegExp(
      `^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:6:31: warning: mirrors\\[0\\]\\.members\\[1\\]\\.address: "b13-nohost\\.invalid" does not resolve here \\((ENOTFOUND|EAI_AGAIN|EAI_FAIL|ENODATA)\\); while it does not, every client of this member is held and then closed$`,
    ),
  );
  t.match(
    warnings[1],
    /:9:17: warning: proxy\.hold_timeout: 50ms is very short: held clients are closed before any failover/,
  );
});

t.test('the DNS look-ups of check are bounded', async (t) => {
  const file = join(FIXTURES, 'minimal.yml');
  const hangs: Lookup = () => new Promise(() => undefined);
  const started = Date.now();
  const r = await checkWith(hangs, '-c', file);
  t.equal(r.code, 0);
  t.match(
    r.out,
    /minimal\.yml:6:18: warning: mirrors\[0\]\.members\[0\]\.address: "ap1a" does not resolve here \(no answer within 3 s\)/,
  );
  t.match(
    r.out,
    /minimal\.yml:9:18: warning: mirrors\[0\]\.members\[1\]\.address: "ap1b" does not resolve here/,
  );
  t.ok(Date.now() - started < 30_000, 'check returned although no lookup ever answered');
});
