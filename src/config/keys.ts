/**
 * One row per config key of the sections every mirror inherits (`health`, `proxy`) and of
 * `shutdown`: the key's kind, its default, the Config field it becomes and its sanity
 * bounds. The defaults (defaults.ts), the duration checks (timing.ts), the value
 * explanations (values.ts), the bounds (bounds.ts) and the typed Config (build.ts) are all
 * derived from these rows. The JSON Schema (schema/mirrorlb.schema.json) stays the file
 * editors validate with; test/config-schema.test.ts keeps its keys and defaults equal to
 * these rows.
 *
 * Adding a key to one of these sections: a row here, the field (with its doc comment) in
 * types.ts, the property in the schema (per-mirror `*_override` and top-level, with the
 * default), and docs/configuration.md. A new kind of value: a member of `Kind`, its file
 * type in `RawOf`, its Config type in `BuiltOf`, its case in `convert` (the compiler asks).
 */
import { parseDuration } from './duration.js';
import type { Config, HealthConfig, ProxyConfig } from './types.js';

/** How a value in the file becomes a value in Config. */
export type Kind =
  /** `250ms`, `2s`: milliseconds. */
  | 'duration'
  /** A duration, or 0 / "0" / "off" for none: milliseconds, 0 for none. */
  | 'duration-or-off'
  | 'integer'
  | 'number'
  /** A string, or null for none. */
  | 'text-or-null'
  /** A string, a list of strings, or null for none: a list (empty for none). */
  | 'texts'
  /** A number or a list of numbers: a list. */
  | 'statuses'
  /** A duration, or "off" for never: milliseconds, null for never. */
  | 'duration-or-never';

/** The type a kind has in the file, after the schema passed it. */
export type RawOf<K extends Kind> = K extends 'duration' | 'duration-or-never'
  ? string
  : K extends 'duration-or-off'
    ? string | number
    : K extends 'integer' | 'number'
      ? number
      : K extends 'texts'
        ? string | readonly string[] | null
        : K extends 'statuses'
          ? number | readonly number[]
          : string | null;

/** The type a kind has in Config. */
export type BuiltOf<K extends Kind> = K extends 'text-or-null'
  ? string | null
  : K extends 'texts'
    ? readonly string[]
    : K extends 'statuses'
      ? readonly number[]
      : K extends 'duration-or-never'
        ? number | null
        : number;

export interface KeyRow<Field extends string> {
  readonly field: Field;
  readonly kind: Kind;
  readonly default: string | number | null;
  /** Refused below this (milliseconds for a duration), with the consequence in `refused`. */
  readonly min?: number;
  /** Refused above this. */
  readonly max?: number;
  readonly refused?: string;
  /** Warned below this, with the consequence in `warned`. */
  readonly warnBelow?: number;
  readonly warned?: string;
}

const PROBE_FLOOD = 'more than 100 probes a second per member would load the members, not watch them';

export const HEALTH_KEYS = {
  interval: { field: 'intervalMs', kind: 'duration', default: '200ms', min: 10, refused: PROBE_FLOOD },
  fast_interval: {
    field: 'fastIntervalMs',
    kind: 'duration',
    default: '50ms',
    min: 10,
    refused: PROBE_FLOOD,
  },
  fast_window: { field: 'fastWindowMs', kind: 'duration', default: '2s' },
  timeout: {
    field: 'timeoutMs',
    kind: 'duration',
    default: '250ms',
    warnBelow: 10,
    warned: 'a status page rarely answers that fast over a network; most checks would time out',
  },
  rise: {
    field: 'rise',
    kind: 'integer',
    default: 1,
    max: 100,
    refused: 'that many "primary" answers in a row would keep a new primary untrusted for ages',
  },
  fall: {
    field: 'fall',
    kind: 'integer',
    default: 2,
    max: 100,
    refused: 'that many failed checks in a row would keep a dead primary for ages',
  },
  expect_status: { field: 'expectStatus', kind: 'integer', default: 200 },
  expect_body: { field: 'expectBody', kind: 'texts', default: null },
  expect_body_all: { field: 'expectBodyAll', kind: 'texts', default: null },
  not_primary_status: { field: 'notPrimaryStatus', kind: 'statuses', default: 503 },
  not_primary_body: { field: 'notPrimaryBody', kind: 'texts', default: null },
  fence_after: { field: 'fenceAfterMs', kind: 'duration-or-never', default: '10s' },
  max_body: { field: 'maxBodyBytes', kind: 'integer', default: 4096 },
  jitter: { field: 'jitter', kind: 'number', default: 0.1 },
} as const satisfies Record<string, KeyRow<keyof HealthConfig>>;

