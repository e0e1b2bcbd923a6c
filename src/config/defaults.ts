/**
 * The file's defaults in the file's own units, and the shape of a file that passed the
 * schema. The inherited sections (`health`, `proxy`) and `shutdown` come from their rows
 * in keys.ts; the schema documents the same defaults (`default`) and a test keeps them equal.
 */
import { defaultsOf, durationKeys, HEALTH_KEYS, PROXY_KEYS, SHUTDOWN_KEYS, type RawSection } from './keys.js';
import type { ConflictPolicy, LogLevel, MirrorKind } from './types.js';

export { isNoFence, isNoIdleTimeout } from './keys.js';

export type RawHealth = RawSection<typeof HEALTH_KEYS>;
export type RawProxy = RawSection<typeof PROXY_KEYS>;
export type RawShutdown = RawSection<typeof SHUTDOWN_KEYS>;

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
  readonly shutdown: RawShutdown;
  readonly metrics: { readonly enabled: boolean };
}

/**
 * The generic kind's values; `kind: iris` / `kind: patroni` change some of them
 * (src/config/kinds.ts). The schema documents these.
 */
export const DEFAULTS: Defaults = {
  onConflict: 'newest',
  kind: 'generic',
  health: defaultsOf(HEALTH_KEYS),
  proxy: defaultsOf(PROXY_KEYS),
  admin: { listen: '127.0.0.1:9090', token: null },
  log: { level: 'info' },
  shutdown: defaultsOf(SHUTDOWN_KEYS),
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
  readonly shutdown?: Partial<RawShutdown>;
  readonly metrics?: Partial<Defaults['metrics']>;
}

export const HEALTH_DURATIONS = durationKeys(HEALTH_KEYS);
export const PROXY_DURATIONS = durationKeys(PROXY_KEYS);
export const SHUTDOWN_DURATIONS = durationKeys(SHUTDOWN_KEYS);
/** Durations that also take 0 / "0" / "off" for none. */
export const PROXY_OFFABLE = durationKeys(PROXY_KEYS, ['duration-or-off']);
export const SHUTDOWN_OFFABLE = durationKeys(SHUTDOWN_KEYS, ['duration-or-off']);
