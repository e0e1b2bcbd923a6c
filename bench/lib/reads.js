// Part `reads` (full run only, `--part reads`): read pools on a real three-node Patroni
// cluster (etcd 3.4 v2 API, Patroni 3.0.2, PostgreSQL 15, a leader and two asynchronous
// replicas) behind three balancers at once, each with a replicas port: mirrorlb (a
// `kind: patroni` mirror with one pool, `max_lag` as haproxy's `?lag=`, defaults otherwise),
// haproxy as Patroni documents its replicas backend (`/replica`, inter 3s fall 3 rise 2,
// on-marked-down shutdown-sessions, roundrobin) and haproxy tuned (`/replica?lag=1MB`, inter
// 1s fall 2 rise 1). A heartbeat row is updated on the leader every 10 ms with its commit
// time; each balancer has its own readers (new connection per read, and long-lived
// sessions), and every read records the node that served it, whether that node was in
// recovery, whether its WAL receiver streamed, and how stale the row it saw was. Faults in
// turn, recovery between, all three balancers seeing each at once: a replica's replay paused,
// a replica SIGKILLed then restarted, a switchover to a replica.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import {
  EXAMPLE,
  MIRRORLB_BIN,
  patroniMissing,
  pollRest,
  startCluster,
  waitFor,
} from './patroni-cluster.mjs';
import { BEAT_SQL, startBeat, startReaders } from './pg-readers.mjs';
import { startHaproxy } from './balancers.js';
import { start } from './proc.js';
import { httpCall } from './sims.js';
import { log, round, sleep } from './util.js';

const BASE = 22400; // cluster 22401-22432, balancers 22440-22445: below the ephemeral range
const MAX_LAG = '1MB'; // mirrorlb's max_lag and the tuned haproxy's ?lag=, the same limit
const MAX_LAG_BYTES = 1024 * 1024;
const PAUSE_MS = 8000;
const LAG_EXIT_AFTER_MS = 2000; // mirrorlb's default lag_exit_after
const ROUND_MS = 200; // examples/patroni.yml's health.interval: one check round
const CONNECT_TIMEOUT_MS = 2000; // the readers' own connect timeout
const PAD_BYTES = 8192; // heartbeat payload: WAL for a paused replica to fall behind on
export const FAULTS = [
  { id: 'pause', label: `one replica's replay paused ${PAUSE_MS / 1000} s` },
  { id: 'kill', label: 'one replica SIGKILLed, then restarted' },
  { id: 'switchover', label: '`patronictl switchover` to a replica' },
];
export const BALANCERS = [
  { id: 'mirrorlb', label: `mirrorlb (pool, max_lag ${MAX_LAG})` },
  { id: 'haproxy-replicas', label: "haproxy (Patroni's template)", cfg: 'haproxy-patroni-replicas.cfg' },
  {
    id: 'haproxy-replicas-tuned',
    label: `haproxy (tuned, ?lag=${MAX_LAG})`,
    cfg: 'haproxy-patroni-replicas-tuned.cfg',
  },
];

function mirrorlbConfig(cluster, { primaryPort, poolPort, adminPort }) {
  // The primary side exactly as examples/patroni.yml (the heartbeat writes through it); the
  // pool at its defaults but for the lag limit.
  const example = YAML.parse(fs.readFileSync(EXAMPLE, 'utf8')).mirrors[0];
  return YAML.stringify({
    mirrors: [
      {
        name: 'pg',
        kind: 'patroni',
        listen: `127.0.0.1:${primaryPort}`,
        health: example.health,
        proxy: example.proxy,
        pools: [{ name: 'replicas', listen: `127.0.0.1:${poolPort}`, max_lag: MAX_LAG }],
        members: cluster.nodes.map((n) => ({
          name: n.name,
          address: `127.0.0.1:${n.pgPort}`,
          check: `http://127.0.0.1:${n.restPort}/primary`,
        })),
      },
    ],
    admin: { listen: `127.0.0.1:${adminPort}` },
    log: { level: 'info' },
  });
}

