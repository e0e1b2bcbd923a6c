// Part 3 (full run only): a real Patroni cluster (etcd 3.4 v2 API, two Patroni 3.0.2 nodes,
// PostgreSQL 15, asynchronous replication, ttl 10 s, loop_wait 1 s) behind three balancers
// at once: mirrorlb with examples/patroni.yml, haproxy as Patroni's example configures it,
// and haproxy tuned (inter 1s fall 2 rise 1). Each balancer has its own PostgreSQL clients
// (node-postgres; new connection per write and long-lived sessions) writing uniquely
// numbered rows; one fault of the leader hits all three at the same moment. Per fault and
// balancer: time from the fault to the first write on the new leader, the same after the
// new leader's REST said 200, failed writes by kind, writes that reached the old leader
// after it stopped being primary, how long sessions on the old leader stayed open, and
// acknowledged writes that are not on the new leader.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import {
  EXAMPLE,
  LOOP_WAIT_S,
  MIRRORLB_BIN,
  patroniMissing,
  pollRest,
  startCluster,
  TTL_S,
  waitFor,
} from './patroni-cluster.mjs';
import { startWriters, TABLE_SQL } from './pg-writers.mjs';
import { startHaproxy } from './balancers.js';
import { start } from './proc.js';
import { httpCall } from './sims.js';
import { log, median, round } from './util.js';

const BASE = 22100; // cluster 22101-22122, balancers 22140-22143: below the ephemeral range
export const FAULTS = [
  { id: 'switchover', label: '`patronictl switchover`' },
  { id: 'kill', label: "leader's Patroni + postmaster SIGKILL" },
  { id: 'stop', label: "leader's Patroni + postmaster SIGSTOP (resumed after the new leader is up)" },
];
export const BALANCERS = [
  { id: 'mirrorlb', label: 'mirrorlb (examples/patroni.yml)' },
  { id: 'haproxy-patroni', label: "haproxy (Patroni's example)", cfg: 'haproxy-patroni-example.cfg' },
  { id: 'haproxy-patroni-tuned', label: 'haproxy (tuned)', cfg: 'haproxy-patroni-tuned.cfg' },
];
const KINDS = ['refused', 'timeout', 'read-only', 'other'];

async function startMirrorlbPatroni(ctx, cluster, port, adminPort) {
  const [pg1, pg2] = cluster.nodes;
  const proc = start({
    name: 'mirrorlb-patroni',
    cmd: process.execPath,
    args: [MIRRORLB_BIN, '--config', EXAMPLE],
    cpu: ctx.cpus.balancer,
    logDir: ctx.logDir,
    env: {
      MLB_PG_LISTEN: `127.0.0.1:${port}`,
      MLB_ADMIN_LISTEN: `127.0.0.1:${adminPort}`,
      PG1_ADDRESS: `127.0.0.1:${pg1.pgPort}`,
      PG1_REST: `127.0.0.1:${pg1.restPort}`,
      PG2_ADDRESS: `127.0.0.1:${pg2.pgPort}`,
      PG2_REST: `127.0.0.1:${pg2.restPort}`,
    },
  });
  const admin = (p) =>
    httpCall('127.0.0.1', adminPort, 'GET', p, undefined, 2000).catch(() => ({ status: 0, body: '' }));
  await waitFor(
    'mirrorlb (examples/patroni.yml) routing',
    async () => {
      if (proc.exitCode !== null)
        throw new Error(`mirrorlb exited: ${fs.readFileSync(proc.logFile, 'utf8').slice(-2000)}`);
      return (await admin('/readyz?mirror=pg')).status === 200;
    },
    20_000,
  );
  return {
    port,
    proc,
    async state() {
      const r = await admin('/status');
      if (r.status !== 200) return null;
      const m = JSON.parse(r.body).mirrors.find((x) => x.name === 'pg');
      const out = {};
      for (const mem of m.members) out[mem.name] = mem.name === m.primary && m.accepting ? 'up' : 'down';
      return out;
    },
    stop: () => proc.stop(5000),
  };
}

/** Every balancer routes to `leader` only (haproxy's own view from its stats socket). */
async function settled(balancers, leader, other) {
  for (const b of Object.values(balancers)) {
    const s = await b.state().catch(() => null);
    if (!s || s[leader.name] !== 'up' || s[other.name] === 'up') return false;
  }
  return true;
}

