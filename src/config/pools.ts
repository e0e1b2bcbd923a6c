/**
 * Read pools of a mirror (`pools:` under a mirror): their keys, their part of the JSON Schema,
 * the checks the schema cannot express (names, listen collisions are in semantic.ts, check
 * URLs derived or given per member) and their build into typed PoolConfig. Every key is
 * defined here once; docs/configuration.md documents them.
 */
import { parseCheckUrl } from './check-url.js';
import type { Checker } from './checker.js';
import { parseDuration } from './duration.js';
import { ConfigValueError } from './errors.js';
import { parseListenAddress } from './hostport.js';
import type {
  MirrorKind,
  PoolBalance,
  PoolConfig,
  PoolOnLag,
  PoolOnPrimary,
  PoolWhenEmpty,
} from './types.js';

type Json = Record<string, unknown>;

/** Patroni REST paths a pool may name by role (Patroni 3.0.2, patroni/api.py). */
export const PATRONI_POOL_PATHS = {
  replica: '/replica',
  sync: '/sync',
  async: '/async',
  'read-only': '/read-only',
  'read-only-sync': '/read-only-sync',
} as const;

export interface RawPool {
  readonly name: string;
  readonly listen: string;
  readonly check?: string;
  readonly checks?: Readonly<Record<string, string>>;
  readonly balance?: PoolBalance;
  readonly slow_start?: string;
  readonly rise?: number;
  readonly max_lag?: string | number | null;
  readonly lag_exit_after?: string;
  readonly lag_return_below?: string | number;
  readonly lag_return_after?: string;
  readonly when_empty?: PoolWhenEmpty;
  readonly on_lag?: PoolOnLag;
  readonly on_primary?: PoolOnPrimary;
}

/** The defaults, in the file's units (docs/configuration.md says why each). */
export const POOL_DEFAULTS = {
  check: 'replica',
  balance: 'leastconn' as PoolBalance,
  slow_start: '10s',
  rise: 2,
  // Patroni users asked for reads to go to the leader rather than fail when no replica is left
  // (patroni PR #1038, pigsty#8); elsewhere nothing is known about the members, so clients wait.
  when_empty: { patroni: 'primary', iris: 'hold', generic: 'hold' } as Record<MirrorKind, PoolWhenEmpty>,
  max_lag: { patroni: '16MB', iris: null, generic: null } as Record<MirrorKind, string | null>,
  lag_exit_after: '2s',
  lag_return_after: '5s',
  on_lag: 'keep' as PoolOnLag,
  on_primary: 'keep' as PoolOnPrimary,
};

const SIZE = '^([0-9]+(?:\\.[0-9]+)?)\\s*(B|kB|KB|MB|GB|TB)?$';
const SIZE_UNITS: Record<string, number> = {
  B: 1,
  kB: 1024,
  KB: 1024,
  MB: 1024 ** 2,
  GB: 1024 ** 3,
  TB: 1024 ** 4,
};

/** `1MB`, `512kB`, `1048576`: bytes (units of 1024, as Patroni's `lag=` reads them). */
export function parseSize(v: string | number): number {
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v < 0) throw new ConfigValueError(`${v} is not a whole number of bytes`);
    return v;
  }
  const m = new RegExp(SIZE).exec(v.trim());
  if (!m)
    throw new ConfigValueError(`"${v}" is not a size; write bytes or a number with kB, MB, GB (e.g. 16MB)`);
  return Math.round(Number(m[1]) * SIZE_UNITS[m[2] ?? 'B']!);
}

const size = (description: string): Json => ({
  description,
  errorMessage: 'must be a size in bytes, or a number with unit B, kB, MB, GB (e.g. 16MB)',
  type: ['string', 'integer'],
  pattern: SIZE,
  minimum: 0,
});