async function startMirrorlbPool(ctx, cluster, ports) {
  const file = path.join(ctx.logDir, 'reads-mirrorlb.yml');
  fs.writeFileSync(file, mirrorlbConfig(cluster, ports));
  const proc = start({
    name: 'reads-mirrorlb',
    cmd: process.execPath,
    args: [MIRRORLB_BIN, '--config', file],
    cpu: ctx.cpus.balancer,
    logDir: ctx.logDir,
  });
  const admin = (p) =>
    httpCall('127.0.0.1', ports.adminPort, 'GET', p, undefined, 2000).catch(() => ({ status: 0, body: '' }));
  const members = async () => {
    const r = await admin('/status');
    if (r.status !== 200) return null;
    const m = JSON.parse(r.body).mirrors.find((x) => x.name === 'pg');
    const pool = m?.pools?.find((x) => x.name === 'replicas');
    return pool ? Object.fromEntries(pool.members.map((x) => [x.name, x.state])) : null;
  };
  await waitFor(
    'mirrorlb with its primary and the replicas pool ready',
    async () => {
      if (proc.exitCode !== null)
        throw new Error(`mirrorlb exited: ${fs.readFileSync(proc.logFile, 'utf8').slice(-2000)}`);
      return (
        (await admin('/readyz?mirror=pg')).status === 200 &&
        (await admin('/readyz?mirror=pg&pool=replicas')).status === 200
      );
    },
    30_000,
    100,
  );
  return {
    port: ports.poolPort,
    proc,
    /** Each member: 'up' while it takes new clients of the pool, else its pool state. */
    async state() {
      const m = await members();
      if (!m) return null;
      return Object.fromEntries(Object.entries(m).map(([k, v]) => [k, v === 'in' ? 'up' : v]));
    },
    /** [from, to] intervals (ms) when the pool had no member in (`when_empty: primary` sends reads to the leader). */
    emptyWindows() {
      const state = new Map();
      const windows = [];
      let emptySince = null;
      for (const line of fs.readFileSync(proc.logFile, 'utf8').split('\n')) {
        if (!line.startsWith('{')) continue;
        let r;
        try {
          r = JSON.parse(line);
        } catch {
          continue;
        }
        if (r.pool !== 'replicas' || r.member === undefined || r.to === undefined) continue;
        const at = typeof r.time === 'number' ? r.time : Date.parse(r.time);
        state.set(r.member, r.to);
        const empty = ![...state.values()].includes('in');
        if (empty && emptySince === null) emptySince = at;
        if (!empty && emptySince !== null) {
          windows.push([emptySince, at]);
          emptySince = null;
        }
      }
      if (emptySince !== null) windows.push([emptySince, Infinity]);
      return windows;
    },
    stop: () => proc.stop(5000),
  };
}

/** Polls every balancer's view of every node; keeps each change with its time. */
function watchViews(balancers, everyMs = 100) {
  const changes = [];
  const last = new Map();
  let on = true;
  const loops = Object.entries(balancers).map(async ([id, b]) => {
    while (on) {
      const s = await (b.routing ?? b.state)().catch(() => null);
      if (s) {
        for (const [node, v] of Object.entries(s)) {
          const key = `${id}/${node}`;
          if (last.get(key) !== v) {
            last.set(key, v);
            changes.push({ at: Date.now(), balancer: id, node, view: v });
          }
        }
      }
      await sleep(everyMs);
    }
  });
  return {
    changes,
    /** First time after `since` that `balancer` stopped sending new clients to `node`. */
    outAt: (balancer, node, since) =>
      changes.find((c) => c.balancer === balancer && c.node === node && c.at >= since && c.view !== 'up')
        ?.at ?? null,
    stop: async () => {
      on = false;
      await Promise.all(loops);
    },
  };
}