export const PROXY_KEYS = {
  connect_timeout: {
    field: 'connectTimeoutMs',
    kind: 'duration',
    default: '1s',
    warnBelow: 10,
    warned: 'a connect over a network rarely completes that fast; most clients would be refused',
  },
  hold_timeout: {
    field: 'holdTimeoutMs',
    kind: 'duration',
    default: '10s',
    warnBelow: 100,
    warned: 'held clients are closed before any failover can complete: holding is in effect off',
  },
  // A failover makes every pooled connection of every application server reconnect at once;
  // they are held until the new primary accepts. 1000 closed half of a 2,000-client storm
  // (bench --part storm); a held client costs one paused socket (~3 KiB).
  max_held: { field: 'maxHeld', kind: 'integer', default: 10000 },
  max_connections: { field: 'maxConnections', kind: 'integer', default: 0 },
  max_connecting: { field: 'maxConnecting', kind: 'integer', default: 128 },
  idle_timeout: { field: 'idleTimeoutMs', kind: 'duration-or-off', default: 0 },
} as const satisfies Record<string, KeyRow<keyof ProxyConfig>>;

export const SHUTDOWN_KEYS = {
  grace: { field: 'graceMs', kind: 'duration-or-off', default: '5s' },
  drain_timeout: { field: 'drainTimeoutMs', kind: 'duration', default: '30s' },
} as const satisfies Record<string, KeyRow<keyof Config['shutdown']>>;

export type Rows = Readonly<Record<string, KeyRow<string>>>;

/** A section as the file has it once the schema passed: every key of the rows, in file types. */
export type RawSection<R extends Record<string, { readonly kind: Kind }>> = {
  readonly [K in keyof R]: RawOf<R[K]['kind']>;
};

/** A section as Config has it: every row's field. */
export type BuiltSection<R extends Record<string, { readonly field: string; readonly kind: Kind }>> = {
  readonly [K in keyof R as R[K]['field']]: BuiltOf<R[K]['kind']>;
};

/** The section's defaults in the file's own units. */
export function defaultsOf<R extends Rows>(rows: R): RawSection<R> {
  return Object.fromEntries(Object.entries(rows).map(([k, r]) => [k, r.default])) as RawSection<R>;
}

/** The typed section: each key (given, else its default) converted by its kind. */
export function buildSection<R extends Rows>(
  rows: R,
  raw: Partial<Record<string, unknown>>,
): BuiltSection<R> {
  return Object.fromEntries(
    Object.entries(rows).map(([k, r]) => [r.field, convert(r.kind, raw[k] ?? r.default)]),
  ) as BuiltSection<R>;
}

/** `idle_timeout`: 0, "0" and "off" mean no idle timeout. */
export function isNoIdleTimeout(v: unknown): boolean {
  return v === 0 || v === '0' || v === 'off';
}

/** `fence_after: off`: never fence. */
export function isNoFence(v: unknown): boolean {
  return v === 'off';
}

function convert(kind: Kind, v: unknown): unknown {
  switch (kind) {
    case 'duration':
      return parseDuration(v as string);
    case 'duration-or-off':
      return isNoIdleTimeout(v) ? 0 : parseDuration(String(v));
    case 'duration-or-never':
      return isNoFence(v) ? null : parseDuration(v as string);
    case 'texts':
      return v === null ? [] : typeof v === 'string' ? [v] : [...(v as readonly string[])];
    case 'statuses':
      return typeof v === 'number' ? [v] : [...(v as readonly number[])];
    case 'integer':
    case 'number':
    case 'text-or-null':
      return v;
    default:
      return kind satisfies never;
  }
}

/** Keys of a section whose values are durations, `duration-or-off` ones included when asked. */
export function durationKeys(rows: Rows, kinds: readonly Kind[] = ['duration']): string[] {
  return Object.entries(rows)
    .filter(([, r]) => kinds.includes(r.kind))
    .map(([k]) => k);
}