const oneOf = (description: string, values: readonly string[]): Json => ({
  description,
  errorMessage: `must be ${values.slice(0, -1).join(', ')} or ${values[values.length - 1]}`,
  type: 'string',
  enum: values,
});

/** The schema of one pool. */
export function poolSchema(): Json {
  return {
    description:
      'A read pool of this mirror: its own listener, balanced over the members its pool check admits.',
    type: 'object',
    additionalProperties: false,
    required: ['name', 'listen'],
    properties: {
      name: { $ref: '#/definitions/name', description: 'Pool name, unique in its mirror (e.g. replicas).' },
      listen: { $ref: '#/definitions/hostport', description: 'Address read clients connect to.' },
      check: {
        description:
          "The pool check: a Patroni role (replica, sync, async, read-only, read-only-sync) or a path with query ('/replica?tag_dc=a') put on each member's check URL base. Default replica (kind patroni); other kinds need checks.",
        errorMessage: 'must be replica, sync, async, read-only, read-only-sync or a path starting with /',
        type: 'string',
        pattern: '^(replica|sync|async|read-only|read-only-sync|/.*)$',
      },
      checks: {
        description: 'The pool check URL of each member by member name, instead of one derived from check.',
        type: 'object',
        additionalProperties: { $ref: '#/definitions/check_url' },
      },
      balance: oneOf('How new clients are spread: leastconn (fewest sessions) or roundrobin.', [
        'leastconn',
        'roundrobin',
      ]),
      slow_start: {
        $ref: '#/definitions/duration',
        description:
          'A member that just joined gets a share of new clients growing from 10% to all over this long.',
      },
      rise: {
        description: 'Consecutive qualifying checks before a member joins the pool.',
        type: 'integer',
        minimum: 1,
        maximum: 100,
        errorMessage: 'must be an integer from 1 to 100',
      },
      max_lag: {
        ...size(
          'Replay lag (bytes behind the primary) above which a member leaves the pool after lag_exit_after; null: no limit.',
        ),
        type: ['string', 'integer', 'null'],
      },
      lag_exit_after: {
        $ref: '#/definitions/duration',
        description: 'How long the lag must stay above max_lag before the member leaves the pool.',
      },
      lag_return_below: size('Lag below which a lagging member may return (default half of max_lag).'),
      lag_return_after: {
        $ref: '#/definitions/duration',
        description: 'How long the lag must stay below lag_return_below before the member returns.',
      },
      when_empty: oneOf(
        'With no member qualifying: hold new clients, send them to the primary, or refuse them.',
        ['hold', 'primary', 'refuse'],
      ),
      on_lag: oneOf('A member leaving for lag: keep its sessions (queries finish) or cut them.', [
        'keep',
        'cut',
      ]),
      on_primary: oneOf('A member that became primary: keep its read sessions or cut them.', ['keep', 'cut']),
    },
  };
}