/** Every balancer sends new clients to exactly the replicas `up` (and not to the others). */
async function settled(balancers, cluster, up) {
  for (const b of Object.values(balancers)) {
    const s = await (b.routing ?? b.state)().catch(() => null);
    if (!s) return false;
    for (const n of cluster.nodes) if ((s[n.name] === 'up') !== up.includes(n)) return false;
  }
  return true;
}

const inWindows = (windows, r) => windows.some(([a, b]) => (r.doneAt ?? r.sentAt) >= a && r.sentAt <= b);

/**
 * The figures of one balancer for one fault, from its readers' records.
 * @param {{ reads: import('./pg-readers.d.mts').ReadRecord[], sessions: import('./pg-readers.d.mts').ReadSession[] }} rs
 */
function judge(rs, o) {
  const { faultAt, node, readyAt, promoted, empty, staleBoundMs, replicas, baselineFrom, commits } = o;
  const after = rs.reads.filter((r) => r.sentAt >= faultAt);
  // Behind the leader: the row's age minus the time since the leader's last update before the
  // read (the heartbeat itself stops for a few seconds in a switchover).
  let k = 0;
  const behind = new Map();
  for (const r of [...after].filter((x) => x.ok).sort((a, b) => (a.doneAt ?? 0) - (b.doneAt ?? 0))) {
    while (k + 1 < commits.length && commits[k + 1] <= (r.doneAt ?? 0)) k++;
    const gap = commits.length && commits[k] <= (r.doneAt ?? 0) ? (r.doneAt ?? 0) - commits[k] : 0;
    behind.set(r, Math.max(0, (r.staleMs ?? 0) - gap));
  }
  const lagOf = (r) => behind.get(r) ?? 0;
  const ok = after.filter((r) => r.ok);
  const failed = after.filter((r) => !r.ok);
  const kinds = {};
  for (const r of failed) {
    // 'other' says nothing: its SQLSTATE or errno, else the start of its message.
    const kind = r.errorKind ?? 'other';
    const why = kind === 'other' ? ` (${r.code ?? String(r.error ?? '').slice(0, 60)})` : '';
    const k = `${r.connect ? 'connect ' : ''}${kind}${why}`;
    kinds[k] = (kinds[k] ?? 0) + 1;
  }
  const staleOf = (list, ms) => list.filter((r) => r.recovery === true && lagOf(r) > ms);
  const worst = (list) => (list.length ? round(Math.max(...list.map(lagOf)), 0) : 0);
  const short = ok.filter((r) => r.kind === 'short');
  const long = ok.filter((r) => r.kind === 'long');
  // Long sessions on the faulted node when the fault came, and which of them were cut.
  const onNode = rs.sessions.filter(
    (s) =>
      s.kind === 'long' &&
      s.port === node.pgPort &&
      s.openedAt < faultAt &&
      (s.closedAt ?? Infinity) > faultAt,
  );
  // A read served by a primary (pg_is_in_recovery() false). mirrorlb's `when_empty: primary`
  // sends reads there on purpose while no replica is in: counted apart.
  const onPrimary = ok.filter((r) => r.recovery === false);
  const onPrimaryEmpty = onPrimary.filter((r) => inWindows(empty, r));
  const onPrimaryNew = onPrimary.filter((r) => r.kind === 'short' && !onPrimaryEmpty.includes(r));
  const onPrimaryKept = onPrimary.filter((r) => r.kind === 'long' && !onPrimaryEmpty.includes(r));
  const promotedAfter = promoted
    ? onPrimaryNew.filter((r) => r.port === promoted.pgPort).map((r) => r.sentAt - faultAt)
    : [];
  const notStreaming = ok.filter((r) => r.recovery === true && r.walReceiver !== 'streaming');
  const notStreamingNew = notStreaming.filter((r) => r.kind === 'short');
  const firstBack =
    readyAt === null
      ? null
      : (short.find((r) => r.port === node.pgPort && r.sentAt >= readyAt && r.recovery === true)?.sentAt ??
        null);
  const slow = after.filter((r) => (r.doneAt ?? r.sentAt) - r.sentAt >= CONNECT_TIMEOUT_MS - 100);
  const base = rs.reads.filter(
    (r) => r.ok && r.kind === 'short' && r.sentAt >= baselineFrom && r.sentAt < faultAt,
  );
  const share = Object.fromEntries(
    replicas.map((n) => [
      n.name,
      base.length ? round(base.filter((r) => r.port === n.pgPort).length / base.length, 2) : null,
    ]),
  );
  const longShare = Object.fromEntries(
    replicas.map((n) => [
      n.name,
      rs.sessions.filter(
        (s) =>
          s.kind === 'long' &&
          s.port === n.pgPort &&
          s.openedAt < faultAt &&
          (s.closedAt ?? Infinity) > faultAt,
      ).length,
    ]),
  );
  return {
    reads: after.length,
    failed: failed.length,
    failure_kinds: kinds,
    reads_waiting_connect_timeout: slow.length,
    stale_over_1s: staleOf(ok, 1000).length,
    stale_over_bound: staleOf(ok, staleBoundMs).length,
    stale_over_bound_new: staleOf(short, staleBoundMs).length,
    stale_over_bound_kept: staleOf(long, staleBoundMs).length,
    worst_stale_ms: worst(ok.filter((r) => r.recovery === true)),
    worst_stale_new_ms: worst(short.filter((r) => r.recovery === true)),
    long_sessions_on_node: onNode.length,
    // Ended before the readers stopped: cut by the balancer or the server, or closed by the
    // reader after a failed read (a killed node's session may fail its read before the close).
    long_sessions_cut: onNode.filter((s) => s.cut || (s.closedAt !== null && !s.ending)).length,
    on_primary_new: onPrimaryNew.length,
    on_primary_new_last_ms: promotedAfter.length ? Math.max(...promotedAfter) : null,
    on_primary_kept_sessions: onPrimaryKept.length,
    on_primary_when_empty: onPrimaryEmpty.length,
    on_not_streaming: notStreaming.length,
    on_not_streaming_worst_ms: worst(notStreaming),
    on_not_streaming_new: notStreamingNew.length,
    on_not_streaming_new_worst_ms: worst(notStreamingNew),
    worst_stale_kept_ms: worst(long.filter((r) => r.recovery === true)),
    stale_bound_ms: staleBoundMs,
    rejoin_ms: firstBack === null ? null : firstBack - readyAt,
    share_short_before: share,
    long_sessions_before: longShare,
  };
}

