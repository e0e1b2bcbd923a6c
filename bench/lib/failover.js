// Part 1: how each balancer follows the primary. Two simulated members behind each balancer,
// clients connecting every few ms, and four ways for the primary to go away. Every run is
// measured from the clients' side only (greeting lines, errors, closed sessions), so
// mirrorlb and haproxy are judged by the same yardstick.
import os from 'node:os';
import { startPairBalancer } from './balancers.js';
import { openHolders, startFleet } from './fleet.js';
import { createMemberNetns } from './netns.js';
import { SIM_PORTS, startSim } from './sims.js';
import { log, median, now, round, sleep, waitFor } from './util.js';

export const SCENARIOS = [
  {
    id: 'switchover',
    label: 'switchover',
    demote: 'backup',
    what: 'old primary set to backup, then the other to primary',
  },
  {
    id: 'killed',
    label: 'primary killed',
    demote: 'down',
    what: 'old primary stops answering on both ports (refused), then the other to primary',
  },
  {
    id: 'hung',
    label: 'primary hung',
    demote: 'hang',
    what: 'old primary accepts but never answers, then the other to primary',
  },
  {
    id: 'blackholed',
    label: 'primary blackholed',
    demote: 'blackhole',
    what: "old primary's packets dropped (iptables DROP in its network namespace), then the other to primary",
  },
];

export const BALANCERS = [
  { id: 'mirrorlb', label: 'mirrorlb', needs: [] },
  { id: 'haproxy-seed', label: 'haproxy (seed)', needs: ['haproxy', 'curl'], cfg: 'haproxy-seed.cfg' },
  { id: 'haproxy-tuned', label: 'haproxy (tuned)', needs: ['haproxy'], cfg: 'haproxy-tuned.cfg' },
];

export function failoverSettings(quick) {
  return {
    reps: quick ? 1 : 5,
    clients: 4,
    pause_ms: 8,
    client_timeout_ms: 2000,
    holders: 8,
    baseline_ms: quick ? 200 : 500,
    gap_ms: 200,
    tail_ms: quick ? 300 : 1000,
    cap_ms: quick ? 4000 : 12000,
    stable_timeout_ms: 30000,
  };
}

/**
 * Runs the failover part. ctx: { repoRoot, benchDir, logDir, quick, reps?, cpus: { balancer, load },
 * tools: { available, missing } }. Resolves with { settings, balancers, scenarios, runs, summary, skipped, timelines }.
 */
export async function runFailover(ctx) {
  /** @type {ReturnType<typeof failoverSettings> & { members_network?: string }} */
  const settings = { ...failoverSettings(ctx.quick), ...(ctx.reps ? { reps: ctx.reps } : {}) };
  const skipped = [];
  const balancers = BALANCERS.filter((b) => {
    const missing = b.needs.filter((t) => !ctx.tools.available[t]);
    if (missing.length > 0)
      skipped.push({ what: b.label, reason: missing.map((t) => ctx.tools.missing[t]).join('; ') });
    return missing.length === 0;
  });
  const netns = await createMemberNetns(balancers.length * 2);
  let scenarios = SCENARIOS;
  if (netns.skipped) {
    skipped.push({ what: 'primary blackholed', reason: netns.skipped });
    scenarios = SCENARIOS.filter((s) => s.id !== 'blackholed');
  }
  if (ctx.only?.length) scenarios = scenarios.filter((s) => ctx.only.includes(s.id));
  settings.members_network =
    netns.skipped !== undefined
      ? 'loopback: each member on its own 127.0.1.x address'
      : `network namespace ${netns.ns}: each member on its own address behind a veth pair`;
  const addr = (i) => (netns.skipped !== undefined ? `127.0.1.${11 + i}` : netns.ips[i]);

  const envs = [];
  const runs = [];
  const timelines = {};
  try {
    for (const [i, b] of balancers.entries()) {
      const sims = [];
      for (const [j, [name, role]] of [
        ['ap1a', 'primary'],
        ['ap1b', 'backup'],
      ].entries()) {
        sims.push(
          await startSim({
            repoRoot: ctx.repoRoot,
            name,
            host: addr(i * 2 + j),
            role,
            netns: netns.skipped !== undefined ? null : netns.ns,
            cpu: ctx.cpus.load,
            logDir: ctx.logDir,
            // Each balancer's pair is its own: no balancer's checks ever touch another's members.
            ports: SIM_PORTS,
          }).then((s) => Object.assign(s, { label: `${b.id}-${name}` })),
        );
      }
      const lb = await startPairBalancer(ctx, b, sims, 'failover');
      envs.push({ b, lb, sims, primary: 'ap1a' });
    }

    for (let rep = 0; rep < settings.reps; rep++) {
      for (const sc of scenarios) {
        // A/B alternation: the order of balancers flips every repetition.
        const order = rep % 2 === 0 ? envs : [...envs].reverse();
        for (const env of order) {
          const r = await runOne(env, sc, rep, settings, netns);
          runs.push(r.summary);
          if (sc.id === 'switchover' && !timelines[env.b.id]) timelines[env.b.id] = r.timeline;
          log(
            `  failover ${sc.id.padEnd(10)} ${env.b.id.padEnd(13)} rep ${rep + 1}/${settings.reps}: ` +
              `first to new ${fmtMs(r.summary.failover_ms)}, misrouted ${r.summary.misrouted}, ` +
              `failed ${r.summary.failures.total}, old sessions ${fmtOld(r.summary.old_sessions)}`,
          );
        }
      }
    }
  } finally {
    for (const e of envs) await e.lb.stop();
    for (const e of envs) for (const s of e.sims) await s.proc.stop();
    if (netns.skipped === undefined) await netns.teardown();
  }
  return {
    settings,
    balancers: balancers.map((b) => ({
      id: b.id,
      label: b.label,
      config: b.cfg ? `bench/${b.cfg}` : 'defaults (see failover-mirrorlb.yml)',
    })),
    scenarios: scenarios.map(({ id, label, what }) => ({ id, label, what })),
    runs,
    summary: summarize(runs, balancers, scenarios),
    skipped,
    timelines,
    loadavg_at_end: os.loadavg().map((x) => round(x, 2)),
  };
}

