/**
 * Read pools on a real cluster: etcd (v2 API), three Patroni 3.0.2 nodes running PostgreSQL 15
 * (a leader and two asynchronous replicas), and mirrorlb (bin/mirrorlb.js, this tree's dist/)
 * with three pools over them: `replicas` (lag limit, `when_empty: primary`, the kind's
 * default), `hold` and `refuse`. A heartbeat row is updated every 10 ms through the primary
 * listener; readers (node-postgres) read it through the pool, and every read says which node
 * served it, whether that node was in recovery and whether its WAL receiver was streaming.
 * One cluster, faults in turn, each restoring what the next needs:
 *
 * - balance: long sessions spread evenly over the two replicas, none on the leader;
 * - lag: the cluster paused (Patroni 3.0.2 itself resumes a paused replay on PostgreSQL 14+
 *   otherwise), `pg_wal_replay_pause()` on a replica: it leaves at the limit (logged with
 *   the lag), its open session is not cut, new reads go to the other; it returns after
 *   `pg_wal_replay_resume()`;
 * - a replica SIGKILLed: its sessions end, no read fails on a connect (mirrorlb retries the
 *   other), and restarted, it serves reads only while streaming;
 * - a switchover and a leader SIGKILL: no read is sent to the promoted node after mirrorlb saw
 *   it primary (its log record), its read sessions are kept (switchover), and the old leader
 *   serves reads again only as a streaming replica;
 * - both replicas gone: `primary` sends reads to the leader, `refuse` closes at once, `hold`
 *   holds the client until a replica is back.
 *
 * Needs root and the Debian packages postgresql-15, patroni, etcd-server, python3-psycopg2;
 * skips with one line without them (a failure under MIRRORLB_TEST_STRICT=1).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import t, { type Test } from 'tap';
import {
  httpGet,
  patroniMissing,
  startCluster,
  waitFor,
  type Cluster,
  type PatroniNode,
} from '../bench/lib/patroni-cluster.mjs';
import { BEAT_SQL, startBeat, startReaders, type ReadRecord } from '../bench/lib/pg-readers.mjs';
import { warnIfStale } from './faults/lib/suite.js';

const STRICT = process.env.MIRRORLB_TEST_STRICT === '1';
const BASE = 22200; // this file's fixed ports: 22201-22244 (below the ephemeral range)
const LB_PORT = BASE + 40;
const POOL = { replicas: BASE + 41, hold: BASE + 42, refuse: BASE + 43 } as const;
const ADMIN_PORT = BASE + 44;
const MAX_LAG = 128 * 1024;

type PoolName = keyof typeof POOL;
type Node = PatroniNode;

interface MemberView {
  name: string;
  state: string;
  sessions: number;
  lagBytes: number | null;
}

interface LogRecord {
  time: string;
  msg: string;
  pool?: string;
  member?: string;
  from?: string;
  to?: string;
  lag_bytes?: number | null;
}

function config(cluster: Cluster): string {
  const pools = (Object.keys(POOL) as PoolName[]).flatMap((name) => [
    `      - name: ${name}`,
    `        listen: 127.0.0.1:${POOL[name]}`,
    '        slow_start: 1ms', // an exact even split below
    ...(name === 'replicas'
      ? ['        max_lag: 128kB', '        lag_exit_after: 1s', '        lag_return_after: 1s']
      : [`        when_empty: ${name}`]),
  ]);
  return [
    'mirrors:',
    '  - name: pg',
    '    kind: patroni',
    `    listen: 127.0.0.1:${LB_PORT}`,
    '    health:',
    '      interval: 200ms',
    '      fast_interval: 50ms',
    '      timeout: 500ms',
    '      rise: 1',
    '      fall: 2',
    '      expect_status: 200',
    `      expect_body: ['"role": "master"', '"role": "primary"']`,
    `      expect_body_all: '"state": "running"'`,
    '      not_primary_status: [503, 200]',
    '      fence_after: 5s',
    '    proxy:',
    '      connect_timeout: 1s',
    '      hold_timeout: 90s', // the hold pool waits out a replica's restart
    '    pools:',
    ...pools,
    '    members:',
    ...cluster.nodes.flatMap((n) => [
      `      - name: ${n.name}`,
      `        address: 127.0.0.1:${n.pgPort}`,
      `        check: http://127.0.0.1:${n.restPort}/primary`,
    ]),
    'admin:',
    `  listen: 127.0.0.1:${ADMIN_PORT}`,
    '',
  ].join('\n');
}

async function members(pool: PoolName): Promise<Map<string, MemberView>> {
  const r = await httpGet(`http://127.0.0.1:${ADMIN_PORT}/status`, 2000);
  const status = JSON.parse(r.body) as { mirrors: { pools: { name: string; members: MemberView[] }[] }[] };
  const p = status.mirrors[0]!.pools.find((x) => x.name === pool)!;
  return new Map(p.members.map((m) => [m.name, m]));
}

function waitState(pool: PoolName, n: Node, state: string, timeoutMs = 30_000): Promise<unknown> {
  return waitFor(
    `${n.name} ${state} in pool ${pool}`,
    async () => (await members(pool)).get(n.name)?.state === state,
    timeoutMs,
    100,
  );
}

/** A session through a pool and the port of the node that serves it. */
async function session(port: number, connectTimeoutMs = 5000): Promise<{ c: pg.Client; port: number }> {
  const c = new pg.Client({
    host: '127.0.0.1',
    port,
    user: 'postgres',
    database: 'postgres',
    connectionTimeoutMillis: connectTimeoutMs,
  });
  c.on('error', () => undefined);
  await c.connect();
  const rows = (await c.query('SELECT inet_server_port() AS port')).rows as { port: number }[];
  return { c, port: rows[0]!.port };
}

