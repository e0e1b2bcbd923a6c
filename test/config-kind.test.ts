/**
 * A mirror's kind when the file does not write it: inferred from the check URLs
 * (src/config/kind.ts), said by `check`, refused when the URLs disagree.
 */
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import t from 'tap';
import { runCheck } from '../src/cli/check.js';
import { startBalancer } from '../src/cli/run.js';
import { ConfigError } from '../src/config/errors.js';
import { kindOfUrl } from '../src/config/kind.js';
import { parseConfig } from '../src/config/load.js';
import type { MirrorConfig } from '../src/config/types.js';
import { answerRules, classifyAnswer } from '../src/health/answer-rules.js';
import { createLogger } from '../src/log.js';
import { LogSink } from './helpers/balancer.js';

const MINIMAL = new URL('./fixtures/config/minimal.yml', import.meta.url).pathname;

/** A one-mirror file whose members are checked at `urls` (one member per URL list). */
function file(urls: string[][], mirrorLines: string[] = [], top: string[] = []): string {
  return [
    'mirrors:',
    '  - name: m1',
    '    listen: 127.0.0.1:0',
    ...mirrorLines.map((l) => `    ${l}`),
    '    members:',
    ...urls.flatMap((list, i) => [
      `      - name: n${i}`,
      `        address: 10.0.0.${i + 1}:5432`,
      `        check: [${list.join(', ')}]`,
    ]),
    ...top,
    '',
  ].join('\n');
}

const mirror = (text: string): MirrorConfig => parseConfig(text, 'f.yml', {}).mirrors[0]!;

function problems(text: string): string[] {
  try {
    parseConfig(text, 'f.yml', {});
    return [];
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return e.problems.map((p) => `${p.file}:${p.line}:${p.col}: ${p.message}`);
  }
}

/** What the mirror's answer rules make of one complete answer. */
function classify(m: MirrorConfig, status: number, body: string): string | null {
  const rules = answerRules({ ...m.health, checkSuperserver: false });
  return classifyAnswer(rules, status, (needle) => body.includes(needle.toString()), true);
}

const GATEWAY_503 =
  '<html><head><title>Server Availability Error</title></head><body>Server Availability Error</body></html>';

t.test("the contract's smallest file gets the IRIS answer rules without writing kind", async (t) => {
  const m = parseConfig(readFileSync(MINIMAL, 'utf8'), MINIMAL, {}).mirrors[0]!;
  t.equal(m.kind, 'iris');
  t.equal(m.kindSource, 'inferred');
  // A Web Gateway's own 503 page while the member is a healthy primary: a failed check of
  // that URL, never the member saying "not primary" (which would demote it and cut sessions).
  t.equal(classify(m, 503, GATEWAY_503), 'unexpected');
  t.equal(classify(m, 503, 'FAILED'), 'not_primary', "the member's own answer still demotes");
  t.equal(classify(m, 200, 'SUCCESS'), 'primary');
  t.equal(classify(m, 200, '<html>OK</html>'), 'unexpected');
});

t.test('each URL says its kind', async (t) => {
  const cases: [string, string][] = [
    ['http://ap1a:52773/csp/mirror_status.cxw', 'iris'],
    ['http://webgw1/ap1a/csp/bin/Mirror_Status.cxw', 'iris'],
    ['https://ap1a/csp/user/mirror_status.cxw?x=1', 'iris'],
    ['http://pg1:8008/primary', 'patroni'],
    ['http://pg1:8008/leader', 'patroni'],
    ['http://pg1:8008/master', 'patroni'],
    ['http://pg1:8008/read-write', 'patroni'],
    ['http://pg1:8008/standby-leader', 'patroni'],
    ['http://pg1:8008/replica?lag=16MB', 'patroni'],
    ['http://pg1:8008/read-only', 'patroni'],
    ['http://pg1:8008/sync', 'patroni'],
    ['http://pg1:8008/async', 'patroni'],
    ['https://gw/pg1/primary?tag_dc=east', 'patroni'],
    ['http://pg1:8008/', 'generic'],
    ['http://pg1:8008/health', 'generic'],
    ['http://db/status', 'generic'],
    ['http://db/primary/status', 'generic'],
    ['http://db/mirror_status.cxw.bak', 'generic'],
  ];
  for (const [url, kind] of cases) t.equal(kindOfUrl(url).kind, kind, url);
});

t.test('Patroni URLs get the Patroni defaults; other URLs the generic ones', async (t) => {
  const p = mirror(file([['http://pg1:8008/primary'], ['http://pg2:8008/primary']]));
  t.equal(p.kind, 'patroni');
  t.equal(p.kindSource, 'inferred');
  t.strictSame(p.health.notPrimaryStatus, [503, 200]);
  t.equal(p.health.fenceAfterMs, 5000);
  t.equal(classify(p, 200, '{"role": "replica", "state": "running"}'), 'not_primary');
  const g = mirror(file([['http://db1/status'], ['http://db2/status']]));
  t.equal(g.kind, 'generic');
  t.equal(g.kindSource, 'inferred');
  t.equal(g.health.fenceAfterMs, 10_000);
});

