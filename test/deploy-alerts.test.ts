/**
 * deploy/prometheus/alerts.yml, checked by the tool that loads it: `promtool check rules`,
 * its own unit tests (`promtool test rules alerts.test.yml`), and a promtool unit test whose
 * input series are the scrapes of a real run of the daemon (test/helpers/real-run.ts): each
 * alert fires on the event it is about and on nothing else, and the backup of a mirror,
 * which is not primary but answers, never alerts.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import YAML from 'yaml';
import { PROMETHEUS_OWN, inScrape, metricNames, promtoolParses } from './helpers/promql.js';
import { familyNames, needs, realRun, type Sample, type Stage } from './helpers/real-run.js';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const RULES = join(ROOT, 'deploy', 'prometheus', 'alerts.yml');
const UNIT_TESTS = join(ROOT, 'deploy', 'prometheus', 'alerts.test.yml');

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const rules = (YAML.parse(readFileSync(RULES, 'utf8')) as { groups: { rules: Rule[] }[] }).groups.flatMap(
  (g) => g.rules,
);

function promtool(args: string[], cwd?: string): { status: number | null; out: string } {
  const r = spawnSync('promtool', args, { encoding: 'utf8', timeout: 60_000, cwd });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

t.test('promtool check rules accepts alerts.yml', needs('promtool'), async (t) => {
  const r = promtool(['check', 'rules', RULES]);
  t.equal(r.status, 0, r.out);
  t.match(r.out, `SUCCESS: ${rules.length} rules found`);
  t.ok(promtoolParses(rules.map((r) => r.expr)).status === 0, 'every expr parses');
});

t.test('every rule has a severity, a summary and a description', async (t) => {
  t.same(
    rules.map((r) => r.alert),
    [
      'MirrorWithoutPrimary',
      'MirrorFailover',
      'MirrorMemberUnreachable',
      'MirrorPrimaryConflict',
      'MirrorClientsTimedOut',
      'MirrorCheckUrlUnexpected',
      'MirrorPoolMemberDown',
    ],
    "the alert names docs/observability.md has always shown, then the read pools'",
  );
  for (const r of rules) {
    t.match(r.labels?.severity, /^(warning|critical)$/, `${r.alert}: severity`);
    t.ok(r.annotations?.summary && r.annotations.description, `${r.alert}: summary and description`);
    // Not being primary is normal (a backup; a replica outside a read pool because it is the
    // primary): no rule may alert on it.
    t.notMatch(r.expr, /mirrorlb_member_primary/, `${r.alert} does not read mirrorlb_member_primary`);
  }
});

t.test('the unit tests in alerts.test.yml pass', needs('promtool'), async (t) => {
  const r = promtool(['test', 'rules', 'alerts.test.yml'], join(ROOT, 'deploy', 'prometheus'));
  t.equal(r.status, 0, r.out);
  t.match(r.out, /SUCCESS/);
  const tests = (
    YAML.parse(readFileSync(UNIT_TESTS, 'utf8')) as {
      tests: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[];
    }
  ).tests;
  const firing = new Set(
    tests
      .flatMap((x) => x.alert_rule_test ?? [])
      .filter((a) => (a.exp_alerts ?? []).length > 0)
      .map((a) => a.alertname),
  );
  t.same([...firing].sort(), rules.map((r) => r.alert).sort(), 'each alert is shown firing at least once');
});

const STAGE_MINUTES = 20;
/** Minutes into a stage when its alerts are read: past every `for`, within every increase window. */
const READ_AT = 3;

/**
 * A promtool unit test from the scrapes of a run: each scrape holds for STAGE_MINUTES minutes
 * (one sample a minute; `_` where a series was not yet exported), and the firing alerts are
 * read READ_AT minutes into each stage from the ALERTS series promtool's rule evaluation writes.
 */
