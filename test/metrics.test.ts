import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Registry } from 'prom-client';
import { createLogger } from '../src/log.js';
import { Metrics } from '../src/metrics.js';
import { PoolReport } from '../src/mirror/pool-report.js';
import { VERSION } from '../src/version.js';
import { withBalancer, yamlFor } from './helpers/balancer.js';
import { connect, eventually, httpRequest, readGreeting, readUpTo, withSim } from './helpers/sim.js';

const PROMTOOL = '/usr/bin/promtool';
const STRICT = process.env.MIRRORLB_TEST_STRICT === '1';

/** The metric names and label names of the contract (../shared/contract.md), exactly. */
const CONTRACT: Record<string, { type: string; labels: string[] }> = {
  mirrorlb_member_primary: { type: 'gauge', labels: ['mirror', 'member'] },
  mirrorlb_member_reachable: { type: 'gauge', labels: ['mirror', 'member'] },
  mirrorlb_mirror_has_primary: { type: 'gauge', labels: ['mirror'] },
  mirrorlb_failovers_total: { type: 'counter', labels: ['mirror'] },
  mirrorlb_connections_active: { type: 'gauge', labels: ['mirror', 'member'] },
  mirrorlb_connections_total: { type: 'counter', labels: ['mirror', 'member'] },
  mirrorlb_connection_errors_total: { type: 'counter', labels: ['mirror', 'reason'] },
  mirrorlb_held_connections: { type: 'gauge', labels: ['mirror'] },
  mirrorlb_bytes_total: { type: 'counter', labels: ['mirror', 'member', 'direction'] },
  mirrorlb_health_checks_total: { type: 'counter', labels: ['mirror', 'member', 'result'] },
  mirrorlb_health_check_duration_seconds: { type: 'histogram', labels: ['mirror', 'member'] },
  mirrorlb_config_reloads_total: { type: 'counter', labels: ['result'] },
  mirrorlb_primary_conflicts_total: { type: 'counter', labels: ['mirror'] },
};

interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** Parses the text exposition format: TYPE lines and samples (label values without escapes). */
function parse(text: string): { types: Map<string, string>; samples: Sample[] } {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1]!, type[2]!);
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_]\w*)="([^"]*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { types, samples };
}

function value(samples: Sample[], name: string, labels: Record<string, string>): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    ?.value;
}

function promtool(
  text: string,
  args = ['check', 'metrics'],
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(PROMTOOL, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    p.stdout.on('data', (c: Buffer) => (output += c.toString()));
    p.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 20_000);
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
    p.stdin.end(text);
  });
}

/**
 * A balancer with traffic, a switchover and a held client that timed out, so that every
 * contract metric has had a reason to move.
 */
async function busyBalancer(t: Tap.Test) {
  const a = await withSim(t, { name: 'ap1a', role: 'primary' });
  const b = await withSim(t, { name: 'ap1b', role: 'backup' });
  const c = await withSim(t, { name: 'ap9a', role: 'backup' });
  const d = await withSim(t, { name: 'ap9b', role: 'backup' });
  const lb = await withBalancer(
    t,
    yamlFor({ ap1: [a, b], ap9: [c, d] }, '', 'proxy:\n  hold_timeout: 300ms'),
  );
  const scrape = async (): Promise<string> => {
    const res = await httpRequest(lb.adminPort(), '/metrics');
    t.equal(res.status, 200);
    t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/);
    return res.body;
  };
  t.ok(
    await eventually(() => lb.daemon.snapshots().get('ap1')!.decision.accepting, 5000),
    'ap1 has a primary',
  );

  const s = await connect(lb.port('ap1'));
  t.teardown(() => s.destroy());
  t.equal(await readGreeting(s), 'ap1a');
  s.write(Buffer.alloc(10_000, 1));
  t.equal((await readUpTo(s, 10_000, 5000)).data.length, 10_000, 'echoed through the balancer');

  // ap9 never has a primary: this client is held, then closed at the hold timeout.
  const held = await connect(lb.port('ap9'));
  t.teardown(() => held.destroy());
  t.equal((await readUpTo(held, 1, 5000)).ended, true, 'the held client is closed at the hold timeout');
  return { a, b, lb, scrape, session: s };
}

