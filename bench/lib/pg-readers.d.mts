// Types of pg-readers.mjs (plain JavaScript so that the bench can use it too).
import type { ErrorKind } from './pg-writers.mjs';

export interface ReadRecord {
  reader: string;
  kind: 'short' | 'long';
  sentAt: number;
  doneAt: number | null;
  ok: boolean;
  /** The PostgreSQL port that served it (inet_server_port()). */
  port: number | null;
  /** pg_is_in_recovery() there: true on a replica. */
  recovery: boolean | null;
  /** pg_stat_wal_receiver's status there ('streaming', ...), null on a primary or with none. */
  walReceiver: string | null;
  /** Milliseconds between the heartbeat's last commit it saw and the read. */
  staleMs: number | null;
  error?: string;
  errorKind?: ErrorKind;
  /** SQLSTATE or errno of the failure, when the error had one. */
  code?: string | null;
  /** The connect failed (no session). */
  connect?: boolean;
}

export interface ReadSession {
  reader: string;
  kind: 'short' | 'long';
  openedAt: number;
  port: number | null;
  closedAt: number | null;
  /** Closed by the other side (the balancer or the server) while the readers ran. */
  cut: boolean;
  ending?: boolean;
}

export interface Readers {
  readonly reads: ReadRecord[];
  readonly sessions: ReadSession[];
  stop(): Promise<{ reads: ReadRecord[]; sessions: ReadSession[] }>;
}

export interface Beat {
  readonly stats: { ok: number; failed: number; ports: Record<string, number> };
  /** Date.now() of each acknowledged update (only with `history`). */
  readonly commits: readonly number[];
  stop(): Promise<{ ok: number; failed: number; ports: Record<string, number> }>;
}

export const BEAT_SQL: readonly string[];
export function startBeat(opts: {
  host?: string;
  port: number;
  everyMs?: number;
  padBytes?: number;
  history?: boolean;
}): Beat;
export function startReaders(opts: {
  host?: string;
  port: number;
  short?: number;
  long?: number;
  pauseMs?: number;
  longEveryMs?: number;
  connectTimeoutMs?: number;
  queryTimeoutMs?: number;
  tag?: string;
}): Readers;
