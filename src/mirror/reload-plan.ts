import { createHash } from 'node:crypto';
import type { Config, MirrorConfig } from '../config/types.js';
import { formatHostPort } from '../config/types.js';

/** What a reload does to the running mirrors; pure, made before anything is bound. */
export interface ReloadPlan {
  readonly wanted: ReadonlyMap<string, MirrorConfig>;
  /** Each mirror's config serialised once, before and after (comparisons and the reload's log record). */
  readonly before: ReadonlyMap<string, string>;
  readonly after: ReadonlyMap<string, string>;
  /** Running mirrors that go: removed, or their `listen` changed. */
  readonly replaced: readonly string[];
  /** Mirrors that need a new listener. */
  readonly added: readonly MirrorConfig[];
  /**
   * Of those, the ones whose port a going mirror holds (a rename, two mirrors swapping
   * ports, a wildcard beside a loopback address): bound only once it closed.
   */
  readonly late: readonly MirrorConfig[];
  /** Running mirrors changed in place (same listener). */
  readonly changed: readonly string[];
}

/** The plan from the running config (and which of its mirrors run) to `next`. */
export function planReload(current: Config, running: ReadonlySet<string>, next: Config): ReloadPlan {
  const wanted = new Map(next.mirrors.map((m) => [m.name, m]));
  const before = new Map(current.mirrors.map((m) => [m.name, JSON.stringify(m)]));
  const after = new Map(next.mirrors.map((m) => [m.name, JSON.stringify(m)]));
  const replacedCfg = current.mirrors.filter((c) => {
    if (!running.has(c.name)) return false;
    const m = wanted.get(c.name);
    return !m || formatHostPort(m.listen) !== formatHostPort(c.listen);
  });
  const goes = new Set(replacedCfg.map((c) => c.name));
  const added = next.mirrors.filter((m) => !running.has(m.name) || goes.has(m.name));
  const freed = new Set(replacedCfg.map((c) => c.listen.port).filter((p) => p !== 0));
  const late = added.filter((m) => freed.has(m.listen.port));
  const changed = next.mirrors
    .filter((m) => running.has(m.name) && !goes.has(m.name) && before.get(m.name) !== after.get(m.name))
    .map((m) => m.name);
  return { wanted, before, after, replaced: [...goes], added, late, changed };
}

/** What a committed reload's log record and transitions event say: which mirrors, from what to what. */
export function describeReload(
  old: Config,
  next: Config,
  plan: ReloadPlan,
): {
  fields: { from: string; to: string; added: string[]; removed: string[]; changed: string[] };
  detail: string;
} {
  const { before, after } = plan;
  const added = [...after.keys()].filter((n) => !before.has(n));
  const removed = [...before.keys()].filter((n) => !after.has(n));
  const changed = [...after].filter(([n, s]) => before.has(n) && before.get(n) !== s).map(([n]) => n);
  const what = [
    added.length ? `added ${added.join(', ')}` : '',
    removed.length ? `removed ${removed.join(', ')}` : '',
    changed.length ? `changed ${changed.join(', ')}` : '',
  ].filter(Boolean);
  return {
    fields: { from: digest(old), to: digest(next), added, removed, changed },
    detail: what.length ? what.join('; ') : 'no mirror changed',
  };
}

/** A short fingerprint of a config (its source path left out), so a reload log says from what to what. */
function digest(c: Config): string {
  const { source: _source, ...rest } = c;
  return `sha256:${createHash('sha256').update(JSON.stringify(rest)).digest('hex').slice(0, 12)}`;
}
