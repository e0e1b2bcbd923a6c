/**
 * The keys of the sections every mirror inherits (`health`, `proxy`) and of `shutdown`, one
 * row each: the Config field it becomes, its value type, its default, what each mirror kind
 * changes in that default, its sanity bounds and its documentation. Everything else is
 * derived from these rows: the defaults (DEFAULTS), the per-kind defaults, the typed Config
 * sections and the value checks (sections.ts), and the key's part of the JSON Schema
 * (schema-document.ts, written out to schema/mirrorlb.schema.json; a test keeps the file
 * equal to what the rows generate).
 *
 * Adding a key to one of these sections: a row here, its field (with a doc comment) in
 * types.ts, docs/configuration.md, then regenerate the schema file
 * (MIRRORLB_UPDATE_SCHEMA=1 npx tap test/config-schema-file.test.ts). A new value type: a
 * member of `ValueType`, its file type in `RawOf`, its Config type in `BuiltOf`, its cases in
 * sections.ts and schema-document.ts (the compiler asks).
 */
import type { RawPool } from './pools.js';
import type { Config, ConflictPolicy, HealthConfig, LogLevel, MirrorKind, ProxyConfig } from './types.js';
import type { WorkersSetting } from '../workers/support.js';

/** How a value in the file becomes a value in Config. */
export type ValueType =
  /** `250ms`, `2s`: milliseconds. */
  | 'duration'
  /** A duration, or 0 / "0" / "off" for none: milliseconds, 0 for none. */
  | 'duration-or-off'
  /** A duration, or "off" for never: milliseconds, null for never. */
  | 'duration-or-never'
  | 'integer'
  | 'number'
  /** A string, a list of strings, or null for none: a list (empty for none). */
  | 'texts'
  /** An HTTP status or a list of them: a list. */
  | 'statuses';

/** The type a value type has in the file, after the schema passed it. */
export type RawOf<T extends ValueType> = T extends 'duration' | 'duration-or-never'
  ? string
  : T extends 'duration-or-off'
    ? string | number
    : T extends 'integer' | 'number'
      ? number
      : T extends 'texts'
        ? string | readonly string[] | null
        : number | readonly number[];

/** The type a value type has in Config. */
export type BuiltOf<T extends ValueType> = T extends 'texts' | 'statuses'
  ? readonly (T extends 'texts' ? string : number)[]
  : T extends 'duration-or-never'
    ? number | null
    : number;

/** The kinds whose defaults differ from the generic ones. */
export type SpecialKind = Exclude<MirrorKind, 'generic'>;

export interface KeyRow<Field extends string = string> {
  readonly field: Field;
  readonly type: ValueType;
  /** The generic default, in the file's units (what the schema documents). */
  readonly default: string | number | null;
  /** The default of a kind where it differs from the generic one (docs/configuration.md says why). */
  readonly kinds?: Partial<Record<SpecialKind, string | number | readonly (string | number)[] | null>>;
  /** What the key does: the schema's description, shown by editors. */
  readonly doc: string;
  /** The schema's own limits of an `integer` / `number`, and its wording when a value is not one. */
  readonly minimum?: number;
  readonly maximum?: number;
  readonly errorMessage?: string;
  /**
   * A string failing the schema's pattern is explained by the duration parser ("negative",
   * "no unit") instead of errorMessage. Always so for a plain `duration`.
   */
  readonly parserExplains?: boolean;
  /** Refused below / above this (milliseconds for a duration), with the consequence in `refused`. */
  readonly refuseBelow?: number;
  readonly refuseAbove?: number;
  readonly refused?: string;
  /** Warned below this, with the consequence in `warned`. */
  readonly warnBelow?: number;
  readonly warned?: string;
}

const PROBE_FLOOD = 'more than 100 probes a second per member would load the members, not watch them';