function fmtMs(x) {
  return x === null ? 'never' : `${Math.round(x)} ms`;
}

function fmtOld(o) {
  if (o.n === 0) return 'n/a';
  return o.open_at_end > 0
    ? `${o.open_at_end}/${o.n} still open`
    : `closed after ≤${Math.round(o.max_ms)} ms`;
}

async function waitStable(env, X, Y, timeoutMs) {
  const t = now();
  await waitFor(
    async () => {
      const st = await env.lb.state();
      return st && st[X] === 'up' && st[Y] === 'down';
    },
    timeoutMs,
    `${env.b.id} to route to ${X} only`,
    100,
  );
  return now() - t;
}

async function demote(_env, X, sc, netns) {
  if (sc.demote === 'blackhole') {
    // The partition starts when the rules are in force, not when the command was started.
    await netns.blackhole(X.host, [X.ports.superserver, X.ports.web]);
    return now();
  }
  return X.setRole(sc.demote);
}

async function runOne(env, sc, rep, st, netns) {
  const [X, Y] = env.primary === env.sims[0].name ? env.sims : [env.sims[1], env.sims[0]];
  let stableMs = await waitStable(env, X.name, Y.name, st.stable_timeout_ms);
  let hold = await openHolders({ port: env.lb.port, n: st.holders });
  // A balancer may still be finishing the last change; the sessions must all be on X.
  for (let tries = 0; hold.holders.some((h) => h.member !== X.name) && tries < 5; tries++) {
    hold.close();
    await sleep(500);
    stableMs += 500 + (await waitStable(env, X.name, Y.name, st.stable_timeout_ms));
    hold = await openHolders({ port: env.lb.port, n: st.holders });
  }

  let tDemote = Infinity;
  let firstNew = null;
  let lastBad = 0;
  const fleet = startFleet({
    port: env.lb.port,
    clients: st.clients,
    pauseMs: st.pause_ms,
    timeoutMs: st.client_timeout_ms,
    onRecord: (r) => {
      if (r.t0 < tDemote) return;
      if (r.outcome === 'ok' && r.member === Y.name && firstNew === null) firstNew = r.t1;
      if (r.outcome !== 'ok' || r.member === X.name) lastBad = Math.max(lastBad, r.t1);
    },
  });
  await sleep(st.baseline_ms);
  tDemote = await demote(env, X, sc, netns);
  await sleep(st.gap_ms);
  const tPromote = await Y.setRole('primary');
  lastBad = Math.max(lastBad, tPromote);
  for (;;) {
    await sleep(25);
    const t = now();
    if (t - tDemote >= st.cap_ms) break;
    const oldOpen = hold.holders.some((h) => h.member === X.name && h.tClose === null);
    if (firstNew !== null && t - firstNew >= st.tail_ms && t - lastBad >= st.tail_ms && !oldOpen) break;
  }
  const records = await fleet.stop();
  const tEnd = now();
  const old = hold.holders
    .filter((h) => h.member === X.name)
    .map((h) => (h.tClose === null ? null : h.tClose - tDemote));
  hold.close();

  if (sc.demote === 'blackhole') {
    // Back to backup first (its control port is not dropped), so it never claims primary again.
    await X.setRole('backup');
    await netns.restore(X.host, [X.ports.superserver, X.ports.web]);
  } else {
    await X.setRole('backup');
  }
  env.primary = Y.name;

  const after = records.filter((r) => r.t0 >= tDemote);
  const newOk = after.filter((r) => r.outcome === 'ok' && r.member === Y.name);
  const firstT = newOk.length ? Math.min(...newOk.map((r) => r.t1)) : null;
  const misrouted = after.filter((r) => r.outcome === 'ok' && r.member === X.name);
  const failed = after.filter((r) => r.outcome !== 'ok');
  const failures = { total: failed.length, refused: 0, reset: 0, closed: 0, timeout: 0, other: 0 };
  for (const r of failed) failures[r.outcome in failures ? r.outcome : 'other']++;
  const closedMs = old.filter((x) => x !== null);
  const summary = {
    balancer: env.b.id,
    scenario: sc.id,
    rep,
    from: X.name,
    to: Y.name,
    failover_ms: firstT === null ? null : round(firstT - tPromote, 1),
    misrouted: misrouted.length,
    last_misrouted_ms: misrouted.length ? round(Math.max(...misrouted.map((r) => r.t0)) - tDemote, 1) : null,
    failures,
    last_failure_ms: failed.length ? round(Math.max(...failed.map((r) => r.t0)) - tDemote, 1) : null,
    attempts: after.length,
    old_sessions: {
      n: old.length,
      open_at_end: old.filter((x) => x === null).length,
      max_ms: closedMs.length ? round(Math.max(...closedMs), 1) : null,
      median_ms: round(median(closedMs), 1),
    },
    gap_ms: round(tPromote - tDemote, 1),
    window_ms: round(tEnd - tDemote, 0),
    stable_wait_ms: round(stableMs, 0),
  };
  const rel = (t) => round(t - tDemote, 2);
  const timeline = {
    promote_ms: rel(tPromote),
    end_ms: rel(tEnd),
    old: X.name,
    new: Y.name,
    // [start, end, client, what]: what is the member's name, or the failure.
    records: records.map((r) => [rel(r.t0), rel(r.t1), r.c, r.outcome === 'ok' ? r.member : r.outcome]),
    old_sessions_closed_ms: old,
  };
  return { summary, timeline };
}

