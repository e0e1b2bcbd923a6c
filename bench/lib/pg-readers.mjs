// PostgreSQL readers (node-postgres, `pg`) through a read pool, and the heartbeat they read,
// for the read-pool test and the bench's `--part reads`.
//
//   beat     one writer updating the row `beat(id = 1)` every `everyMs` with its commit time
//            (clock_timestamp()) and `padBytes` of random text, so replicas have WAL to fall
//            behind on: the only thing written; its answers say which node took each write
//   short    a reader opening a connection per read (connect, SELECT, close) every `pauseMs`
//   long     a reader holding one session, reading every `longEveryMs`, reopening only after
//            an error (what a pool or an analytics client does)
//
// Every read is `SELECT inet_server_port(), pg_is_in_recovery(), <WAL receiver status>,
// <ms since the beat's commit>`: which node served it, whether it was a replica then, whether
// that replica was streaming, and how stale its data was (the same host's clock on both
// sides). Records use Date.now():
//
//   reads:    { reader, kind, sentAt, doneAt, ok, port, recovery, walReceiver, staleMs,
//               error, errorKind, connect (the connect failed) }
//   sessions: { reader, kind, openedAt, port, closedAt, cut (closed by the other side) }
import pg from 'pg';
import { errorKind } from './pg-writers.mjs';

/** @typedef {import('./pg-readers.d.mts').ReadRecord} ReadRecord */
/** @typedef {import('./pg-readers.d.mts').ReadSession} ReadSession */

export const BEAT_SQL = [
  'CREATE TABLE IF NOT EXISTS beat (id int PRIMARY KEY, at timestamptz NOT NULL, pad text)',
  'INSERT INTO beat VALUES (1, clock_timestamp(), NULL) ON CONFLICT (id) DO NOTHING',
];

const READ_SQL =
  'SELECT inet_server_port() AS port, pg_is_in_recovery() AS recovery,' +
  ' (SELECT status FROM pg_stat_wal_receiver LIMIT 1) AS wal_receiver,' +
  ' (extract(epoch FROM clock_timestamp() - at) * 1000)::float8 AS stale_ms FROM beat WHERE id = 1';

/** @param {{ host?: string, port: number, connectTimeoutMs?: number, queryTimeoutMs?: number, name: string }} o */
function client({ host = '127.0.0.1', port, connectTimeoutMs = 2000, queryTimeoutMs = 5000, name }) {
  return new pg.Client({
    host,
    port,
    user: 'postgres',
    database: 'postgres',
    connectionTimeoutMillis: connectTimeoutMs,
    query_timeout: queryTimeoutMs,
    application_name: name,
  });
}

/**
 * The heartbeat writer: one session (reopened after an error) updating beat(1).
 * @param {Parameters<typeof import('./pg-readers.d.mts').startBeat>[0]} opts
 * @returns {import('./pg-readers.d.mts').Beat}
 */
export function startBeat({ host = '127.0.0.1', port, everyMs = 10, padBytes = 1024, history = false }) {
  let running = true;
  const stats = { ok: 0, failed: 0, ports: /** @type {Record<string, number>} */ ({}) };
  // When each update was acknowledged: a read's staleness minus the time since the last of
  // these is how far its replica was behind the leader (not the writer's own pauses).
  /** @type {number[]} */
  const commits = [];
  // md5 hex is 32 characters of little compressibility: WAL of about padBytes per update.
  const sql = `UPDATE beat SET at = clock_timestamp(), pad = (SELECT string_agg(md5(random()::text), '') FROM generate_series(1, ${Math.max(1, Math.ceil(padBytes / 32))})) WHERE id = 1 RETURNING inet_server_port() AS port`;
  const loop = (async () => {
    /** @type {pg.Client | null} */
    let c = null;
    while (running) {
      try {
        if (!c) {
          c = client({ host, port, name: 'beat' });
          c.on('error', () => undefined);
          await c.connect();
        }
        const r = await c.query(sql);
        stats.ok++;
        if (history) commits.push(Date.now());
        const p = String(r.rows[0]?.port);
        stats.ports[p] = (stats.ports[p] ?? 0) + 1;
      } catch {
        stats.failed++;
        c?.end().catch(() => undefined);
        c = null;
      }
      await new Promise((r) => setTimeout(r, everyMs));
    }
    await c?.end().catch(() => undefined);
  })();
  return {
    stats,
    commits,
    async stop() {
      running = false;
      await loop;
      return stats;
    },
  };
}

/**
 * @param {Parameters<typeof import('./pg-readers.d.mts').startReaders>[0]} opts
 * @returns {import('./pg-readers.d.mts').Readers}
 */
