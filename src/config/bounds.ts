/**
 * Sanity bounds the schema's types cannot carry: values that parse but make no sense for a
 * balancer (`interval: 1ms` floods every member with probes, `rise: 1000000000` never
 * trusts a primary). Far out of range is refused; merely doubtful is a warning with the
 * line, printed by `check` and logged at start. One row per key, for every scope (top
 * level and each mirror's override).
 */
import type { Checker } from './checker.js';
import { formatDuration, parseDuration } from './duration.js';
import { displayPath } from './yaml/positions.js';

interface Bound {
  /** Key below a scope, e.g. `health/interval`. */
  readonly key: string;
  readonly kind: 'duration' | 'count';
  /** Refused below this (milliseconds for a duration). */
  readonly min?: number;
  /** Refused above this. */
  readonly max?: number;
  /** Why the refusal: the consequence, in words. */
  readonly refused?: string;
  /** Warned below this. */
  readonly warnBelow?: number;
  readonly warned?: string;
}

export const BOUNDS: readonly Bound[] = [
  {
    key: 'health/interval',
    kind: 'duration',
    min: 10,
    refused: 'more than 100 probes a second per member would load the members, not watch them',
  },
  {
    key: 'health/fast_interval',
    kind: 'duration',
    min: 10,
    refused: 'more than 100 probes a second per member would load the members, not watch them',
  },
  {
    key: 'health/timeout',
    kind: 'duration',
    warnBelow: 10,
    warned: 'a status page rarely answers that fast over a network; most checks would time out',
  },
  {
    key: 'health/rise',
    kind: 'count',
    max: 100,
    refused: 'that many "primary" answers in a row would keep a new primary untrusted for ages',
  },
  {
    key: 'health/fall',
    kind: 'count',
    max: 100,
    refused: 'that many failed checks in a row would keep a dead primary for ages',
  },
  {
    key: 'proxy/hold_timeout',
    kind: 'duration',
    warnBelow: 100,
    warned: 'held clients are closed before any failover can complete: holding is in effect off',
  },
  {
    key: 'proxy/connect_timeout',
    kind: 'duration',
    warnBelow: 10,
    warned: 'a connect over a network rarely completes that fast; most clients would be refused',
  },
];

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
    c.report(ptr, `${show(value)} is below the lowest sensible ${show(b.min)}: ${b.refused}`);
  } else if (b.max !== undefined && value > b.max) {
    c.report(ptr, `${show(value)} is above the highest sensible ${show(b.max)}: ${b.refused}`);
  } else if (b.warnBelow !== undefined && value < b.warnBelow) {
    c.warn(ptr, `${displayPath(ptr)}: ${show(value)} is very short: ${b.warned}`);
  }
}

/** The value when it is present and sound (a bad one was already reported elsewhere). */
function read(c: Checker, ptr: string, kind: Bound['kind']): number | undefined {
  const v = c.get(ptr);
  if (kind === 'count') return typeof v === 'number' && Number.isInteger(v) ? v : undefined;
  if (typeof v !== 'string') return undefined;
  try {
    return parseDuration(v);
  } catch {
    return undefined;
  }
}