/** How many WAL bytes per second the heartbeat writes (measured on the leader). */
async function walRate(cluster, leader) {
  const q = 'SELECT pg_current_wal_lsn()::text AS lsn';
  const lsn = (t) => {
    const [hi, lo] = t.split('/');
    return parseInt(hi, 16) * 2 ** 32 + parseInt(lo, 16);
  };
  const a = lsn((await cluster.sql(leader, q))[0].lsn);
  const t0 = Date.now();
  await sleep(3000);
  const b = lsn((await cluster.sql(leader, q))[0].lsn);
  return Math.round(((b - a) * 1000) / (Date.now() - t0));
}

async function oneFault(cluster, balancers, fault, env) {
  const leader = await waitFor('a writable leader', () => cluster.writableLeader(), 60_000, 200);
  const replicas = cluster.nodes.filter((n) => n !== leader);
  for (const n of replicas) await cluster.waitStreaming(n, leader, 90_000);
  await waitFor(
    'every balancer sending reads to both replicas only',
    () => settled(balancers, cluster, replicas),
    60_000,
    200,
  );
  // The faulted node: (a) and (b) the second replica, (c) the first (the switchover's target).
  const node = fault.id === 'switchover' ? replicas[0] : replicas[1];
  const readers = Object.fromEntries(
    Object.keys(balancers).map((id) => [
      id,
      startReaders({
        port: balancers[id].port,
        short: 2,
        long: 4,
        pauseMs: 20,
        longEveryMs: 100,
        connectTimeoutMs: CONNECT_TIMEOUT_MS,
        tag: `${id}-${fault.id}`,
      }),
    ]),
  );
  const baselineFrom = Date.now() + 1000;
  await sleep(4000); // the share of reads per replica before the fault
  if (fault.id === 'pause') {
    // Maintenance mode first (it takes a few seconds): the fault is the replay's pause.
    const p = await cluster.pause();
    if (p.code !== 0) throw new Error(`patronictl pause failed: ${p.stdout}${p.stderr}`);
  }
  const views = watchViews(balancers);
  const timeline = pollRest(cluster, cluster.nodes, 50);
  const faultAt = Date.now();
  let readyAt = null;
  let promoted = null;
  const row = { fault: fault.id, node: node.name, leader: leader.name };
  log(`bench: reads ${fault.id} on ${node.name} (leader ${leader.name})`);
  try {
    if (fault.id === 'pause') {
      const pausedAt = Date.now();
      await cluster.sql(node, 'SELECT pg_wal_replay_pause()');
      await sleep(PAUSE_MS);
      const lag = await cluster.sql(
        leader,
        'SELECT (pg_current_wal_lsn() - replay_lsn)::bigint AS lag FROM pg_stat_replication WHERE application_name = $1',
        [node.name],
      );
      row.lag_at_resume_bytes = Number(lag[0]?.lag ?? 0);
      await cluster.sql(node, 'SELECT pg_wal_replay_resume()');
      readyAt = Date.now();
      row.paused_ms = readyAt - pausedAt;
      // The limit in time at the WAL rate of the pause itself: when the lag crossed max_lag.
      const rate = (row.lag_at_resume_bytes * 1000) / row.paused_ms;
      row.wal_bytes_per_s = Math.round(rate);
      row.limit_crossed_ms = rate > 0 ? Math.round((MAX_LAG_BYTES * 1000) / rate) : null;
      if (row.limit_crossed_ms !== null)
        env.staleBoundMs = row.limit_crossed_ms + LAG_EXIT_AFTER_MS + ROUND_MS;
      const r = await cluster.resume();
      if (r.code !== 0) throw new Error(`patronictl resume failed: ${r.stdout}${r.stderr}`);
    } else if (fault.id === 'kill') {
      await cluster.kill(node);
      // Every balancer has taken it out (the template's haproxy: fall 3 x inter 3s), then more.
      await waitFor(
        `every balancer taking ${node.name} out`,
        async () => Object.keys(balancers).every((id) => views.outAt(id, node.name, faultAt) !== null),
        60_000,
        100,
      );
      await sleep(2000);
      row.restart_ms = Date.now() - faultAt;
      await cluster.restart(node, leader);
      readyAt = Date.now(); // streaming from the leader again
    } else {
      const r = await cluster.switchover(leader, node);
      if (r.code !== 0) throw new Error(`patronictl switchover failed: ${r.stdout}${r.stderr}`);
      promoted = node;
      await waitFor(`${node.name} writable leader`, async () => timeline.writableAt(node) !== null, 60_000);
      await cluster.waitStreaming(leader, node, 90_000);
      readyAt = Date.now(); // the old leader streams from the new one
    }
    const up = fault.id === 'switchover' ? cluster.nodes.filter((n) => n !== node) : replicas;
    const newLeader = fault.id === 'switchover' ? node : leader;
    for (const n of up) await cluster.waitStreaming(n, newLeader, 90_000);
    await waitFor('every balancer back to both replicas', () => settled(balancers, cluster, up), 90_000, 200);
    // The rejoining node serves reads through every balancer (bounded), then a tail.
    const back = leader === newLeader ? node : leader;
    await waitFor(
      `reads on ${back.name} through every balancer`,
      () =>
        Object.values(readers).every((r) =>
          r.reads.some(
            (x) => x.ok && x.kind === 'short' && x.port === back.pgPort && x.sentAt >= (readyAt ?? faultAt),
          ),
        ),
      30_000,
      100,
    ).catch(() => undefined);
    await sleep(2000);
    row.rejoining = back.name;
    row.ready_ms = readyAt === null ? null : readyAt - faultAt;
    const writable = promoted ? timeline.writableAt(promoted) : null;
    row.promoted_writable_ms = writable === null ? null : writable - faultAt;
  } finally {
    await views.stop();
    await timeline.stop();
  }
  const results = {};
  for (const [id, r] of Object.entries(readers)) results[id] = await r.stop();
  const back = cluster.nodes.find((n) => n.name === row.rejoining) ?? node;
  row.balancers = {};
  for (const [id, rs] of Object.entries(results)) {
    const outAt = views.outAt(id, node.name, faultAt);
    row.balancers[id] = {
      out_ms: outAt === null ? null : outAt - faultAt,
      ...judge(rs, {
        faultAt,
        node,
        readyAt,
        promoted,
        empty: id === 'mirrorlb' ? balancers.mirrorlb.emptyWindows() : [],
        staleBoundMs: env.staleBoundMs,
        replicas,
        baselineFrom,
        commits: env.beat.commits,
      }),
    };
    // Time until the rejoining node (after the switchover: the old leader) serves reads.
    if (back !== node) {
      const first = rs.reads.find(
        (r) =>
          r.ok && r.kind === 'short' && r.port === back.pgPort && r.recovery === true && r.sentAt >= readyAt,
      );
      row.balancers[id].rejoin_ms = first ? first.sentAt - readyAt : null;
    }
  }
  row.views = views.changes.map((c) => `${c.at - faultAt} ${c.balancer} ${c.node} ${c.view}`).join('; ');
  return row;
}