export function startReaders({
  host = '127.0.0.1',
  port,
  short = 2,
  long = 2,
  pauseMs = 20,
  longEveryMs = 100,
  connectTimeoutMs = 2000,
  queryTimeoutMs = 5000,
  tag = 'r',
}) {
  /** @type {ReadRecord[]} */
  const reads = [];
  /** @type {ReadSession[]} */
  const sessions = [];
  let running = true;
  const sleep = (/** @type {number} */ ms) => new Promise((r) => setTimeout(r, ms));

  /** @type {(reader: string, kind: 'short' | 'long') => Promise<{ c: pg.Client, s: ReadSession } | { error: unknown, at: number }>} */
  const open = async (reader, kind) => {
    const at = Date.now();
    const c = client({ host, port, connectTimeoutMs, queryTimeoutMs, name: reader });
    /** @type {ReadSession} */
    const s = { reader, kind, openedAt: at, port: null, closedAt: null, cut: false };
    const gone = () => {
      if (s.closedAt === null) {
        s.closedAt = Date.now();
        s.cut = running && !s.ending;
      }
    };
    c.on('error', gone);
    c.on('end', gone);
    try {
      await c.connect();
    } catch (err) {
      return { error: err, at };
    }
    sessions.push(s);
    return { c, s };
  };

  /** @type {(c: pg.Client, s: ReadSession, sentAt: number) => Promise<ReadRecord>} */
  const read = async (c, s, sentAt) => {
    /** @type {ReadRecord} */
    const rec = {
      reader: s.reader,
      kind: s.kind,
      sentAt,
      doneAt: null,
      ok: false,
      port: null,
      recovery: null,
      walReceiver: null,
      staleMs: null,
    };
    reads.push(rec);
    try {
      const row = (await c.query(READ_SQL)).rows[0];
      rec.ok = true;
      rec.port = row.port;
      rec.recovery = row.recovery;
      rec.walReceiver = row.wal_receiver;
      rec.staleMs = row.stale_ms;
      s.port ??= row.port;
    } catch (caught) {
      const err = /** @type {{ message?: string, code?: string }} */ (caught);
      rec.error = String(err.message ?? err);
      rec.errorKind = errorKind(err) ?? undefined;
      rec.code = err.code ?? null;
    }
    rec.doneAt = Date.now();
    return rec;
  };

  /** @type {(reader: string, kind: 'short' | 'long', sentAt: number, caught: unknown) => void} */
  const failedConnect = (reader, kind, sentAt, caught) => {
    const err = /** @type {{ message?: string, code?: string }} */ (caught);
    reads.push({
      reader,
      kind,
      sentAt,
      doneAt: Date.now(),
      ok: false,
      port: null,
      recovery: null,
      walReceiver: null,
      staleMs: null,
      error: String(err.message ?? err),
      errorKind: errorKind(err) ?? undefined,
      code: err.code ?? null,
      connect: true,
    });
  };

  /** @param {string} reader */
  const shortLoop = async (reader) => {
    while (running) {
      const o = await open(reader, 'short');
      if ('error' in o) failedConnect(reader, 'short', o.at, o.error);
      else {
        await read(o.c, o.s, o.s.openedAt);
        o.s.ending = true;
        await o.c.end().catch(() => undefined);
        o.s.closedAt ??= Date.now();
      }
      await sleep(pauseMs);
    }
  };

  /** @param {string} reader */
  const longLoop = async (reader) => {
    /** @type {{ c: pg.Client, s: ReadSession } | null} */
    let o = null;
    while (running) {
      if (!o) {
        const opened = await open(reader, 'long');
        if ('error' in opened) {
          failedConnect(reader, 'long', opened.at, opened.error);
          await sleep(longEveryMs);
          continue;
        }
        o = opened;
      }
      const rec = await read(o.c, o.s, Date.now());
      if (!rec.ok) {
        o.s.closedAt ??= Date.now();
        o.c.end().catch(() => undefined);
        o = null;
      }
      await sleep(longEveryMs);
    }
    if (o) {
      o.s.ending = true;
      await o.c.end().catch(() => undefined);
      o.s.closedAt ??= Date.now();
    }
  };

  const loops = [
    ...Array.from({ length: short }, (_, i) => shortLoop(`${tag}-short-${i}`)),
    ...Array.from({ length: long }, (_, i) => longLoop(`${tag}-long-${i}`)),
  ];
  return {
    reads,
    sessions,
    async stop() {
      running = false;
      await Promise.all(loops);
      return { reads, sessions };
    },
  };
}
