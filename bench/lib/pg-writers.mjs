// PostgreSQL clients (node-postgres, `pg`) writing uniquely numbered rows through a
// balancer, for the Patroni end-to-end test and the bench. Two kinds of writer:
//
//   short  a new connection per write (connect, INSERT, close): what a pooled web app
//          without a pool, a cron job or a CLI does
//   long   one long-lived session, reconnecting only after an error: what a connection
//          pool holds
//
// Every write is `INSERT INTO <table>(id, writer, port) VALUES ($1, $2, inet_server_port())
// RETURNING port`, so the answer says which PostgreSQL (by its port) executed it, and the
// row says so too. Each write and each session is recorded with monotonic-ish wall times
// (Date.now()) for the caller to judge afterwards:
//
//   writes:   { id, writer, kind, sentAt, doneAt, ok, port, error, errorKind, code (SQLSTATE or errno) }
//   sessions: { writer, kind, openedAt, port, closedAt }  (port: from its first answer)
//
// errorKind is one of: read-only (SQLSTATE 25006: the server was in recovery), refused
// (ECONNREFUSED), timeout (connect or query deadline), other (connection closed, shutdown, ...).
import pg from 'pg';

/** @typedef {import('./pg-writers.d.mts').WriteRecord} WriteRecord */
/** @typedef {import('./pg-writers.d.mts').SessionRecord} SessionRecord */
/** @typedef {{ client: pg.Client, session: SessionRecord, error?: undefined } | { error: unknown }} Opened */

/** @param {string} table */
export const TABLE_SQL = (table) =>
  `CREATE TABLE IF NOT EXISTS ${table} (id bigint PRIMARY KEY, writer text NOT NULL, port int NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())`;

/**
 * @param {{ code?: string, message?: string } | null | undefined} err
 * @returns {import('./pg-writers.d.mts').ErrorKind | null}
 */
export function errorKind(err) {
  if (!err) return null;
  if (err.code === '25006') return 'read-only';
  if (err.code === 'ECONNREFUSED') return 'refused';
  const msg = String(err.message ?? err);
  if (/timeout|timed out/i.test(msg)) return 'timeout';
  return 'other';
}

let nextId = 1;

/**
 * Starts `short` + `long` writers against host:port; `stop()` ends them (waits for each to
 * finish its write in flight) and returns { writes, sessions }.
 * @param {Parameters<typeof import('./pg-writers.d.mts').startWriters>[0]} opts
 * @returns {import('./pg-writers.d.mts').Writers}
 */
export function startWriters({
  host = '127.0.0.1',
  port,
  table = 'writes',
  short = 2,
  long = 2,
  pauseMs = 5,
  connectTimeoutMs = 2000,
  queryTimeoutMs = 5000,
  tag = 'w',
}) {
  /** @type {WriteRecord[]} */
  const writes = [];
  /** @type {SessionRecord[]} */
  const sessions = [];
  let running = true;
  const pause = () => new Promise((r) => setTimeout(r, pauseMs));
  const sqlText = `INSERT INTO ${table}(id, writer, port) VALUES ($1, $2, inet_server_port()) RETURNING port`;

  /** @type {(writer: string, kind: 'short' | 'long') => Promise<Opened>} */
  const open = async (writer, kind) => {
    /** @type {SessionRecord} */
    const session = { writer, kind, openedAt: Date.now(), port: null, closedAt: null };
    const client = new pg.Client({
      host,
      port,
      user: 'postgres',
      database: 'postgres',
      connectionTimeoutMillis: connectTimeoutMs,
      query_timeout: queryTimeoutMs,
      application_name: writer,
    });
    const closed = () => {
      session.closedAt ??= Date.now();
    };
    client.on('error', closed);
    client.on('end', closed);
    try {
      await client.connect();
    } catch (err) {
      closed();
      return { error: err };
    }
    sessions.push(session);
    return { client, session };
  };

  /** @type {(client: pg.Client, session: SessionRecord, writer: string, kind: 'short' | 'long') => Promise<WriteRecord>} */
  const write = async (client, session, writer, kind) => {
    /** @type {WriteRecord} */
    const rec = { id: nextId++, writer, kind, sentAt: Date.now(), doneAt: null, ok: false, port: null };
    writes.push(rec);
    try {
      const r = await client.query(sqlText, [rec.id, writer]);
      rec.ok = true;
      rec.port = r.rows[0].port;
      session.port ??= rec.port;
    } catch (caught) {
      const err = /** @type {{ message?: string, code?: string }} */ (caught);
      rec.error = String(err.message ?? err);
      rec.errorKind = errorKind(err) ?? undefined;
      rec.code = err.code ?? null;
    }
    rec.doneAt = Date.now();
    return rec;
  };

  /** @type {(writer: string, kind: 'short' | 'long', caught: unknown) => void} */
  const failedConnect = (writer, kind, caught) => {
    const err = /** @type {{ message?: string, code?: string }} */ (caught);
    const now = Date.now();
    writes.push({
      id: nextId++,
      writer,
      kind,
      sentAt: now,
      doneAt: now,
      ok: false,
      port: null,
      error: String(err.message ?? err),
      errorKind: errorKind(err) ?? undefined,
      code: err.code ?? null,
      connect: true,
    });
  };

  /** @param {string} writer */
  const shortLoop = async (writer) => {
    while (running) {
      const o = await open(writer, 'short');
      if (!('client' in o)) {
        failedConnect(writer, 'short', o.error);
        await pause();
        continue;
      }
      await write(o.client, o.session, writer, 'short');
      await o.client.end().catch(() => undefined);
      o.session.closedAt ??= Date.now();
      await pause();
    }
  };

  /** @param {string} writer */
  const longLoop = async (writer) => {
    /** @type {{ client: pg.Client, session: SessionRecord } | null} */
    let o = null;
    while (running) {
      if (!o) {
        const opened = await open(writer, 'long');
        if (!('client' in opened)) {
          failedConnect(writer, 'long', opened.error);
          await pause();
          continue;
        }
        o = opened;
      }
      const rec = await write(o.client, o.session, writer, 'long');
      if (!rec.ok) {
        // After any error the session is replaced: what a pool does with a broken connection.
        o.session.closedAt ??= Date.now();
        o.client.end().catch(() => undefined);
        o = null;
      }
      await pause();
    }
    if (o) {
      await o.client.end().catch(() => undefined);
      o.session.closedAt ??= Date.now();
    }
  };

  const loops = [
    ...Array.from({ length: short }, (_, i) => shortLoop(`${tag}-short-${i}`)),
    ...Array.from({ length: long }, (_, i) => longLoop(`${tag}-long-${i}`)),
  ];
  return {
    writes,
    sessions,
    /** Acknowledged writes so far. */
    acked: () => writes.filter((w) => w.ok),
    async stop() {
      running = false;
      await Promise.all(loops);
      return { writes, sessions };
    },
  };
}
