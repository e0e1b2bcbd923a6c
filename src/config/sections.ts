/**
 * The sections built from key rows (keys.ts): each value the file sets is converted once
 * here, during the semantic checks (a duration that does not parse is a problem at its
 * line), then checked against its row's bounds and the interval order, and the converted
 * values are what the typed Config is built from. Defaults and the kinds' defaults are
 * converted once, when this module loads.
 */
import type { Checker } from './checker.js';
import { formatDuration, parseDuration } from './duration.js';
import { ConfigValueError } from './errors.js';
import {
  MIRROR_SECTIONS,
  SECTIONS,
  type BuiltSection,
  type KeyRow,
  type Rows,
  type SectionName,
  type SpecialKind,
  type ValueType,
} from './keys.js';
import type { MirrorKind } from './types.js';
import { displayPath } from './yaml/positions.js';

/** Converted values of one section, by Config field: what one scope of the file sets. */
export type Given = Readonly<Record<string, unknown>>;

/** What the file sets in each section, converted: the top level's and each mirror's. */
export interface SectionValues {
  readonly top: Readonly<Record<SectionName, Given>>;
  readonly mirrors: readonly Readonly<Record<(typeof MIRROR_SECTIONS)[number], Given>>[];
}

/** `idle_timeout`, `grace`: 0, "0" and "off" mean none. */
function isOff(v: unknown): boolean {
  return v === 0 || v === '0' || v === 'off';
}

export function isDurationType(t: ValueType): boolean {
  return t === 'duration' || t === 'duration-or-off' || t === 'duration-or-never';
}

/**
 * The Config value of a file value that passed the schema; throws ConfigValueError for a
 * duration that matches the pattern but is no usable duration (too long, below 1ms).
 */
export function convert(type: ValueType, v: unknown): unknown {
  switch (type) {
    case 'duration':
      return parseDuration(v as string);
    case 'duration-or-off':
      return isOff(v) ? 0 : parseDuration(String(v));
    case 'duration-or-never':
      return v === 'off' ? null : parseDuration(v as string);
    case 'texts':
      return v === null ? [] : typeof v === 'string' ? [v] : [...(v as readonly string[])];
    case 'statuses':
      return typeof v === 'number' ? [v] : [...(v as readonly number[])];
    case 'integer':
    case 'number':
      return v;
    default:
      return type satisfies never;
  }
}

/** Whether a value has the shape its type takes in the file (a misshapen one was reported by the schema). */
function shaped(type: ValueType, v: unknown): boolean {
  switch (type) {
    case 'duration':
    case 'duration-or-never':
      return typeof v === 'string';
    case 'duration-or-off':
      return typeof v === 'string' || v === 0;
    case 'integer':
      return typeof v === 'number' && Number.isInteger(v);
    case 'number':
      return typeof v === 'number';
    case 'texts':
      return (
        v === null || typeof v === 'string' || (Array.isArray(v) && v.every((x) => typeof x === 'string'))
      );
    case 'statuses':
      return typeof v === 'number' || (Array.isArray(v) && v.every((x) => typeof x === 'number'));
    default:
      return type satisfies never;
  }
}

function builtDefaults<R extends Rows>(rows: R, kind: SpecialKind | null = null): Given {
  const out: Record<string, unknown> = {};
  for (const r of Object.values(rows)) {
    const kinds = r.kinds as Partial<Record<SpecialKind, unknown>> | undefined;
    if (kind === null) out[r.field] = convert(r.type, r.default);
    else if (kinds !== undefined && Object.hasOwn(kinds, kind)) out[r.field] = convert(r.type, kinds[kind]);
  }
  return Object.freeze(out);
}

/** Every section's defaults, converted. */
export const BUILT_DEFAULTS: Readonly<Record<SectionName, Given>> = {
  health: builtDefaults(SECTIONS.health),
  proxy: builtDefaults(SECTIONS.proxy),
  shutdown: builtDefaults(SECTIONS.shutdown),
};

/** What each kind changes in the health defaults, converted (generic: nothing). */
export const KIND_HEALTH: Readonly<Record<MirrorKind, Given>> = {
  generic: {},
  iris: builtDefaults(SECTIONS.health, 'iris'),
  patroni: builtDefaults(SECTIONS.health, 'patroni'),
};

/** A typed section from its layers, later ones winning; every field is in the first (the defaults). */
export function buildSection<R extends Rows>(...layers: Given[]): BuiltSection<R> {
  return Object.assign({}, ...layers) as BuiltSection<R>;
}

/**
 * Reads and converts every row key each scope sets (reporting durations that do not
 * parse), then checks the interval order and the bounds. Runs on a file the schema may
 * have found problems in: a value already reported reads as absent.
 */