/** Checks what the schema cannot: pool names, derivable checks, member names in `checks`, sizes. */
export function checkPools(
  c: Checker,
  mirrors: string[],
  kindOf: (mirror: string) => MirrorKind | undefined,
): void {
  for (const m of mirrors) {
    const names = new Map<string, string>();
    const members = new Set(c.list(`${m}/members`).map((p) => c.str(`${p}/name`)));
    for (const p of c.list(`${m}/pools`)) {
      const name = c.str(`${p}/name`);
      if (name !== undefined) {
        const first = names.get(name);
        if (first !== undefined)
          c.report(`${p}/name`, `duplicate pool name "${name}" (first at ${c.lineOf(first)})`);
        else names.set(name, `${p}/name`);
      }
      const checks = c.get(`${p}/checks`);
      const given = checks && typeof checks === 'object' ? Object.keys(checks) : [];
      for (const k of given) {
        if (!members.has(k)) c.report(`${p}/checks/${k}`, `"${k}" is not a member of this mirror`);
        else c.parse(`${p}/checks/${k}`, parseCheckUrl);
      }
      // Other kinds derive no pool check: the members given in `checks` are the pool.
      const kind = kindOf(m);
      if (given.length === 0 && kind !== undefined && kind !== 'patroni' && !c.present(`${p}/check`))
        c.report(
          p,
          `no pool check: only a patroni mirror derives it from its members' check URLs; give checks: {member: URL}`,
        );
      for (const k of ['max_lag', 'lag_return_below'])
        if (c.has(`${p}/${k}`) && c.get(`${p}/${k}`) !== null) c.parse(`${p}/${k}`, parseSize);
      for (const k of ['slow_start', 'lag_exit_after', 'lag_return_after'])
        if (c.has(`${p}/${k}`)) c.parse(`${p}/${k}`, parseDuration);
      const max = c.get(`${p}/max_lag`);
      const below = c.get(`${p}/lag_return_below`);
      if (below !== undefined && (max === null || max === undefined))
        c.report(`${p}/lag_return_below`, 'needs max_lag (a return mark without a limit means nothing)');
      else if (typeof below === typeof max && below !== undefined) {
        try {
          if (parseSize(below as string) > parseSize(max as string))
            c.report(
              `${p}/lag_return_below`,
              'must not be above max_lag (the hysteresis needs return ≤ limit)',
            );
        } catch {
          // reported above
        }
      }
      c.parse(`${p}/listen`, parseListenAddress);
    }
  }
}

/** The pool URL of one member: given, the role path on its first check URL's base, or none (not in the pool). */
function poolUrl(raw: RawPool, kind: MirrorKind, member: string, checkUrl: string): string | null {
  const given = raw.checks?.[member];
  if (given !== undefined) return given;
  if (kind !== 'patroni' && raw.check === undefined) return null;
  const check = raw.check ?? POOL_DEFAULTS.check;
  const path = check.startsWith('/') ? check : PATRONI_POOL_PATHS[check as keyof typeof PATRONI_POOL_PATHS];
  const u = new URL(checkUrl);
  const [pathname, query] = path.split('?', 2) as [string, string | undefined];
  u.pathname = pathname;
  u.search = query === undefined ? '' : `?${query}`;
  return u.toString();
}

export function buildPools(
  raw: readonly RawPool[] | undefined,
  kind: MirrorKind,
  members: readonly { name: string; check: readonly string[] }[],
): PoolConfig[] {
  return (raw ?? []).map((p) => {
    const maxLag = p.max_lag === undefined ? POOL_DEFAULTS.max_lag[kind] : p.max_lag;
    const maxLagBytes = maxLag === null ? null : parseSize(maxLag);
    return {
      name: p.name,
      listen: parseListenAddress(p.listen),
      checks: Object.fromEntries(
        members.flatMap((m) => {
          const url = poolUrl(p, kind, m.name, m.check[0]!);
          return url === null ? [] : [[m.name, url]];
        }),
      ),
      balance: p.balance ?? POOL_DEFAULTS.balance,
      slowStartMs: parseDuration(p.slow_start ?? POOL_DEFAULTS.slow_start),
      rise: p.rise ?? POOL_DEFAULTS.rise,
      maxLagBytes,
      lagExitAfterMs: parseDuration(p.lag_exit_after ?? POOL_DEFAULTS.lag_exit_after),
      lagReturnBelowBytes:
        maxLagBytes === null
          ? null
          : p.lag_return_below === undefined
            ? Math.floor(maxLagBytes / 2)
            : parseSize(p.lag_return_below),
      lagReturnAfterMs: parseDuration(p.lag_return_after ?? POOL_DEFAULTS.lag_return_after),
      whenEmpty: p.when_empty ?? POOL_DEFAULTS.when_empty[kind],
      onLag: p.on_lag ?? POOL_DEFAULTS.on_lag,
      onPrimary: p.on_primary ?? POOL_DEFAULTS.on_primary,
    };
  });
}