function judge({ writes, sessions }, { from, to, faultAt, roleLostAt, to200At, onTo }) {
  const acked = writes.filter((w) => w.ok);
  const firstOnTo = acked.filter((w) => w.port === to.pgPort && w.sentAt >= faultAt).map((w) => w.doneAt);
  const first = firstOnTo.length ? Math.min(...firstOnTo) : null;
  const failures = Object.fromEntries(KINDS.map((k) => [k, 0]));
  for (const w of writes) if (!w.ok) failures[KINDS.includes(w.errorKind) ? w.errorKind : 'other'] += 1;
  // Reached the old leader after it stopped being primary: executed there, or refused by it
  // because it was shutting down (57P03).
  const toOld = writes.filter(
    (w) => w.sentAt > roleLostAt && ((w.ok && w.port === from.pgPort) || (!w.ok && w.code === '57P03')),
  ).length;
  const old = sessions.filter(
    (s) => s.port === from.pgPort && (s.closedAt === null || s.closedAt > roleLostAt),
  );
  const openFor = old.map((s) => (s.closedAt === null ? null : s.closedAt - roleLostAt));
  return {
    first_write_ms: first === null ? null : first - faultAt,
    first_write_after_200_ms: first === null || to200At === null ? null : first - to200At,
    acked: acked.length,
    failures,
    failed: Object.values(failures).reduce((a, b) => a + b, 0),
    to_old_after_lost: toOld,
    old_sessions_open_ms: openFor.length ? (openFor.includes(null) ? null : Math.max(...openFor)) : 0,
    old_sessions_left_open: openFor.filter((x) => x === null).length,
    lost: acked.filter((w) => !onTo.has(w.id)).length,
  };
}

async function idsOn(cluster, node, ids) {
  const rows = await cluster.sql(node, 'SELECT id FROM writes WHERE id = ANY($1::bigint[])', [ids]);
  return new Set(rows.map((r) => Number(r.id)));
}

async function oneFault(_ctx, cluster, balancers, fault, rep) {
  const leader = await waitFor('a writable leader', () => cluster.writableLeader(), 60_000);
  const from = leader;
  const to = cluster.nodes.find((n) => n !== from);
  await cluster.waitStreaming(to, from, 90_000);
  await waitFor(
    `every balancer routing to ${from.name} only`,
    () => settled(balancers, from, to),
    60_000,
    200,
  );
  const timeline = pollRest(cluster, [from, to]);
  const writers = Object.fromEntries(
    Object.entries(balancers).map(([id, b]) => [
      id,
      startWriters({ port: b.port, short: 2, long: 2, tag: `${id}-${fault.id}-${rep}` }),
    ]),
  );
  const onNode = (w, n, after = 0) =>
    w.acked().filter((x) => x.port === n.pgPort && x.sentAt >= after).length;
  await waitFor(
    'writes through every balancer',
    () => Object.values(writers).every((w) => onNode(w, from) >= 30),
    30_000,
  );
  const faultAt = Date.now();
  log(`bench: patroni round ${rep} ${fault.id}: ${from.name} -> ${to.name}`);
  if (fault.id === 'switchover') {
    const r = await cluster.switchover(from, to);
    if (r.code !== 0) throw new Error(`patronictl switchover failed: ${r.stdout}${r.stderr}`);
  } else if (fault.id === 'kill') {
    await cluster.kill(from);
  } else {
    cluster.stop(from);
  }
  await waitFor(`${to.name} writable leader`, async () => timeline.writableAt(to) !== null, 60_000);
  // Every balancer's clients reach the new leader (haproxy's example needs rise 2 x inter 3s).
  await waitFor(
    'every balancer writing to the new leader',
    () => Object.values(writers).every((w) => onNode(w, to, faultAt) >= 20),
    60_000,
    100,
  );
  if (fault.id === 'stop') {
    cluster.cont(from);
    await waitFor(
      `${from.name} resumed and not leader`,
      async () => (await cluster.rest(from)).status === 503,
      30_000,
    );
    const base = Object.values(writers).map((w) => onNode(w, to));
    await waitFor(
      'writes go on after the old leader resumed',
      () => Object.values(writers).every((w, i) => onNode(w, to) >= base[i] + 20),
      30_000,
    );
  }
  const results = {};
  for (const [id, w] of Object.entries(writers)) results[id] = await w.stop();
  await timeline.stop();
  const roleLostAt = fault.id === 'switchover' ? (timeline.lostAt(from, faultAt) ?? faultAt) : faultAt;
  const to200At = timeline.status200At(to);
  const writableAt = timeline.writableAt(to); // known since the wait above
  const row = {
    fault: fault.id,
    rep,
    from: from.name,
    to: to.name,
    rest_200_ms: to200At === null ? null : to200At - faultAt,
    rest_writable_ms: writableAt === null ? null : writableAt - faultAt,
    role_lost_ms: roleLostAt - faultAt,
    timeline: timeline.describe(faultAt),
    balancers: {},
  };
  for (const [id, r] of Object.entries(results)) {
    const onTo = await idsOn(
      cluster,
      to,
      r.writes.filter((x) => x.ok).map((x) => x.id),
    );
    row.balancers[id] = judge(r, { from, to, faultAt, roleLostAt, to200At, onTo });
  }
  // The old leader comes back as a replica for the next fault: a killed one from scratch, a
  // resumed one by itself (pg_rewind) or, if it cannot, from scratch too.
  if (fault.id === 'kill') await cluster.rejoin(from, to);
  if (fault.id === 'stop') {
    try {
      await cluster.waitStreaming(from, to, 30_000);
    } catch {
      await cluster.kill(from);
      await cluster.rejoin(from, to);
    }
  }
  return row;
}