t.test('every contract metric is exported with its labels and real values', async (t) => {
  const { a, b, lb, scrape, session } = await busyBalancer(t);
  const { types, samples } = parse(await scrape());

  for (const [name, spec] of Object.entries(CONTRACT)) {
    t.equal(types.get(name), spec.type, `${name} is a ${spec.type}`);
    const series = samples.filter((s) =>
      spec.type === 'histogram' ? s.name === `${name}_bucket` : s.name === name,
    );
    t.ok(series.length > 0, `${name} has samples`);
    const want = spec.type === 'histogram' ? [...spec.labels, 'le'].sort() : [...spec.labels].sort();
    t.same(
      [...new Set(series.map((s) => Object.keys(s.labels).sort().join(',')))],
      [want.join(',')],
      `${name} has exactly the labels ${want.join(', ')}`,
    );
  }
  t.ok(
    samples.some((s) => s.name === 'process_cpu_seconds_total'),
    'prom-client process metrics',
  );
  t.ok(
    samples.some((s) => s.name === 'nodejs_eventloop_lag_p99_seconds'),
    'event-loop delay (prom-client default metrics)',
  );
  t.equal(value(samples, 'mirrorlb_build_info', { version: VERSION }), 1);
  const foreign = [...types.keys()].filter((n) => !/^(mirrorlb_|process_|nodejs_)/.test(n));
  t.same(foreign, [], 'every other metric has the mirrorlb_ prefix');

  t.equal(value(samples, 'mirrorlb_member_primary', { mirror: 'ap1', member: 'ap1a' }), 1);
  t.equal(value(samples, 'mirrorlb_member_primary', { mirror: 'ap1', member: 'ap1b' }), 0);
  t.equal(value(samples, 'mirrorlb_mirror_has_primary', { mirror: 'ap1' }), 1);
  t.equal(value(samples, 'mirrorlb_mirror_has_primary', { mirror: 'ap9' }), 0);
  t.equal(value(samples, 'mirrorlb_member_reachable', { mirror: 'ap1', member: 'ap1b' }), 1);
  t.equal(value(samples, 'mirrorlb_connections_active', { mirror: 'ap1', member: 'ap1a' }), 1);
  t.equal(value(samples, 'mirrorlb_connections_total', { mirror: 'ap1', member: 'ap1a' }), 1);
  t.equal(
    value(samples, 'mirrorlb_connections_total', { mirror: 'ap1', member: 'ap1b' }),
    0,
    'members without sessions are listed at 0',
  );
  t.equal(
    value(samples, 'mirrorlb_bytes_total', { mirror: 'ap1', member: 'ap1a', direction: 'in' }),
    10_000,
    'bytes of an open session are counted at scrape time',
  );
  t.ok(
    (value(samples, 'mirrorlb_bytes_total', { mirror: 'ap1', member: 'ap1a', direction: 'out' }) ?? 0) >=
      10_000 + 'ap1a\n'.length,
  );
  t.equal(
    value(samples, 'mirrorlb_connection_errors_total', { mirror: 'ap9', reason: 'hold_timeout' }),
    1,
    'the held client counts as a hold_timeout error',
    { samples: samples.filter((s) => s.name === 'mirrorlb_connection_errors_total') },
  );
  t.ok(
    (value(samples, 'mirrorlb_health_checks_total', { mirror: 'ap1', member: 'ap1a', result: 'primary' }) ??
      0) >= 1,
  );
  t.ok(
    (value(samples, 'mirrorlb_health_check_duration_seconds_count', { mirror: 'ap1', member: 'ap1a' }) ??
      0) >= 1,
  );
  t.equal(value(samples, 'mirrorlb_failovers_total', { mirror: 'ap1' }), 0, 'no failover yet', {
    events: lb.daemon.events.list(),
  });
  t.equal(value(samples, 'mirrorlb_primary_conflicts_total', { mirror: 'ap1' }), 0);
  t.equal(value(samples, 'mirrorlb_config_reloads_total', { result: 'ok' }), 0);

  await a.setRole('backup');
  await b.setRole('primary');
  t.ok(
    await eventually(() => lb.daemon.snapshots().get('ap1')!.decision.primary === 'ap1b', 8000),
    'switched over',
  );
  t.match(
    await readUpTo(session, 1, 5000),
    { ended: true, data: Buffer.alloc(0) },
    'the old session was cut',
  );
  const after = parse(await scrape()).samples;
  t.equal(
    value(after, 'mirrorlb_failovers_total', { mirror: 'ap1' }),
    1,
    'the switchover counts as one failover',
  );
  t.equal(value(after, 'mirrorlb_member_primary', { mirror: 'ap1', member: 'ap1b' }), 1);
  t.equal(value(after, 'mirrorlb_connections_active', { mirror: 'ap1', member: 'ap1a' }), 0);
  t.equal(
    value(after, 'mirrorlb_bytes_total', { mirror: 'ap1', member: 'ap1a', direction: 'in' }),
    10_000,
    'bytes are not counted twice',
  );
});