function unitTestFrom(stages: readonly Stage[], expected: Record<string, string[]>): object {
  const key = (s: Sample): string =>
    `${s.name}{${Object.entries(s.labels)
      .map(([k, v]) => `${k}="${v}"`)
      .join(',')}}`;
  const series = new Map<string, (number | null)[]>();
  stages.forEach((stage, i) => {
    for (const s of stage.samples) {
      if (!s.name.startsWith('mirrorlb_')) continue;
      const values = series.get(key(s)) ?? Array<number | null>(stages.length).fill(null);
      values[i] = s.value;
      series.set(key(s), values);
    }
  });
  const input_series = [...series].map(([name, values]) => ({
    series: name,
    values: values.flatMap((v) => Array<string>(STAGE_MINUTES).fill(v === null ? '_' : String(v))).join(' '),
  }));
  const promql_expr_test = stages.map((stage, i) => ({
    expr: 'ALERTS{alertstate="firing"}',
    eval_time: `${i * STAGE_MINUTES + READ_AT}m`,
    exp_samples: (expected[stage.name] ?? []).map((labels) => ({
      labels: `ALERTS{alertstate="firing",${labels}}`,
      value: 1,
    })),
  }));
  return {
    rule_files: [RULES],
    evaluation_interval: '1m',
    tests: [{ name: 'a real run', interval: '1m', input_series, promql_expr_test }],
  };
}

t.test(
  'on the series of a real run, each alert fires on its event and nothing fires on a healthy cluster',
  needs('promtool'),
  async (t) => {
    const run = await realRun(t);
    t.same(
      run.stages.map((s) => s.name),
      ['healthy', 'failover', 'unreachable', 'unexpected', 'conflict', 'hold_timeout'],
    );
    const families = familyNames(run.stages.at(-1)!.text);
    for (const r of rules)
      for (const name of metricNames(r.expr))
        t.ok(PROMETHEUS_OWN.has(name) || inScrape(name, families), `${r.alert}: ${name} is in /metrics`);

    const url = (member: string) => {
      const found = run.stages
        .at(-1)!
        .samples.find((s) => s.name === 'mirrorlb_check_url_unexpected' && s.labels.member === member);
      return found!.labels.url!;
    };
    const unreachable = (mirror: string, member: string) =>
      `alertname="MirrorMemberUnreachable",member="${member}",mirror="${mirror}",severity="warning"`;
    const badUrl = `alertname="MirrorCheckUrlUnexpected",member="ap1a",mirror="ap1",severity="warning",url="${url('ap1a')}"`;
    // Every backup (ap1a after the switchover, ap2b before it went down, ap3a after the
    // conflict) is absent from these lists: not being primary alerts nobody.
    const lasting = [unreachable('ap2', 'ap2b'), unreachable('ap1', 'ap1a'), badUrl];
    const expected: Record<string, string[]> = {
      healthy: [],
      failover: ['alertname="MirrorFailover",mirror="ap1",severity="warning"'],
      unreachable: [unreachable('ap2', 'ap2b')],
      // ap1a's only check URL answers a redirect: the URL is alerted on, and ap1a also counts
      // as unreachable (mirrorlb_member_reachable counts authoritative answers).
      unexpected: lasting,
      // Newest wins: ap3b takes the role from ap3a, which is a failover of ap3 as well.
      conflict: [
        ...lasting,
        'alertname="MirrorPrimaryConflict",mirror="ap3",severity="critical"',
        'alertname="MirrorFailover",mirror="ap3",severity="warning"',
      ],
      hold_timeout: [
        ...lasting,
        'alertname="MirrorClientsTimedOut",mirror="ap1",reason="hold_timeout",severity="warning"',
      ],
    };
    const dir = mkdtempSync(join(tmpdir(), 'mlb-alerts-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'real-run.test.yml');
    writeFileSync(file, JSON.stringify(unitTestFrom(run.stages, expected), null, 1));
    const r = promtool(['test', 'rules', file]);
    t.equal(r.status, 0, r.out);

    // The same series with no expectation at all must fail: the test above can fail.
    const none = Object.fromEntries(run.stages.map((s) => [s.name, []]));
    writeFileSync(file, JSON.stringify(unitTestFrom(run.stages, none), null, 1));
    const bad = promtool(['test', 'rules', file]);
    t.not(bad.status, 0, 'expecting no alert on the same series fails');
    t.match(bad.out, /MirrorFailover/);
  },
);