function summarize(rows) {
  const out = [];
  for (const f of FAULTS) {
    const fr = rows.filter((r) => r.fault === f.id);
    for (const b of BALANCERS) {
      const cells = fr.map((r) => r.balancers[b.id]).filter(Boolean);
      const failures = Object.fromEntries(
        KINDS.map((k) => [k, cells.reduce((a, c) => a + c.failures[k], 0)]),
      );
      out.push({
        fault: f.id,
        balancer: b.id,
        runs: cells.length,
        first_write_ms: median(cells.map((c) => c.first_write_ms)),
        first_write_after_200_ms: median(cells.map((c) => c.first_write_after_200_ms)),
        failed: median(cells.map((c) => c.failed)),
        failures_all_runs: failures,
        to_old_after_lost: median(cells.map((c) => c.to_old_after_lost)),
        old_sessions_open_ms: median(cells.map((c) => c.old_sessions_open_ms)),
        old_sessions_left_open_runs: cells.filter((c) => c.old_sessions_left_open > 0).length,
        lost_per_run: cells.map((c) => c.lost),
        rest_200_ms: median(fr.map((r) => r.rest_200_ms)),
      });
    }
  }
  return out;
}

export async function runPatroni(ctx) {
  const why = await patroniMissing();
  if (why) return { skipped: [{ what: 'Patroni part', reason: why }] };
  const reps = ctx.reps ?? 3;
  const health = YAML.parse(fs.readFileSync(EXAMPLE, 'utf8')).mirrors[0].health;
  const cluster = await startCluster({ prefix: 'pg11b', base: BASE, log: (m) => log(`bench: patroni ${m}`) });
  const balancers = {};
  try {
    const [pg1, pg2] = cluster.nodes;
    await cluster.sql(pg1, TABLE_SQL('writes'));
    balancers.mirrorlb = await startMirrorlbPatroni(ctx, cluster, BASE + 40, BASE + 41);
    let port = BASE + 42;
    for (const b of BALANCERS) {
      if (!b.cfg) continue;
      balancers[b.id] = await startHaproxy({
        benchDir: ctx.benchDir,
        label: b.id,
        cfg: b.cfg,
        port: port++,
        cpu: ctx.cpus.balancer,
        logDir: ctx.logDir,
        env: {
          MLB_PG1_ADDR: `127.0.0.1:${pg1.pgPort}`,
          MLB_PG2_ADDR: `127.0.0.1:${pg2.pgPort}`,
          MLB_PG1_REST_PORT: String(pg1.restPort),
          MLB_PG2_REST_PORT: String(pg2.restPort),
        },
      });
    }
    const rows = [];
    for (let rep = 1; rep <= reps; rep++) {
      for (const f of FAULTS) rows.push(await oneFault(ctx, cluster, balancers, f, rep));
    }
    return {
      settings: {
        reps,
        ttl_s: TTL_S,
        loop_wait_s: LOOP_WAIT_S,
        replication: 'asynchronous',
        dcs: 'etcd 3.4, v2 API',
        clients_per_balancer: '2 new-connection-per-write + 2 long-lived, 5 ms between writes',
        mirrorlb_health: health,
      },
      runs: rows,
      summary: summarize(rows),
      loadavg_at_end: os.loadavg().map((x) => round(x, 2)),
    };
  } finally {
    for (const b of Object.values(balancers)) await b.stop().catch(() => undefined);
    // Keep the cluster's own logs beside the balancers' (its dir goes with destroy()).
    for (const f of fs.readdirSync(cluster.dir).filter((x) => x.endsWith('.log')))
      fs.copyFileSync(path.join(cluster.dir, f), path.join(ctx.logDir, `patroni-${f}`));
    await cluster.destroy();
  }
}
