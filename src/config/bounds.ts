/**
 * Sanity bounds the schema's types cannot carry: values that parse but make no sense for a
 * balancer (`interval: 1ms` floods every member with probes, `rise: 1000000000` never
 * trusts a primary). Far out of range is refused; merely doubtful is a warning with the
 * line, printed by `check` and logged at start. The bounds are in the key rows (keys.ts);
 * each applies in every scope (top level and each mirror's override).
 */
import type { Checker } from './checker.js';
import { formatDuration, parseDuration } from './duration.js';
import { HEALTH_KEYS, PROXY_KEYS, type KeyRow, type Rows } from './keys.js';
import { displayPath } from './yaml/positions.js';

interface Bound extends KeyRow<string> {
  /** Key below a scope, e.g. `health/interval`. */
  readonly key: string;
}

/** The rows of keys.ts that carry a bound. */
export const BOUNDS: readonly Bound[] = (
  [
    ['health', HEALTH_KEYS],
    ['proxy', PROXY_KEYS],
  ] as const
).flatMap(([section, rows]) =>
  Object.entries(rows as Rows)
    .filter(([, r]) => r.min !== undefined || r.max !== undefined || r.warnBelow !== undefined)
    .map(([k, r]) => ({ ...r, key: `${section}/${k}` })),
);

export function checkBounds(c: Checker, mirrors: string[]): void {
  for (const scope of ['', ...mirrors]) {
    for (const b of BOUNDS) checkBound(c, `${scope}/${b.key}`, b);
  }
}

function checkBound(c: Checker, ptr: string, b: Bound): void {
  const value = read(c, ptr, b.kind);
  if (value === undefined) return;
  const show = (n: number): string => (b.kind === 'duration' ? formatDuration(n) : String(n));
  if (b.min !== undefined && value < b.min) {
    c.report(ptr, `${show(value)} is below the lowest sensible ${show(b.min)}: ${b.refused ?? ''}`);
  } else if (b.max !== undefined && value > b.max) {
    c.report(ptr, `${show(value)} is above the highest sensible ${show(b.max)}: ${b.refused ?? ''}`);
  } else if (b.warnBelow !== undefined && value < b.warnBelow) {
    c.warn(ptr, `${displayPath(ptr)}: ${show(value)} is very short: ${b.warned ?? ''}`);
  }
}

/** The value when it is present and sound (a bad one was already reported elsewhere). */
function read(c: Checker, ptr: string, kind: Bound['kind']): number | undefined {
  const v = c.get(ptr);
  if (kind !== 'duration') return typeof v === 'number' && Number.isInteger(v) ? v : undefined;
  if (typeof v !== 'string') return undefined;
  try {
    return parseDuration(v);
  } catch {
    return undefined;
  }
}