// The kinds' defaults, in short (each row says its part):
// - generic: nothing is known about the database, so a status alone decides (200 primary,
//   503 not), and fencing comes at 10s, before the usual cluster managers' failover
//   deadlines (30s and more) but after a status page restart of a few seconds.
// - iris: /csp/mirror_status.cxw answers 200 SUCCESS on the primary and 503 FAILED on any
//   other member; requiring the bodies turns a Web Gateway's own 500/503 HTML error page into
//   an unexpected answer instead of a demotion. IRIS fences itself through the arbiter.
// - patroni: GET /primary answers 200 as soon as the node holds the leader lock, but only a
//   running PostgreSQL that has left recovery is a primary; without a watchdog Patroni does
//   not fence itself, so fencing must come before the replica's promotion.
export const HEALTH_KEYS = {
  interval: {
    field: 'intervalMs',
    type: 'duration',
    default: '200ms',
    doc: 'Probe interval while the mirror has a primary that accepts clients.',
    refuseBelow: 10,
    refused: PROBE_FLOOD,
  },
  fast_interval: {
    field: 'fastIntervalMs',
    type: 'duration',
    default: '50ms',
    doc: 'Probe interval while the mirror has no primary, and for fast_window after any change. Not longer than interval.',
    refuseBelow: 10,
    refused: PROBE_FLOOD,
  },
  fast_window: {
    field: 'fastWindowMs',
    type: 'duration',
    default: '2s',
    doc: 'How long the fast interval lasts after a change.',
  },
  timeout: {
    field: 'timeoutMs',
    type: 'duration',
    default: '250ms',
    doc: 'Timeout of one probe (one HTTP request, or one SuperServer connect).',
    warnBelow: 10,
    warned: 'a status page rarely answers that fast over a network; most checks would time out',
  },
  rise: {
    field: 'rise',
    type: 'integer',
    default: 1,
    doc: "Consecutive 'primary' answers before a member is trusted as primary.",
    errorMessage: 'must be an integer >= 1',
    minimum: 1,
    refuseAbove: 100,
    refused: 'that many "primary" answers in a row would keep a new primary untrusted for ages',
  },
  fall: {
    field: 'fall',
    type: 'integer',
    default: 2,
    doc: 'Consecutive failed checks (with the SuperServer port failing too) before a primary loses the role.',
    errorMessage: 'must be an integer >= 1',
    minimum: 1,
    refuseAbove: 100,
    refused: 'that many failed checks in a row would keep a dead primary for ages',
  },
  expect_status: {
    field: 'expectStatus',
    type: 'integer',
    default: 200,
    doc: "HTTP status that, with expect_body, means 'primary'.",
    errorMessage: 'must be an HTTP status code (integer 100..599)',
    minimum: 100,
    maximum: 599,
  },
  expect_body: {
    field: 'expectBody',
    type: 'texts',
    default: null,
    // Patroni 3.0 says "master", later versions "primary".
    kinds: { iris: 'SUCCESS', patroni: ['"role": "master"', '"role": "primary"'] },
    doc: "Text the body of a 200 must also contain to mean 'primary' (e.g. SUCCESS), a list of texts of which any one will do, or null to look at the status only.",
  },
  expect_body_all: {
    field: 'expectBodyAll',
    type: 'texts',
    default: null,
    // While a switchover stops PostgreSQL the old leader still holds the lock and answers
    // 200 "role": "master" with "state": "stopping" for about a second, refusing new
    // connections: only a running PostgreSQL is a primary (docs/patroni.md).
    kinds: { patroni: '"state": "running"' },
    doc: 'Texts that must all be in the body, besides one of expect_body, for the answer to mean \'primary\' (Patroni: "state": "running", so a leader that is shutting PostgreSQL down is not primary); null or absent: none.',
  },
  not_primary_status: {
    field: 'notPrimaryStatus',
    type: 'statuses',
    default: 503,
    // A Patroni 200 saying replica is the node's own "not yet" (a promotion in progress):
    // authoritative, never routed to.
    kinds: { patroni: [503, 200] },
    doc: "HTTP status (or list of them) that, with not_primary_body, is the member's own 'not primary' answer; it demotes at once. Any answer that is neither primary nor not primary is unexpected: a failed check of that URL, never a demotion.",
  },
  not_primary_body: {
    field: 'notPrimaryBody',
    type: 'texts',
    default: null,
    kinds: { iris: 'FAILED' },
    doc: "Text a not-primary answer's body must contain (e.g. FAILED), a list of texts of which any one will do, or null to look at the status only.",
  },
  fence_after: {
    field: 'fenceAfterMs',
    type: 'duration-or-never',
    default: '10s',
    // IRIS: the arbiter fences (a primary that loses the backup and the arbiter stops
    // serving), so this only has to catch what the arbiter does not, and may ride out a Web
    // Gateway restart. Patroni without a watchdog: below ttl - loop_wait (20s at Patroni's
    // defaults, 9s at ttl 10s / loop_wait 1s).
    kinds: { iris: '60s', patroni: '5s' },
    doc: "A primary that has given no authoritative 'primary' answer for this long loses the role for routing even while its port accepts: its sessions are closed and no held client is sent to it. A duration, or off. Keep it below the database's own failover deadline where the database does not fence itself (Patroni: ttl - loop_wait).",
    errorMessage: 'must be a positive duration like 30s, or off',
  },
  max_body: {
    field: 'maxBodyBytes',
    type: 'integer',
    default: 4096,
    doc: 'Bytes of the status body read at most (1..1048576).',
    errorMessage: 'must be an integer from 1 to 1048576 (bytes)',
    minimum: 1,
    maximum: 1048576,
  },
  jitter: {
    field: 'jitter',
    type: 'number',
    default: 0.1,
    doc: 'Fraction of the interval added as random jitter, so probes of many members do not line up (0..0.5).',
    errorMessage: 'must be a number from 0 to 0.5',
    minimum: 0,
    maximum: 0.5,
  },
} as const satisfies Record<string, KeyRow<keyof HealthConfig>>;