/** Whether the server or the balancer closes the session within `ms` (false: still open). */
function endsWithin(c: pg.Client, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    const done = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    c.once('end', done);
    c.once('error', done);
  });
}

async function stillAnswers(c: pg.Client): Promise<boolean> {
  try {
    return (await c.query('SELECT 1 AS one')).rows[0]?.one === 1;
  } catch {
    return false;
  }
}

const summary = (reads: readonly ReadRecord[]): string => {
  const by: Record<string, number> = {};
  for (const r of reads) by[r.ok ? String(r.port) : `failed:${r.errorKind ?? 'other'}`] ??= 0;
  for (const r of reads) by[r.ok ? String(r.port) : `failed:${r.errorKind ?? 'other'}`]! += 1;
  return JSON.stringify(by);
};

const why = await patroniMissing();
if (why !== null) {
  if (STRICT) t.fail(`read pools on Patroni cannot run: ${why} (MIRRORLB_TEST_STRICT=1)`);
  else t.test(`read pools on Patroni (${why})`, { skip: why }, () => undefined);
} else {
  t.test('read pools on a three-node Patroni cluster', { timeout: 600_000 }, (tt) => main(tt));
}

async function main(t: Test): Promise<void> {
  warnIfStale(t);
  const started = Date.now();
  const cluster = await startCluster({ prefix: 'pgrp', base: BASE, nodes: 3, log: (m) => t.comment(m) });
  t.teardown(() => cluster.destroy());
  const [pg1, pg2, pg3] = cluster.nodes as [Node, Node, Node];
  const byPort = (port: number | null): string =>
    cluster.nodes.find((n) => n.pgPort === port)?.name ?? String(port);
  const file = path.join(cluster.dir, 'mirrorlb.yml');
  writeFileSync(file, config(cluster));
  const lb = cluster.startMirrorlb(file, {});
  const logs = (): LogRecord[] =>
    readFileSync(path.join(cluster.dir, 'mirrorlb.log'), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as LogRecord);
  /** When mirrorlb's `pool` first logged `n` moving to `to` at or after `since` (ms), or null. */
  const movedAt = (pool: PoolName, n: Node, to: string, since: number): number | null => {
    const r = logs().find(
      (x) => x.pool === pool && x.member === n.name && x.to === to && Date.parse(x.time) >= since,
    );
    return r ? Date.parse(r.time) : null;
  };
  /**
   * Whether the pool had no member taking clients at some instant of [a, b] (its state changes
   * are each logged once): then `when_empty: primary` sends reads to the leader, as documented.
   */
  const emptyDuring = (pool: PoolName, a: number, b: number): boolean => {
    const state = new Map<string, string>();
    const inSet = (): boolean => [...state.values()].includes('in');
    for (const r of logs()) {
      if (r.pool !== pool || r.member === undefined || r.to === undefined) continue;
      const at = Date.parse(r.time);
      if (at > b) break;
      if (at > a && !inSet()) return true;
      state.set(r.member, r.to);
    }
    return !inSet();
  };
  await waitFor(
    'mirrorlb routing to the primary and both replicas in the pool',
    async () => {
      if (lb.exitCode !== null) throw new Error(`mirrorlb exited: ${cluster.tail('mirrorlb')}`);
      const ready = await httpGet(`http://127.0.0.1:${ADMIN_PORT}/readyz?mirror=pg&pool=replicas`);
      const m = await members('replicas');
      return ready.status === 200 && m.get('pg2')?.state === 'in' && m.get('pg3')?.state === 'in';
    },
    30_000,
    100,
  );
  for (const q of BEAT_SQL) await cluster.sql(pg1, q);
  // Through the primary listener: it follows the leader across the faults.
  const beat = startBeat({ port: LB_PORT, everyMs: 10, padBytes: 1024 });
  t.teardown(() => beat.stop());

  try {
    await t.test('balance: long sessions spread over both replicas, none on the leader', async (t) => {
      const open = [];
      for (let i = 0; i < 6; i++) open.push(await session(POOL.replicas));
      const count = (n: Node): number => open.filter((s) => s.port === n.pgPort).length;
      t.same([count(pg1), count(pg2), count(pg3)], [0, 3, 3], 'least connections: 3 and 3');
      const m = await members('replicas');
      t.same(
        [m.get('pg1')!.state, m.get('pg2')!.sessions, m.get('pg3')!.sessions],
        ['primary', 3, 3],
        '/status: the leader is "primary" (not down), 3 sessions per replica',
      );
      await Promise.all(open.map((s) => s.c.end()));
    });

    await t.test('lag: out at the limit, long session kept, back after the resume', async (t) => {
      const paused = await cluster.pause();
      t.equal(paused.code, 0, 'patronictl pause', { output: paused.stdout + paused.stderr });
      try {
        const a = await session(POOL.replicas);
        const b = await session(POOL.replicas);
        const [onPg2, other] = a.port === pg2.pgPort ? [a, b] : [b, a];
        t.equal(onPg2.port, pg2.pgPort, 'one session on pg2');
        await other.c.end();
        const since = Date.now();
        await cluster.sql(pg2, 'SELECT pg_wal_replay_pause()');
        await waitState('replicas', pg2, 'lagging');
        const left = logs().find(
          (x) =>
            x.pool === 'replicas' && x.member === 'pg2' && x.to === 'lagging' && Date.parse(x.time) >= since,
        );
        t.ok(left && (left.lag_bytes ?? 0) > MAX_LAG, 'left for lag, logged with a lag above max_lag', {
          record: left,
        });
        for (let i = 0; i < 4; i++) {
          const s = await session(POOL.replicas);
          t.equal(byPort(s.port), 'pg3', 'a new read goes to the other replica');
          await s.c.end();
        }
        t.ok(await stillAnswers(onPg2.c), "the lagging replica's open session is not cut");
        await cluster.sql(pg2, 'SELECT pg_wal_replay_resume()');
        await waitState('replicas', pg2, 'in');
        t.ok(await stillAnswers(onPg2.c), 'and still answers after the return');
        await onPg2.c.end();
      } finally {
        const resumed = await cluster.resume();
        t.equal(resumed.code, 0, 'patronictl resume', { output: resumed.stdout + resumed.stderr });
      }
    });

    await t.test('a replica SIGKILLed: sessions end, no failed connect, back only streaming', async (t) => {
      const s2 = await session(POOL.replicas);
      const s3 = await session(POOL.replicas);
      const onPg3 = s2.port === pg3.pgPort ? s2 : s3;
      const r = startReaders({ port: POOL.replicas, short: 3, long: 2, pauseMs: 20, tag: 'kill' });
      await waitFor('reads on both replicas', () => r.reads.filter((x) => x.ok).length >= 40, 20_000);
      const killedAt = Date.now();
      const ended = endsWithin(onPg3.c, 10_000);
      await cluster.kill(pg3);
      t.ok(await ended, 'the session on the killed replica ends');
      await waitState('replicas', pg3, 'down');
      const n = r.reads.length;
      await waitFor('reads after the kill', () => r.reads.length >= n + 40, 20_000);
      await cluster.restart(pg3, pg1);
      await waitState('replicas', pg3, 'in', 60_000);
      const joinedAt = Date.now();
      await waitFor(
        'reads on the restarted replica',
        () => r.reads.some((x) => x.ok && x.port === pg3.pgPort && x.sentAt > joinedAt),
        20_000,
      );
      const { reads } = await r.stop();
      const after = reads.filter((x) => x.sentAt >= killedAt);
      t.comment(`replica kill: reads from the kill on ${summary(after)}`);
      t.equal(
        after.filter((x) => x.connect).length,
        0,
        'no read failed to connect (mirrorlb retried the other)',
      );
      t.equal(after.filter((x) => x.errorKind === 'timeout').length, 0, 'no read waited out a timeout');
      t.ok(
        after.filter((x) => !x.ok).length <= 5,
        'at most the reads in flight on the killed replica failed',
      );
      const onRestarted = after.filter((x) => x.ok && x.port === pg3.pgPort);
      t.ok(onRestarted.length > 0, 'the restarted replica serves reads again');
      t.same(
        onRestarted.filter((x) => x.walReceiver !== 'streaming' || x.recovery !== true),
        [],
        'and only while it is a streaming replica',
      );
      await s2.c.end().catch(() => undefined);
      await s3.c.end().catch(() => undefined);
    });

    /** Reads through the pool across a leader change from `from` to the node that ends up leader. */
    const leaderChange = async (
      t: Test,
      fault: 'switchover' | 'kill',
      from: Node,
      to: Node | null,
    ): Promise<Node> => {
      const long = await Promise.all([session(POOL.replicas), session(POOL.replicas)]);
      const r = startReaders({ port: POOL.replicas, short: 3, long: 2, pauseMs: 20, tag: fault });
      await waitFor('reads before the fault', () => r.reads.filter((x) => x.ok).length >= 40, 20_000);
      const faultAt = Date.now();
      if (fault === 'switchover') {
        const res = await cluster.switchover(from, to!);
        t.equal(res.code, 0, `patronictl switchover ${from.name} -> ${to!.name}`, {
          output: res.stdout + res.stderr,
        });
      } else await cluster.kill(from);
      const leader = await waitFor(
        'a new writable leader',
        async () => {
          const l = await cluster.writableLeader();
          return l !== null && l !== from ? l : null;
        },
        60_000,
        100,
      );
      await waitState('replicas', leader, 'primary');
      const primaryAt = movedAt('replicas', leader, 'primary', faultAt)!;
      t.ok(primaryAt !== null, `mirrorlb logged ${leader.name} primary in the pool`);
      const longOnLeader = long.filter((s) => s.port === leader.pgPort);
      if (fault === 'kill') await cluster.restart(from, leader);
      await waitState('replicas', from, 'in', 90_000);
      const joinedAt = Date.now();
      await waitFor(
        `reads on ${from.name} as a replica`,
        () => r.reads.some((x) => x.ok && x.port === from.pgPort && x.sentAt > joinedAt),
        20_000,
      );
      const { reads } = await r.stop();
      const after = reads.filter((x) => x.sentAt >= faultAt);
      t.comment(
        `${fault}: ${leader.name} primary in the pool ${primaryAt - faultAt} ms after the fault; reads from the fault on ${summary(after)}`,
      );
      // New connections only (the long readers' sessions on it are kept: on_primary keep), and
      // not while the pool had no replica (when_empty: primary sends reads there by design).
      const onLeader = reads.filter(
        (x) => x.kind === 'short' && x.ok && x.port === leader.pgPort && x.sentAt >= primaryAt,
      );
      const fallback = onLeader.filter((x) => emptyDuring('replicas', x.sentAt, x.doneAt ?? x.sentAt));
      t.comment(
        `${fault}: ${fallback.length} reads on ${leader.name} while the pool had no replica (when_empty: primary)`,
      );
      t.same(
        onLeader.filter((x) => !fallback.includes(x)),
        [],
        `no new read sent to ${leader.name} after mirrorlb saw it primary while a replica was in`,
      );
      const notStreaming = after.filter((x) => x.ok && x.recovery === true && x.walReceiver !== 'streaming');
      const onPrimary = after.filter(
        (x) =>
          x.kind === 'short' &&
          x.ok &&
          x.recovery === false &&
          !emptyDuring('replicas', x.sentAt, x.doneAt ?? x.sentAt),
      );
      const worst = (rs: ReadRecord[]): string =>
        `${Math.round(Math.max(0, ...rs.map((x) => x.staleMs ?? 0)))} ms`;
      t.comment(
        `${fault}: new reads served by a primary while a replica was in the pool: ${onPrimary.length} (${summary(onPrimary)}); ` +
          `reads on a replica whose WAL receiver was not streaming: ${notStreaming.length} (${summary(notStreaming)}, worst staleness ${worst(notStreaming)}); ` +
          `worst staleness of all reads ${worst(after.filter((x) => x.ok))}`,
      );
      const onOld = after.filter((x) => x.ok && x.port === from.pgPort);
      t.same(
        onOld.filter((x) => x.recovery !== true || x.walReceiver !== 'streaming'),
        [],
        `${from.name} serves reads after the fault only as a streaming replica`,
      );
      if (fault === 'switchover') {
        for (const s of longOnLeader)
          t.ok(await stillAnswers(s.c), `a read session on the promoted ${leader.name} is kept`);
      }
      await Promise.all(long.map((s) => s.c.end().catch(() => undefined)));
      return leader;
    };

    await t.test(
      'switchover: the promoted node leaves at once, the old leader rejoins streaming',
      async (t) => {
        await leaderChange(t, 'switchover', pg1, pg2);
      },
    );
    let leader: Node = pg2;
    await t.test(
      'leader SIGKILL: the promoted node leaves at once, the old leader rejoins streaming',
      async (t) => {
        leader = await leaderChange(t, 'kill', pg2, null);
      },
    );

    await t.test('both replicas gone: primary, refuse, hold', async (t) => {
      const replicas = cluster.nodes.filter((n) => n !== leader);
      for (const n of replicas) await cluster.kill(n);
      for (const pool of Object.keys(POOL) as PoolName[])
        for (const n of replicas) await waitState(pool, n, 'down');
      const p = await session(POOL.replicas);
      t.equal(byPort(p.port), leader.name, 'when_empty primary: the read goes to the leader');
      await p.c.end();
      const refused = await session(POOL.refuse).then(
        (s) => {
          void s.c.end();
          return null;
        },
        (err: Error) => err,
      );
      t.ok(refused, 'when_empty refuse: the connection is closed');
      t.notMatch(String(refused?.message), /timeout/i, 'at once, not at a timeout');
      const held = session(POOL.hold, 120_000);
      await waitFor(
        'a client held by the hold pool',
        async () => {
          const r = await httpGet(`http://127.0.0.1:${ADMIN_PORT}/status`, 2000);
          const st = JSON.parse(r.body) as { mirrors: { pools: { name: string; held: number }[] }[] };
          return st.mirrors[0]!.pools.find((x) => x.name === 'hold')!.held === 1;
        },
        10_000,
        100,
      );
      await cluster.restart(replicas[0]!, leader);
      const s = await held;
      t.equal(byPort(s.port), replicas[0]!.name, 'when_empty hold: released to the replica that came back');
      await s.c.end();
    });
  } catch (err) {
    for (const name of ['pg1', 'pg2', 'pg3', 'mirrorlb'])
      t.comment(`--- ${name} log tail\n${cluster.tail(name)}`);
    throw err;
  }
  const b = await beat.stop();
  t.comment(
    `heartbeat: ${b.ok} updates, ${b.failed} failed; read pools on Patroni run time ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
}