export function readSections(c: Checker, mirrors: string[]): SectionValues {
  const values = new Map<string, unknown>();
  const read = (scope: string, section: SectionName): Given => {
    const given: Record<string, unknown> = {};
    for (const [key, row] of Object.entries(SECTIONS[section] as Rows)) {
      const ptr = `${scope}/${section}/${key}`;
      const v = c.get(ptr);
      if (v === undefined || !shaped(row.type, v)) continue;
      try {
        given[row.field] = convert(row.type, v);
        values.set(ptr, given[row.field]);
      } catch (e) {
        if (!(e instanceof ConfigValueError)) throw e;
        c.report(ptr, e.message);
      }
    }
    return given;
  };
  const top = { health: read('', 'health'), proxy: read('', 'proxy'), shutdown: read('', 'shutdown') };
  const perMirror = mirrors.map((m) => ({ health: read(m, 'health'), proxy: read(m, 'proxy') }));
  checkIntervalOrder(c, mirrors, values);
  checkBounds(c, mirrors, values);
  return { top, mirrors: perMirror };
}

/**
 * Sanity bounds the schema's types cannot carry: values that parse but make no sense for a
 * balancer (`interval: 1ms` floods every member with probes, `rise: 1000000000` never
 * trusts a primary). Far out of range is refused; merely doubtful is a warning with the
 * line, printed by `check` and logged at start. Each applies in every scope.
 */
function checkBounds(c: Checker, mirrors: string[], values: ReadonlyMap<string, unknown>): void {
  for (const scope of ['', ...mirrors]) {
    for (const section of scope === '' ? (Object.keys(SECTIONS) as SectionName[]) : MIRROR_SECTIONS) {
      for (const [key, row] of Object.entries(SECTIONS[section] as Rows)) {
        const ptr = `${scope}/${section}/${key}`;
        const value = values.get(ptr);
        if (typeof value === 'number') checkBound(c, ptr, row, value);
      }
    }
  }
}

function checkBound(c: Checker, ptr: string, b: KeyRow, value: number): void {
  const show = (n: number): string => (isDurationType(b.type) ? formatDuration(n) : String(n));
  if (b.refuseBelow !== undefined && value < b.refuseBelow) {
    c.report(ptr, `${show(value)} is below the lowest sensible ${show(b.refuseBelow)}: ${b.refused ?? ''}`);
  } else if (b.refuseAbove !== undefined && value > b.refuseAbove) {
    c.report(ptr, `${show(value)} is above the highest sensible ${show(b.refuseAbove)}: ${b.refused ?? ''}`);
  } else if (b.warnBelow !== undefined && value < b.warnBelow) {
    c.warn(ptr, `${displayPath(ptr)}: ${show(value)} is very short: ${b.warned ?? ''}`);
  }
}

interface Effective {
  readonly ptr: string | null;
  readonly ms: number;
}

/** A health duration as a mirror sees it: its own, else the top-level one, else the default. */
function effectiveHealth(
  c: Checker,
  values: ReadonlyMap<string, unknown>,
  scope: string,
  key: 'interval' | 'fast_interval',
): Effective | undefined {
  const candidates = scope === '' ? [`/health/${key}`] : [`${scope}/health/${key}`, `/health/${key}`];
  for (const ptr of candidates) {
    if (!c.present(ptr)) continue;
    const ms = values.get(ptr);
    return typeof ms === 'number' ? { ptr, ms } : undefined; // unsound: already reported
  }
  return { ptr: null, ms: BUILT_DEFAULTS.health[SECTIONS.health[key].field] as number };
}

/** The fast interval is never the slower one, in any scope. */
function checkIntervalOrder(c: Checker, mirrors: string[], values: ReadonlyMap<string, unknown>): void {
  for (const scope of ['', ...mirrors]) {
    const interval = effectiveHealth(c, values, scope, 'interval');
    const fast = effectiveHealth(c, values, scope, 'fast_interval');
    if (!interval || !fast || fast.ms <= interval.ms) continue;
    const local = [fast.ptr, interval.ptr].find(
      (p) => p !== null && (scope === '' || p.startsWith(`${scope}/`)),
    );
    if (local === undefined || local === null) continue; // inherited: the top-level scope reports it once
    const label = (e: Effective, key: string): string =>
      e.ptr === null
        ? `health.${key} ${formatDuration(e.ms)} (the default)`
        : `${displayPath(e.ptr)} ${formatDuration(e.ms)}`;
    const message =
      `${label(fast, 'fast_interval')} is longer than ${label(interval, 'interval')}; ` +
      'the fast interval must not be the slower one';
    c.problemAt(local, message);
  }
}