t.test('health-check counts agree with each other at every scrape and only grow', async (t) => {
  const a = await withSim(t, { name: 'ap1a', role: 'primary' });
  const b = await withSim(t, { name: 'ap1b', role: 'backup' });
  const lb = await withBalancer(t, yamlFor({ ap1: [a, b] }));
  // Each probe adds one to its result, to its URL's answer class (one URL per member, never
  // skipped) and to the duration histogram; a scrape must show the three equal, however often
  // it is taken (counts kept as plain numbers are exported as increments at scrape time).
  const counts = async (): Promise<Map<string, number[]>> => {
    const { samples } = parse((await httpRequest(lb.adminPort(), '/metrics')).body);
    const sum = (name: string, member: string): number =>
      samples
        .filter((s) => s.name === name && s.labels.mirror === 'ap1' && s.labels.member === member)
        .reduce((n, s) => n + s.value, 0);
    return new Map(
      ['ap1a', 'ap1b'].map((m) => [
        m,
        [
          sum('mirrorlb_health_checks_total', m),
          sum('mirrorlb_check_url_answers_total', m),
          sum('mirrorlb_health_check_duration_seconds_count', m),
        ],
      ]),
    );
  };
  let last = new Map<string, number[]>();
  for (let scrape = 1; scrape <= 4; scrape++) {
    let now = new Map<string, number[]>();
    const grew = await eventually(async () => {
      now = await counts();
      return [...now].every(([m, c]) => c[0]! > (last.get(m)?.[0] ?? 0));
    }, 5000);
    t.ok(grew, `scrape ${scrape}: every member was checked since the last scrape`, { now, last });
    for (const [m, [checks, answers, observed]] of now) {
      t.equal(answers, checks, `scrape ${scrape}: ${m}'s URL answers equal its checks`);
      t.equal(observed, checks, `scrape ${scrape}: ${m}'s check durations equal its checks`);
    }
    last = now;
  }
  const { samples } = parse((await httpRequest(lb.adminPort(), '/metrics')).body);
  const url = (m: string): string =>
    samples.find((s) => s.labels.member === m && s.labels.url)?.labels.url ?? '';
  t.equal(value(samples, 'mirrorlb_check_url_unexpected', { member: 'ap1a', url: url('ap1a') }), 0);
  t.equal(value(samples, 'mirrorlb_member_reachable', { mirror: 'ap1', member: 'ap1b' }), 1);
  t.equal(
    value(samples, 'mirrorlb_check_url_answers_total', { member: 'ap1b', answer: 'primary' }),
    undefined,
    'no series for an answer class never seen',
  );
});

t.test(
  'promtool check metrics accepts GET /metrics',
  {
    skip: !existsSync(PROMTOOL) && !STRICT ? `${PROMTOOL} not installed (Debian package prometheus)` : false,
  },
  async (t) => {
    const { scrape } = await busyBalancer(t);
    const r = await promtool(await scrape());
    t.equal(r.code, 0, 'promtool exits 0');
    t.equal(r.output.trim(), '', 'and reports no problem');
  },
);