export const PROXY_KEYS = {
  connect_timeout: {
    field: 'connectTimeoutMs',
    type: 'duration',
    default: '1s',
    doc: "Timeout of the connect to the primary's address.",
    warnBelow: 10,
    warned: 'a connect over a network rarely completes that fast; most clients would be refused',
  },
  hold_timeout: {
    field: 'holdTimeoutMs',
    type: 'duration',
    default: '10s',
    doc: 'How long a new client is held while the mirror has no primary; at the end it is closed.',
    warnBelow: 100,
    warned: 'held clients are closed before any failover can complete: holding is in effect off',
  },
  // A failover makes every pooled connection of every application server reconnect at once;
  // they are held until the new primary accepts. 1000 closed half of a 2,000-client storm
  // (bench --part storm); a held client costs one paused socket (~3 KiB).
  max_held: {
    field: 'maxHeld',
    type: 'integer',
    default: 10000,
    doc: 'Most clients held at once per mirror; beyond it new clients are closed at once.',
    errorMessage: 'must be an integer >= 0',
    minimum: 0,
  },
  max_connections: {
    field: 'maxConnections',
    type: 'integer',
    default: 0,
    doc: 'Most proxied sessions at once per mirror; 0 = unlimited.',
    errorMessage: 'must be an integer >= 0 (0 = unlimited)',
    minimum: 0,
  },
  max_connecting: {
    field: 'maxConnecting',
    type: 'integer',
    default: 128,
    doc: "Most backend connects in flight at once per member; past it clients wait (accepted, in arrival order) for one to complete, so a failover's released clients do not overflow the new primary's listen backlog. 0 = unbounded.",
    errorMessage: 'must be an integer >= 0 (0 = unbounded)',
    minimum: 0,
  },
  idle_timeout: {
    field: 'idleTimeoutMs',
    type: 'duration-or-off',
    default: 0,
    doc: 'Close a session after this long without a byte in either direction; 0 or off = never (database sessions often idle for hours).',
    errorMessage: 'must be a positive duration like 30m, or 0 / off for none',
  },
} as const satisfies Record<string, KeyRow<keyof ProxyConfig>>;