t.test('a written kind always wins over the URLs, on the mirror or at the top level', async (t) => {
  const iris = [['http://a/csp/mirror_status.cxw'], ['http://b/csp/mirror_status.cxw']];
  const own = mirror(file(iris, ['kind: generic']));
  t.match(own, { kind: 'generic', kindSource: 'written' });
  t.strictSame(own.health.notPrimaryBody, []);
  t.match(mirror(file(iris, [], ['kind: patroni'])), { kind: 'patroni', kindSource: 'written' });
  t.match(mirror(file(iris, ['kind: iris'])), { kind: 'iris', kindSource: 'written' });
  // Written, the URLs may disagree: the user said which rules apply.
  t.match(mirror(file([['http://a/csp/mirror_status.cxw'], ['http://b:8008/primary']], ['kind: iris'])), {
    kind: 'iris',
  });
});

t.test('URLs of one mirror that point at different kinds are refused, with the line', async (t) => {
  t.strictSame(problems(file([['http://a/csp/mirror_status.cxw'], ['http://b:8008/primary']])), [
    'f.yml:10:17: mirrors[0].members[1].check[0]: this check URL is for a Patroni member ' +
      '(the Patroni REST path /primary), but the one at line 7 is for an IRIS member ' +
      "(mirror_status.cxw); write the mirror's kind (iris, patroni or generic) to say which answer rules apply",
  ]);
  // Within one member's list too.
  const got = problems(file([['http://a/csp/mirror_status.cxw', 'http://b:8008/primary']]));
  t.equal(got.length, 1);
  t.match(
    got[0],
    /^f\.yml:7:\d+: mirrors\[0\]\.members\[0\]\.check\[1\]: this check URL is for a Patroni member/,
  );
  // A URL of no known kind (a gateway's own path) says nothing: the IRIS one decides.
  t.strictSame(problems(file([['http://a/csp/mirror_status.cxw', 'http://gw/a/status']])), []);
  // Each mirror on its own: two mirrors of different kinds are fine.
  const two = [
    'mirrors:',
    '  - name: m1',
    '    listen: 127.0.0.1:0',
    '    members: [{ name: a, address: "10.0.0.1:1972", check: "http://a/csp/mirror_status.cxw" }]',
    '  - name: m2',
    '    listen: 127.0.0.1:0',
    '    members: [{ name: b, address: "10.0.0.2:5432", check: "http://b:8008/primary" }]',
    '',
  ].join('\n');
  t.strictSame(
    parseConfig(two, 'f.yml', {}).mirrors.map((m) => m.kind),
    ['iris', 'patroni'],
  );
});

t.test('check says what it inferred, and nothing more when the kind is written', async (t) => {
  const run = async (path: string): Promise<string> => {
    let out = '';
    const sink = new Writable({ write: (c, _e, cb) => ((out += String(c)), cb()) });
    t.equal(await runCheck(['--config', path], sink, sink, { lookup: async () => [] }), 0);
    return out;
  };
  t.match(await run(MINIMAL), /^ {2}kind {4}iris \(inferred from mirror_status\.cxw\)$/m);
  const dir = t.testdir({
    'p.yml': file([['http://pg1:8008/primary'], ['http://pg2:8008/leader']]),
    'g.yml': file([['http://db1/status'], ['http://db2/status']]),
    'w.yml': file([['http://pg1:8008/primary'], ['http://pg2:8008/primary']], ['kind: patroni']),
  });
  t.match(
    await run(`${dir}/p.yml`),
    /^ {2}kind {4}patroni \(inferred from the Patroni REST path \/primary\)$/m,
  );
  t.match(
    await run(`${dir}/g.yml`),
    /^ {2}kind {4}generic \(inferred: no check URL is an IRIS or Patroni status path\)$/m,
  );
  t.match(await run(`${dir}/w.yml`), /^ {2}kind {4}patroni$/m);
});

t.test("the daemon's start record says each mirror's kind and where an inferred one came from", async (t) => {
  const text = [
    'mirrors:',
    '  - name: m1',
    '    listen: 127.0.0.1:0',
    '    members: [{ name: a, address: "127.0.0.1:1", check: "http://127.0.0.1:1/csp/mirror_status.cxw" }]',
    '  - name: m2',
    '    kind: generic',
    '    listen: 127.0.0.1:0',
    '    members: [{ name: b, address: "127.0.0.1:2", check: "http://127.0.0.1:2/primary" }]',
    'admin:',
    '  listen: 127.0.0.1:0',
    'log:',
    '  level: info',
    '',
  ].join('\n');
  const logs = new LogSink();
  const running = await startBalancer(parseConfig(text, 't.yml', {}), {
    log: createLogger('info', logs),
    signals: false,
  });
  t.teardown(() => running.stop({ graceMs: 0 }));
  const started = logs.records.find((r) => r.msg === 'mirrorlb started');
  t.strictSame(started?.kinds, { m1: 'iris (inferred from mirror_status.cxw)', m2: 'generic' });
});