export async function runReads(ctx) {
  const why = await patroniMissing();
  if (why) return { skipped: [{ what: 'reads part', reason: why }] };
  const loadavgAtStart = os.loadavg().map((x) => round(x, 2));
  const cluster = await startCluster({
    prefix: 'pgrd',
    base: BASE,
    nodes: 3,
    log: (m) => log(`bench: reads ${m}`),
  });
  const balancers = {};
  let beat = null;
  try {
    const [pg1, pg2, pg3] = cluster.nodes;
    for (const q of BEAT_SQL) await cluster.sql(pg1, q);
    balancers.mirrorlb = await startMirrorlbPool(ctx, cluster, {
      primaryPort: BASE + 40,
      poolPort: BASE + 41,
      adminPort: BASE + 42,
    });
    let port = BASE + 43;
    for (const b of BALANCERS) {
      if (!b.cfg) continue;
      balancers[b.id] = await startHaproxy({
        benchDir: ctx.benchDir,
        label: `reads-${b.id}`,
        cfg: b.cfg,
        port: port++,
        cpu: ctx.cpus.balancer,
        logDir: ctx.logDir,
        env: Object.fromEntries(
          [pg1, pg2, pg3].flatMap((n, i) => [
            [`MLB_PG${i + 1}_ADDR`, `127.0.0.1:${n.pgPort}`],
            [`MLB_PG${i + 1}_REST_PORT`, String(n.restPort)],
          ]),
        ),
      });
    }
    // Through mirrorlb's primary listener: it follows the leader across the switchover.
    beat = startBeat({ port: BASE + 40, everyMs: 10, padBytes: PAD_BYTES, history: true });
    const wal = await walRate(cluster, pg1);
    const pool = YAML.parse(fs.readFileSync(path.join(ctx.logDir, 'reads-mirrorlb.yml'), 'utf8')).mirrors[0];
    // The staleness a read may have under mirrorlb's pool: the lag limit at the measured WAL
    // rate, plus lag_exit_after (2 s, the default) and one check round.
    const limitMs = Math.round((MAX_LAG_BYTES * 1000) / Math.max(1, wal));
    const env = { staleBoundMs: limitMs + LAG_EXIT_AFTER_MS + ROUND_MS, beat };
    const rows = [];
    for (const f of FAULTS) rows.push(await oneFault(cluster, balancers, f, env));
    const b = await beat.stop();
    beat = null;
    return {
      settings: {
        cluster:
          'etcd 3.4 (v2 API), Patroni 3.0.2, PostgreSQL 15: a leader and two asynchronous replicas; ttl 10 s, loop_wait 1 s',
        readers_per_balancer: `2 short (new connection per read, ${20} ms apart) + 4 long-lived (a read every 100 ms); connect timeout ${CONNECT_TIMEOUT_MS} ms`,
        heartbeat: `one row updated every 10 ms with its commit time and ${PAD_BYTES} bytes of random text, through mirrorlb's primary listener`,
        wal_bytes_per_s: wal,
        max_lag: MAX_LAG,
        limit_ms_at_wal_rate: limitMs,
        stale_bound_ms: env.staleBoundMs,
        pause_ms: PAUSE_MS,
        mirrorlb_pool: pool.pools[0],
        mirrorlb_health: pool.health,
        heartbeat_result: b,
      },
      runs: rows,
      loadavg_at_start: loadavgAtStart,
      loadavg_at_end: os.loadavg().map((x) => round(x, 2)),
    };
  } finally {
    await beat?.stop().catch(() => undefined);
    for (const b of Object.values(balancers)) await b.stop().catch(() => undefined);
    for (const f of fs.readdirSync(cluster.dir).filter((x) => x.endsWith('.log')))
      fs.copyFileSync(path.join(cluster.dir, f), path.join(ctx.logDir, `reads-${f}`));
    await cluster.destroy();
  }
}