export const SHUTDOWN_KEYS = {
  drain_timeout: {
    field: 'drainTimeoutMs',
    type: 'duration',
    default: '30s',
    doc: 'How long open sessions may finish after SIGTERM before they are cut.',
  },
  grace: {
    field: 'graceMs',
    type: 'duration-or-off',
    default: '5s',
    doc: 'On SIGTERM, how long the balancer answers 503 on /readyz while still accepting new clients, so an outer load balancer (a Kubernetes Service, an NLB) stops sending before the listeners close; then the drain starts. 0 or off = close the listeners at once.',
    errorMessage: 'must be a positive duration like 5s, or 0 / off for none',
    parserExplains: true,
  },
} as const satisfies Record<string, KeyRow<keyof Config['shutdown']>>;

/** The sections built from rows, by their key in the file. */
export const SECTIONS = { health: HEALTH_KEYS, proxy: PROXY_KEYS, shutdown: SHUTDOWN_KEYS } as const;
export type SectionName = keyof typeof SECTIONS;
/** The sections a mirror may override under its own key. */
export const MIRROR_SECTIONS = ['health', 'proxy'] as const satisfies readonly SectionName[];

export type Rows = Readonly<Record<string, KeyRow>>;

/** A section as the file has it once the schema passed: every key of the rows, in file types. */
export type RawSection<R extends Record<string, { readonly type: ValueType }>> = {
  readonly [K in keyof R]: RawOf<R[K]['type']>;
};

/** A section as Config has it: every row's field. */
export type BuiltSection<R extends Record<string, { readonly field: string; readonly type: ValueType }>> = {
  readonly [K in keyof R as R[K]['field']]: BuiltOf<R[K]['type']>;
};

export type RawHealth = RawSection<typeof HEALTH_KEYS>;
export type RawProxy = RawSection<typeof PROXY_KEYS>;
export type RawShutdown = RawSection<typeof SHUTDOWN_KEYS>;

/** The section's defaults in the file's own units. */
function defaultsOf<R extends Rows>(rows: R): RawSection<R> {
  return Object.fromEntries(Object.entries(rows).map(([k, r]) => [k, r.default])) as RawSection<R>;
}

export interface RawAdmin {
  readonly listen: string;
  readonly token: string | null;
}

interface Defaults {
  readonly onConflict: ConflictPolicy;
  readonly health: RawHealth;
  readonly proxy: RawProxy;
  readonly admin: RawAdmin;
  readonly log: { readonly level: LogLevel; readonly sessions: boolean };
  readonly shutdown: RawShutdown;
  readonly metrics: { readonly enabled: boolean };
  readonly workers: WorkersSetting;
}

/**
 * The file's defaults in the file's own units, as the schema documents them: the generic
 * kind's values (the rows' `kinds` change some of them). `kind` has none: unwritten, it is
 * inferred from each mirror's check URLs (kind.ts).
 */
export const DEFAULTS: Defaults = {
  onConflict: 'newest',
  health: defaultsOf(HEALTH_KEYS),
  proxy: defaultsOf(PROXY_KEYS),
  admin: { listen: '127.0.0.1:9090', token: null },
  log: { level: 'info', sessions: false },
  shutdown: defaultsOf(SHUTDOWN_KEYS),
  metrics: { enabled: true },
  // One loop: the daemon as it always ran (no threads); more is asked for, never assumed.
  workers: 1,
};

export interface RawMember {
  readonly name: string;
  readonly address: string;
  readonly check: string | readonly string[];
}

export interface RawMirror {
  readonly name: string;
  readonly listen: string;
  readonly kind?: MirrorKind;
  readonly on_conflict?: ConflictPolicy;
  readonly members: readonly RawMember[];
  readonly pools?: readonly RawPool[];
}

/**
 * A file after env substitution that passed the schema and the semantic checks. The
 * sections built from rows are not read from here: the semantic checks convert them once
 * (sections.ts).
 */
export interface RawFile {
  readonly mirrors: readonly RawMirror[];
  readonly kind?: MirrorKind;
  readonly admin?: Partial<RawAdmin>;
  readonly log?: Partial<Defaults['log']>;
  readonly metrics?: Partial<Defaults['metrics']>;
  readonly workers?: WorkersSetting;
}
