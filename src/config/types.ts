/**
 * The validated, frozen configuration. Produced once by `parseConfig` / `loadConfigFile` (src/config/load.ts)
 * and never mutated; a reload builds a whole new Config. Durations are milliseconds.
 */

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** How a mirror reacts when two members claim primary at once (docs/routing.md, "The decision"). */
export type ConflictPolicy = 'newest' | 'hold';

/**
 * What the user says the mirror is. It picks the defaults of the answer classification,
 * `fence_after` and promotion confirmation (the key rows of src/config/keys.ts, docs/configuration.md);
 * an explicit health key always wins over the kind.
 */
export const MIRROR_KINDS = ['iris', 'patroni', 'generic'] as const;

export type MirrorKind = (typeof MIRROR_KINDS)[number];

export interface HealthConfig {
  /** Probe interval while the mirror has a primary that accepts clients. */
  readonly intervalMs: number;
  /** Probe interval while it has none, and for `fastWindowMs` after any change. */
  readonly fastIntervalMs: number;
  /** How long the fast interval lasts after a change. */
  readonly fastWindowMs: number;
  /** Per-probe timeout (one HTTP request, or one SuperServer connect). */
  readonly timeoutMs: number;
  /** Consecutive "primary" answers before a member is trusted as primary. */
  readonly rise: number;
  /** Consecutive failed checks (with the SuperServer port failing too) before a primary loses the role. */
  readonly fall: number;
  /** Status that, with `expectBody`, means "primary". */
  readonly expectStatus: number;
  /** Texts of which the body must contain one to mean "primary" (empty: the status alone decides). */
  readonly expectBody: readonly string[];
  /** Texts that must all be in the body too for it to mean "primary" (empty: none). */
  readonly expectBodyAll: readonly string[];
  /** Statuses that, with `notPrimaryBody`, are the member's own "not primary" answer. */
  readonly notPrimaryStatus: readonly number[];
  /** Texts of which a not-primary body must contain one (empty: the status alone decides). */
  readonly notPrimaryBody: readonly string[];
  /**
   * A primary with no authoritative "primary" answer for this long loses the role for
   * routing even while its port accepts (contract rule 3, fencing). null: never.
   */
  readonly fenceAfterMs: number | null;
  /** Bytes of the body read at most. */
  readonly maxBodyBytes: number;
  /** Fraction of the interval used as random jitter (0..0.5). */
  readonly jitter: number;
}

export interface ProxyConfig {
  /** Backend connect timeout. */
  readonly connectTimeoutMs: number;
  /** How long a client is held while the mirror has no primary. */
  readonly holdTimeoutMs: number;
  /** Most clients held at once per mirror; beyond it new clients are closed. */
  readonly maxHeld: number;
  /** Most proxied sessions at once per mirror (0 = unlimited). */
  readonly maxConnections: number;
  /**
   * Backend connects in flight at once per member (0 = unbounded); past it clients wait in
   * arrival order, so a failover's released clients do not overflow the new primary's
   * listen backlog (connect-gate.ts).
   */
  readonly maxConnecting: number;
  /** Idle timeout of a session (0 = none; database sessions often idle for hours). */
  readonly idleTimeoutMs: number;
}

/** TLS options of a member's https:// check URLs, files already read (PEM text). */
export interface CheckTls {
  readonly ca: string | null; // PEM text of the CA bundle; null: Node's built-in roots
  readonly cert: string | null; // PEM client certificate
  readonly key: string | null; // PEM private key
  readonly servername: string | null;
  readonly verify: boolean; // false: certificates not verified (warned by check)
  readonly files: Readonly<{ ca: string | null; cert: string | null; key: string | null }>; // paths, for messages
}

export interface MemberConfig {
  readonly name: string;
  /** SuperServer (or database) address clients are proxied to. */
  readonly address: HostPort;
  /** Status URLs reaching this one member; the first that answers at all decides. */
  readonly check: readonly string[];
  /**
   * The mirror's `health.tls` with the member's own `tls` keys over it, files read at load
   * (src/config/tls.ts); null when neither sets any.
   */
  readonly tls: CheckTls | null;
}

/** Where a mirror's kind came from: the file (on the mirror or at the top level), or its check URLs. */
export type KindSource = 'written' | 'inferred';

export interface MirrorConfig {
  readonly name: string;
  readonly kind: MirrorKind;
  /** 'inferred': no `kind` in the file; every check URL of the mirror says this kind (src/config/kind.ts). */
  readonly kindSource: KindSource;
  readonly listen: HostPort;
  readonly members: readonly MemberConfig[];
  readonly health: HealthConfig;
  readonly proxy: ProxyConfig;
  readonly onConflict: ConflictPolicy;
  /** Read pools: further routes of this mirror, each on its own listener (src/config/pools.ts). */
  readonly pools: readonly PoolConfig[];
}

export type PoolBalance = 'leastconn' | 'roundrobin';
export type PoolWhenEmpty = 'hold' | 'primary' | 'refuse';
export type PoolOnLag = 'keep' | 'cut';
export type PoolOnPrimary = 'keep' | 'cut';

/** One read pool of a mirror (docs/configuration.md, "Read pools"; contract rule 8). */
export interface PoolConfig {
  readonly name: string;
  readonly listen: HostPort;
  /** The pool check URL of each member, by member name (200: qualifies, 503: does not). */
  readonly checks: Readonly<Record<string, string>>;
  readonly balance: PoolBalance;
  /** A member that just joined gets a growing share of new clients over this long. */
  readonly slowStartMs: number;
  /** Consecutive qualifying checks before a member joins. */
  readonly rise: number;
  /** Replay lag in bytes above which a member leaves after `lagExitAfterMs`; null: no limit. */
  readonly maxLagBytes: number | null;
  readonly lagExitAfterMs: number;
  /** A lagging member returns once its lag stayed at or below this for `lagReturnAfterMs`. */
  readonly lagReturnBelowBytes: number | null;
  readonly lagReturnAfterMs: number;
  readonly whenEmpty: PoolWhenEmpty;
  readonly onLag: PoolOnLag;
  readonly onPrimary: PoolOnPrimary;
}

export interface AdminConfig {
  readonly listen: HostPort;
  /** Bearer token for POST actions; null = no auth (warned about off loopback). */
  readonly token: string | null;
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export type LogLevel = (typeof LOG_LEVELS)[number];

export function isLogLevel(s: string): s is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(s);
}

export interface Config {
  /** File the config came from (for messages), or '<inline>'. */
  readonly source: string;
  readonly mirrors: readonly MirrorConfig[];
  readonly admin: AdminConfig;
  /** `sessions`: one record per client session at its end (session-log.ts). */
  readonly log: { readonly level: LogLevel; readonly sessions: boolean };
  /**
   * SIGTERM: how long the balancer stays unready but still accepting (so an outer load
   * balancer stops sending first), then how long open sessions may finish before they are cut.
   */
  readonly shutdown: { readonly graceMs: number; readonly drainTimeoutMs: number };
  /** enabled=false: no per-connection metrics on the data path (read at start only). */
  readonly metrics: { readonly enabled: boolean };
  /**
   * Data-plane event loops (`workers`, `auto` resolved here): 1 = the daemon serves on its main
   * thread; more = one worker thread per loop, each with reusePort listeners (src/workers/).
   */
  readonly workers: number;
}

export function formatHostPort(hp: HostPort): string {
  return hp.host.includes(':') ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

export function membersByName(members: readonly MemberConfig[]): Map<string, MemberConfig> {
  return new Map(members.map((m) => [m.name, m]));
}
