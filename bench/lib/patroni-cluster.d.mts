// Types of patroni-cluster.mjs (plain JavaScript so that the bench can use it too).
import type { ChildProcess } from 'node:child_process';

export const PG_BIN: string;
export const ROOT: string;
export const MIRRORLB_BIN: string;
export const EXAMPLE: string;
export const TTL_S: number;
export const LOOP_WAIT_S: number;
export const RETRY_TIMEOUT_S: number;

export interface PatroniNode {
  readonly name: string;
  readonly pgPort: number;
  readonly restPort: number;
  readonly home: string;
  readonly dataDir: string;
  readonly configFile: string;
  patroni: ChildProcess | null;
}

export interface Exec {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RestAnswer {
  status: number;
  body: string;
  role: string | null;
}

export interface Cluster {
  readonly dir: string;
  readonly scope: string;
  readonly nodes: readonly [PatroniNode, PatroniNode, ...PatroniNode[]];
  readonly etcdUrl: string;
  /** `http(s)://127.0.0.1:REST_PORT/primary` (or `path`): https with `restapiTls`. */
  restUrl(n: PatroniNode, path?: string): string;
  rest(n: PatroniNode, path?: string, timeoutMs?: number): Promise<RestAnswer>;
  sql<R = Record<string, unknown>>(n: PatroniNode, text: string, params?: unknown[]): Promise<R[]>;
  postmasterPid(n: PatroniNode): number | null;
  tail(name: string, chars?: number): string;
  writableLeader(): Promise<PatroniNode | null>;
  waitStreaming(n: PatroniNode, leader: PatroniNode, timeoutMs?: number): Promise<void>;
  kill(n: PatroniNode): Promise<void>;
  stop(n: PatroniNode): void;
  cont(n: PatroniNode): void;
  rejoin(n: PatroniNode, leader: PatroniNode): Promise<void>;
  restart(n: PatroniNode, leader: PatroniNode): Promise<void>;
  patronictl(n: PatroniNode, args: string[]): Promise<Exec>;
  switchover(from: PatroniNode, to: PatroniNode): Promise<Exec>;
  pause(): Promise<Exec>;
  resume(): Promise<Exec>;
  startMirrorlb(configFile: string, env: Record<string, string>, name?: string): ChildProcess;
  destroy(): Promise<void>;
}

export interface RestChange {
  at: number;
  node: string;
  status: number;
  role: string | null;
  state: string | null;
}

export interface RestTimeline {
  readonly changes: readonly RestChange[];
  writableAt(n: PatroniNode): number | null;
  status200At(n: PatroniNode): number | null;
  lostAt(n: PatroniNode, since: number): number | null;
  describe(t0: number): string;
  stop(): Promise<void[]>;
}

export function patroniMissing(): Promise<string | null>;
export function httpGet(
  url: string,
  timeoutMs?: number,
  tls?: { ca?: string; cert?: string; key?: string },
): Promise<{ status: number; body: string }>;
export function roleOf(body: string): string | null;
export function waitFor<T>(
  what: string,
  cond: () => Promise<T> | T,
  timeoutMs: number,
  everyMs?: number,
): Promise<T>;
/** Patroni's `restapi` TLS settings (file paths); `certfile` is also the harness's and Patroni's client certificate. */
export interface RestapiTls {
  certfile: string;
  keyfile: string;
  cafile: string;
  verify_client?: 'none' | 'optional' | 'required';
}
export function startCluster(opts: {
  prefix: string;
  base: number;
  /** Patroni nodes, 2 (the default) or more. */
  nodes?: number;
  log?: (msg: string) => void;
  restapiTls?: RestapiTls;
}): Promise<Cluster>;
export function pollRest(cluster: Cluster, nodes: readonly PatroniNode[], everyMs?: number): RestTimeline;