t.test(
  'the scrape config in docs/observability.md and the alert rules it points to are valid',
  {
    skip: !existsSync(PROMTOOL) && !STRICT ? `${PROMTOOL} not installed (Debian package prometheus)` : false,
  },
  async (t) => {
    const doc = readFileSync(new URL('../docs/observability.md', import.meta.url), 'utf8');
    const blocks = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
    const scrape = blocks.find((b) => b.startsWith('scrape_configs:'));
    t.equal(scrape?.trim().split('\n').length, 1, 'the scrape config is one line');
    t.match(doc, '(../deploy/prometheus/alerts.yml)', 'the alert rules are the shipped file');
    const rules = readFileSync(new URL('../deploy/prometheus/alerts.yml', import.meta.url), 'utf8');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mlb-promtool-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(path.join(dir, 'prometheus.yml'), scrape ?? '');
    writeFileSync(path.join(dir, 'rules.yml'), rules ?? '');
    const config = await promtool('', ['check', 'config', path.join(dir, 'prometheus.yml')]);
    t.equal(config.code, 0, config.output);
    const checked = await promtool('', ['check', 'rules', path.join(dir, 'rules.yml')]);
    t.equal(checked.code, 0, checked.output);
    // Alerts use contract metrics, or ones the daemon registers beside them (the per-URL gauge,
    // and a read pool's series, registered with its first pool).
    const metrics = new Metrics(new Registry(), { defaultMetrics: false });
    new PoolReport(metrics.registry, 'm', 'p', createLogger('silent'));
    const registered = new Set((await metrics.registry.getMetricsAsJSON()).map((m) => m.name));
    const names = [...(rules ?? '').matchAll(/\b(mirrorlb_[a-z_]+)/g)].map((m) => m[1]!);
    t.ok(names.length > 0, 'the alert rules use mirrorlb metrics');
    for (const name of names) {
      t.ok(name in CONTRACT || registered.has(name), `${name} is a metric mirrorlb exports`);
    }
  },
);

t.test('Metrics on its own', async (t) => {
  t.test('seedMirror creates zero series and never resets a value', async (t) => {
    const m = new Metrics(new Registry(), { defaultMetrics: false });
    m.connectionsTotal.inc({ mirror: 'x', member: 'x1' }, 3);
    m.healthCheckDuration.observe({ mirror: 'x', member: 'x1' }, 0.01);
    m.seedMirror('x', ['x1', 'x2']);
    m.seedMirror('x', ['x1', 'x2']);
    const { samples } = parse(await m.registry.metrics());
    t.equal(value(samples, 'mirrorlb_connections_total', { mirror: 'x', member: 'x1' }), 3);
    t.equal(value(samples, 'mirrorlb_connections_total', { mirror: 'x', member: 'x2' }), 0);
    t.equal(
      value(samples, 'mirrorlb_health_checks_total', { mirror: 'x', member: 'x2', result: 'timeout' }),
      0,
    );
    t.equal(
      value(samples, 'mirrorlb_health_check_duration_seconds_count', { mirror: 'x', member: 'x1' }),
      1,
      'histograms keep their observations',
    );
    t.equal(
      samples.filter((s) => s.name === 'mirrorlb_failovers_total').length,
      1,
      'seeding twice adds nothing',
    );
  });

  t.test('hotPath: false turns the data-path metrics into exported-nothing no-ops', async (t) => {
    const m = new Metrics(new Registry(), { defaultMetrics: false, hotPath: false });
    m.connectionsTotal.inc({ mirror: 'x', member: 'x1' });
    m.connectionsActive.inc({ mirror: 'x', member: 'x1' });
    m.connectionsActive.dec({ mirror: 'x', member: 'x1' });
    m.bytes.inc({ mirror: 'x', member: 'x1', direction: 'in' }, 100);
    m.seedMirror('x', ['x1']);
    m.failovers.inc({ mirror: 'x' });
    const { types, samples } = parse(await m.registry.metrics());
    t.notOk(types.has('mirrorlb_connections_total'));
    t.notOk(types.has('mirrorlb_bytes_total'));
    t.notOk(types.has('mirrorlb_connections_active'));
    t.equal(value(samples, 'mirrorlb_failovers_total', { mirror: 'x' }), 1, 'the other metrics still count');
  });

  t.test('two instances do not share state', async (t) => {
    const m1 = new Metrics();
    const m2 = new Metrics();
    m1.failovers.inc({ mirror: 'x' });
    t.equal(
      value(parse(await m2.registry.metrics()).samples, 'mirrorlb_failovers_total', { mirror: 'x' }),
      undefined,
    );
    t.equal(
      value(parse(await m1.registry.metrics()).samples, 'mirrorlb_failovers_total', { mirror: 'x' }),
      1,
    );
  });

  t.test('the default metrics that promtool rejects are left out', async (t) => {
    const { types } = parse(await new Metrics().registry.metrics());
    t.notOk(types.has('nodejs_active_handles_total'));
    t.ok(types.has('nodejs_active_handles'), 'the labelled gauge carries the same numbers');
  });
});
