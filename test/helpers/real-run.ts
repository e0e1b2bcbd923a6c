/**
 * A real run of the daemon with simulated members, scraped after each event the shipped
 * alert rules and dashboard are about: the series they are checked against come from
 * /metrics, never from a hand-written guess of what the daemon exports.
 */
import { spawnSync } from 'node:child_process';
import type { SimMember } from '../../src/sim/member.js';
import { withBalancer, yamlFor, type Balancer } from './balancer.js';
import { connect, eventually, httpRequest, readUpTo, withSim } from './sim.js';

type Test = { teardown(fn: () => unknown): void };

export const STRICT = process.env.MIRRORLB_TEST_STRICT === '1';

export function hasTool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

/** Options for t.test: skipped with a reason when a tool is missing, failed instead under STRICT. */
export function needs(...tools: string[]): { skip?: string } {
  const missing = tools.filter((x) => !hasTool(x));
  return missing.length === 0 || STRICT ? {} : { skip: `${missing.join(', ')} not installed` };
}

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Samples of the text exposition format (label values as prom-client writes them). */
export function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** Metric family names of a scrape: a histogram's `_bucket`/`_sum`/`_count` count as its name. */
export function familyNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const m of text.matchAll(/^# TYPE (\S+) \S+$/gm)) names.add(m[1]!);
  for (const s of parseExposition(text)) names.add(s.name);
  return names;
}

export interface Stage {
  /** What happened just before this scrape. */
  readonly name: string;
  readonly samples: Sample[];
  readonly text: string;
}

export interface RealRun {
  readonly lb: Balancer;
  readonly sims: Readonly<Record<string, SimMember>>;
  /** In order: healthy, then one event each. */
  readonly stages: readonly Stage[];
}

function value(samples: readonly Sample[], name: string, labels: Record<string, string>): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    ?.value;
}

/**
 * Three mirrors of two simulated members each (ap1, ap2, ap3; the first of each primary),
 * scraped when all are healthy, then after each of: a switchover of ap1 to ap1b, ap2b down,
 * ap1a's status page answering a redirect, ap3b claiming primary while ap3a still does, and
 * a client of ap1 held to its hold timeout while ap1 had no primary (ap1b back afterwards).
 * Each stage waits for its effect in a scrape, with a bounded deadline.
 */
export async function realRun(t: Test): Promise<RealRun> {
  const names = ['ap1a', 'ap1b', 'ap2a', 'ap2b', 'ap3a', 'ap3b'];
  const sims: Record<string, SimMember> = {};
  for (const name of names)
    sims[name] = await withSim(t, { name, role: name.endsWith('a') ? 'primary' : 'backup' });
  const s = (name: string): SimMember => sims[name]!;
  // ap1 has a read pool (its members' Patroni-like /replica): the scrapes hold the pool's
  // series, with the primary out of the pool as `state="primary"`.
  const pool = [
    '    pools:',
    '      - name: reads',
    '        listen: 127.0.0.1:0',
    '        checks:',
    ...['ap1a', 'ap1b'].map((m) => `          ${m}: http://127.0.0.1:${s(m).webPort}/replica`),
  ].join('\n');
  const lb = await withBalancer(
    t,
    yamlFor(
      { ap1: [s('ap1a'), s('ap1b')], ap2: [s('ap2a'), s('ap2b')], ap3: [s('ap3a'), s('ap3b')] },
      '',
      'kind: iris\nproxy:\n  hold_timeout: 300ms',
    ).replace('  - name: ap1\n    listen: 127.0.0.1:0\n', (head) => `${head}${pool}\n`),
  );
  const stages: Stage[] = [];
  const scrape = async (): Promise<{ text: string; samples: Sample[] }> => {
    const res = await httpRequest(lb.adminPort(), '/metrics');
    if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
    return { text: res.body, samples: parseExposition(res.body) };
  };
  /** Scrapes until `ok` holds for the scrape (bounded), then records it as a stage. */
  const stage = async (name: string, ok: (x: readonly Sample[]) => boolean): Promise<void> => {
    let last: { text: string; samples: Sample[] } | null = null;
    const reached = await eventually(async () => ok((last = await scrape()).samples), 10_000, 50);
    if (!reached || !last) throw new Error(`stage "${name}" not reached within 10 s`);
    stages.push({ name, ...last });
  };
  const v = (x: readonly Sample[], name: string, labels: Record<string, string>) => value(x, name, labels);
  const primaryIs = (x: readonly Sample[], mirror: string, member: string) =>
    v(x, 'mirrorlb_member_primary', { mirror, member }) === 1 &&
    v(x, 'mirrorlb_mirror_has_primary', { mirror }) === 1;

  await stage(
    'healthy',
    (x) =>
      ['ap1', 'ap2', 'ap3'].every((m) => primaryIs(x, m, `${m}a`)) &&
      names.every((m) => v(x, 'mirrorlb_member_reachable', { member: m }) === 1) &&
      v(x, 'mirrorlb_pool_member_state', { member: 'ap1a', state: 'primary' }) === 1 &&
      v(x, 'mirrorlb_pool_member_in', { member: 'ap1b' }) === 1,
  );

  await s('ap1a').setRole('backup');
  await s('ap1b').setRole('primary');
  await stage(
    'failover',
    (x) => primaryIs(x, 'ap1', 'ap1b') && v(x, 'mirrorlb_failovers_total', { mirror: 'ap1' }) === 1,
  );

  await s('ap2b').setRole('down');
  await stage('unreachable', (x) => v(x, 'mirrorlb_member_reachable', { member: 'ap2b' }) === 0);

  s('ap1a').setStatusMode('redirect');
  await s('ap1a').settled();
  await stage('unexpected', (x) => v(x, 'mirrorlb_check_url_unexpected', { member: 'ap1a' }) === 1);

  await s('ap3b').setRole('primary');
  await stage('conflict', (x) => v(x, 'mirrorlb_primary_conflicts_total', { mirror: 'ap3' }) === 1);

  await s('ap1b').setRole('backup');
  await s('ap1b').settled();
  if (!(await eventually(() => !lb.daemon.snapshots().get('ap1')!.decision.accepting, 10_000)))
    throw new Error('ap1 kept accepting after its primary turned backup');
  const held = await connect(lb.port('ap1'));
  const closed = await readUpTo(held, 1, 10_000);
  held.destroy();
  if (!closed.ended || closed.data.length !== 0) throw new Error('the held client was not closed unserved');
  await s('ap1b').setRole('primary');
  await stage(
    'hold_timeout',
    (x) =>
      primaryIs(x, 'ap1', 'ap1b') &&
      (v(x, 'mirrorlb_connection_errors_total', { mirror: 'ap1', reason: 'hold_timeout' }) ?? 0) >= 1,
  );
  return { lb, sims, stages };
}
