// Types of pg-writers.mjs (plain JavaScript so that the bench can use it too).
export type ErrorKind = 'read-only' | 'refused' | 'timeout' | 'other';

export interface WriteRecord {
  id: number;
  writer: string;
  kind: 'short' | 'long';
  sentAt: number;
  doneAt: number | null;
  ok: boolean;
  port: number | null;
  error?: string;
  errorKind?: ErrorKind;
  code?: string | null;
  connect?: boolean;
}

export interface SessionRecord {
  writer: string;
  kind: 'short' | 'long';
  openedAt: number;
  port: number | null;
  closedAt: number | null;
}

export interface Writers {
  readonly writes: WriteRecord[];
  readonly sessions: SessionRecord[];
  acked(): WriteRecord[];
  stop(): Promise<{ writes: WriteRecord[]; sessions: SessionRecord[] }>;
}

export function TABLE_SQL(table: string): string;
export function errorKind(err: unknown): ErrorKind | null;
export function startWriters(opts: {
  host?: string;
  port: number;
  table?: string;
  short?: number;
  long?: number;
  pauseMs?: number;
  connectTimeoutMs?: number;
  queryTimeoutMs?: number;
  tag?: string;
}): Writers;