/** Per balancer and scenario: medians over the repetitions. An old session still open counts as "longer than the window". */
export function summarize(runs, balancers, scenarios) {
  /** @type {Array<Record<string, unknown> & { scenario: string, balancer: string, failover_ms: number | null, mirrorlb_ratio?: number | null }>} */
  const out = [];
  for (const sc of scenarios) {
    for (const b of balancers) {
      const rs = runs.filter((r) => r.balancer === b.id && r.scenario === sc.id);
      if (rs.length === 0) continue;
      const oldPerRun = rs.map((r) =>
        r.old_sessions.n === 0 ? null : r.old_sessions.open_at_end > 0 ? Infinity : r.old_sessions.max_ms,
      );
      const known = oldPerRun.filter((x) => x !== null).sort((a, b2) => a - b2);
      const oldMedian = known.length ? known[Math.ceil(known.length / 2) - 1] : null;
      out.push({
        scenario: sc.id,
        balancer: b.id,
        runs: rs.length,
        failover_ms: median(rs.map((r) => r.failover_ms)),
        failover_ms_all: rs.map((r) => r.failover_ms),
        never_reached_new: rs.filter((r) => r.failover_ms === null).length,
        misrouted: median(rs.map((r) => r.misrouted)),
        failures: median(rs.map((r) => r.failures.total)),
        failures_by_kind: Object.fromEntries(
          ['refused', 'reset', 'closed', 'timeout', 'other'].map((k) => [
            k,
            rs.reduce((n, r) => n + r.failures[k], 0),
          ]),
        ),
        old_sessions_closed_ms: oldMedian === Infinity ? null : oldMedian,
        old_sessions_left_open_runs: oldPerRun.filter((x) => x === Infinity).length,
        window_ms: median(rs.map((r) => r.window_ms)),
      });
    }
  }
  for (const row of out) {
    if (row.balancer === 'mirrorlb') continue;
    const m = out.find((x) => x.scenario === row.scenario && x.balancer === 'mirrorlb');
    row.mirrorlb_ratio =
      m && m.failover_ms !== null && row.failover_ms ? round(m.failover_ms / row.failover_ms, 3) : null;
  }
  return out;
}
