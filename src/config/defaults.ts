/**
 * The file's defaults in the file's own units, and the shape of a file that passed the
 * schema. The schema documents the same defaults (`default`); a test keeps the two equal.
 */
import type { ConflictPolicy, LogLevel, MirrorKind } from './types.js';

export interface RawHealth {
  readonly interval: string;
  readonly fast_interval: string;
  readonly fast_window: string;
  readonly timeout: string;
  readonly rise: number;
  readonly fall: number;
  readonly expect_status: number;
  /** One text, or a list of which any one found means primary; null: the status alone. */
  readonly expect_body: string | readonly string[] | null;
  readonly not_primary_status: number | readonly number[];
  readonly not_primary_body: string | readonly string[] | null;
  /** A duration, or "off". */
  readonly fence_after: string;
  readonly max_body: number;
  readonly jitter: number;
}

export interface RawProxy {
  readonly connect_timeout: string;
  readonly hold_timeout: string;
  readonly max_held: number;
  readonly max_connections: number;
  /** A duration, or 0 / "0" / "off" for none. */
  readonly idle_timeout: string | number;
}

export interface RawAdmin {
  readonly listen: string;
  readonly token: string | null;
}

interface Defaults {
  readonly onConflict: ConflictPolicy;
  readonly kind: MirrorKind;
  readonly health: RawHealth;
  readonly proxy: RawProxy;
  readonly admin: RawAdmin;
  readonly log: { readonly level: LogLevel };
  readonly shutdown: { readonly drain_timeout: string };
  readonly metrics: { readonly enabled: boolean };
}

/**
 * The generic kind's values; `kind: iris` / `kind: patroni` change some of them
 * (src/config/kinds.ts). The schema documents these.
 */
export const DEFAULTS: Defaults = {
  onConflict: 'newest',
  kind: 'generic',
  health: {
    interval: '200ms',
    fast_interval: '50ms',
    fast_window: '2s',
    timeout: '250ms',
    rise: 1,
    fall: 2,
    expect_status: 200,
    expect_body: null,
    not_primary_status: 503,
    not_primary_body: null,
    fence_after: '10s',
    max_body: 4096,
    jitter: 0.1,
  },
  proxy: {
    connect_timeout: '1s',
    hold_timeout: '10s',
    max_held: 1000,
    max_connections: 0,
    idle_timeout: 0,
  },
  admin: { listen: '127.0.0.1:9090', token: null },
  log: { level: 'info' },
  shutdown: { drain_timeout: '30s' },
  metrics: { enabled: true },
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
  readonly health?: Partial<RawHealth>;
  readonly proxy?: Partial<RawProxy>;
  readonly members: readonly RawMember[];
}

/** A file after env substitution that passed the schema and the semantic checks. */
export interface RawFile {
  readonly mirrors: readonly RawMirror[];
  readonly kind?: MirrorKind;
  readonly health?: Partial<RawHealth>;
  readonly proxy?: Partial<RawProxy>;
  readonly admin?: Partial<RawAdmin>;
  readonly log?: Partial<Defaults['log']>;
  readonly shutdown?: Partial<Defaults['shutdown']>;
  readonly metrics?: Partial<Defaults['metrics']>;
}

export const HEALTH_DURATIONS = ['interval', 'fast_interval', 'fast_window', 'timeout'] as const;
export const PROXY_DURATIONS = ['connect_timeout', 'hold_timeout'] as const;

/** `fence_after: off`: never fence. */
export function isNoFence(v: unknown): boolean {
  return v === 'off';
}

/** `idle_timeout`: 0, "0" and "off" mean no idle timeout. */
export function isNoIdleTimeout(v: unknown): boolean {
  return v === 0 || v === '0' || v === 'off';
}