const LABELS = Object.fromEntries(BALANCERS.map((b) => [b.id, b.label]));
const FAULT_LABELS = Object.fromEntries(FAULTS.map((f) => [f.id, f.label]));

/** The Markdown section of the reads part. */
export function readsMarkdown(r) {
  if (!r) return [];
  if (r.error) return ['## Read pools (PostgreSQL + Patroni)', '', `Failed: ${r.error}`, ''];
  if (!r.runs) return [];
  const s = r.settings;
  const msOr = (x, none = 'never') => (x === null || x === undefined ? none : `${(x / 1000).toFixed(1)} s`);
  const out = ['## Read pools (PostgreSQL + Patroni)', ''];
  const pause = r.runs.find((x) => x.fault === 'pause');
  out.push(
    `${s.cluster}. Three balancers with a replicas port in front of it at once, each with its own readers (${s.readers_per_balancer}; node-postgres); every fault hits all three at the same moment. Heartbeat: ${s.heartbeat}, about ${Math.round(s.wal_bytes_per_s / 1024)} kB of WAL per second${pause?.wal_bytes_per_s ? ` (${Math.round(pause.wal_bytes_per_s / 1024)} kB/s during the pause: the paused replica crossed the ${s.max_lag} limit ${msOr(pause.limit_crossed_ms)} after its replay stopped)` : ''}. The **bound** a read of mirrorlb's pool should stay within: that crossing + \`lag_exit_after\` (2 s) + one check round (200 ms) = ${msOr(s.stale_bound_ms)}. Load average (1/5/15 min) at start ${r.loadavg_at_start.join(' / ')}, at end ${r.loadavg_at_end.join(' / ')}. One run.`,
    '',
    `Columns: **out** — from the fault to the balancer no longer sending new clients to the node (its own view: haproxy's stats socket, where "UP 1/3" still takes clients; mirrorlb's \`/status\`); **failed** — reads that failed from the fault to the end of recovery, and of them those that waited out the ${CONNECT_TIMEOUT_MS / 1000} s connect timeout; **new reads > bound** — reads on a new connection from a replica more than the bound behind the leader (staleness minus the heartbeat's own gaps), count and worst; **kept sessions** — the same for reads of long-lived sessions, which a pool keeps on a lag exit by design; **long cut** — long-lived sessions on the node at the fault that ended before the readers stopped (cut, or failed); **on a primary** — new reads served by a node not in recovery (mirrorlb: outside its \`when_empty: primary\` windows; those, and reads of kept sessions on the promoted node, are given apart); **not streaming** — new reads served by a replica whose WAL receiver was not streaming (worst behind); **rejoin** — from the node streaming again (after the pause: replay resumed) to the first new read on it; **before** — new reads per replica and long sessions per replica before the fault.`,
    '',
    '| fault | balancer | out | failed (connect timeout) | new reads > bound (worst) | kept sessions > bound (worst) | long cut | on a primary | not streaming | rejoin | before: reads / long sessions |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |',
  );
  for (const row of r.runs) {
    for (const b of BALANCERS) {
      const c = row.balancers[b.id];
      if (!c) continue;
      const prim =
        `${c.on_primary_new}${c.on_primary_new_last_ms !== null ? ` (up to ${msOr(c.on_primary_new_last_ms)})` : ''}` +
        (b.id === 'mirrorlb'
          ? ` (+ when_empty ${c.on_primary_when_empty}, kept sessions ${c.on_primary_kept_sessions})`
          : '');
      const share = Object.entries(c.share_short_before)
        .map(
          ([k, v]) => `${k} ${v === null ? '–' : `${Math.round(v * 100)} %`} / ${c.long_sessions_before[k]}`,
        )
        .join(', ');
      out.push(
        `| ${FAULT_LABELS[row.fault]} (${row.node}) | ${LABELS[b.id]} | ${msOr(c.out_ms)} | ${c.failed} (${c.reads_waiting_connect_timeout}) | ${c.stale_over_bound_new} (${msOr(c.worst_stale_new_ms)}) | ${c.stale_over_bound_kept} (${msOr(c.worst_stale_kept_ms)}) | ${c.long_sessions_cut} of ${c.long_sessions_on_node} | ${prim} | ${c.on_not_streaming_new}${c.on_not_streaming_new ? ` (${msOr(c.on_not_streaming_new_worst_ms)})` : ''} | ${msOr(c.rejoin_ms)} | ${share} |`,
      );
    }
  }
  const failures = r.runs.flatMap((row) =>
    BALANCERS.filter((b) => row.balancers[b.id]?.failed).map(
      (b) =>
        `${FAULT_LABELS[row.fault]}, ${LABELS[b.id]}: ${Object.entries(row.balancers[b.id].failure_kinds)
          .map(([k, n]) => `${n} ${k}`)
          .join(', ')}`,
    ),
  );
  if (failures.length) out.push('', `Failed reads by cause: ${failures.join('; ')}.`);
  out.push(
    '',
    `Configs: mirrorlb with a \`kind: patroni\` mirror (primary side as [\`examples/patroni.yml\`](../../examples/patroni.yml)) and \`pools: [{name: replicas, listen: ..., max_lag: ${s.max_lag}}]\`, every other pool key at its default; haproxy as Patroni's template (\`bench/haproxy-patroni-replicas.cfg\`: \`GET /replica\`, \`inter 3s fall 3 rise 2\`, \`on-marked-down shutdown-sessions\`, \`balance roundrobin\`) and tuned (\`bench/haproxy-patroni-replicas-tuned.cfg\`: \`/replica?lag=1MB\`, \`inter 1s fall 2 rise 1\`).`,
    '',
  );
  return out;
}
