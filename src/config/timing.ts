/** Duration checks: each value parses, and the fast interval is never the slower one. */
import type { Checker } from './checker.js';
import { DEFAULTS, HEALTH_DURATIONS, isNoFence, isNoIdleTimeout, PROXY_DURATIONS } from './defaults.js';
import { formatDuration, parseDuration } from './duration.js';
import { displayPath } from './positions.js';

function durationPointers(mirrors: string[]): string[] {
  const scopes = ['', ...mirrors];
  return [
    ...scopes.flatMap((s) => HEALTH_DURATIONS.map((k) => `${s}/health/${k}`)),
    ...scopes.flatMap((s) => PROXY_DURATIONS.map((k) => `${s}/proxy/${k}`)),
    '/shutdown/drain_timeout',
  ];
}

export function checkDurations(c: Checker, mirrors: string[]): void {
  for (const ptr of durationPointers(mirrors)) c.parse(ptr, parseDuration);
  for (const s of ['', ...mirrors]) {
    const ptr = `${s}/proxy/idle_timeout`;
    if (!isNoIdleTimeout(c.get(ptr))) c.parse(ptr, parseDuration);
    const fence = `${s}/health/fence_after`;
    if (!isNoFence(c.get(fence))) c.parse(fence, parseDuration);
  }
}

interface Effective {
  readonly ptr: string | null;
  readonly ms: number;
}

/** A health duration as a mirror sees it: its own, else the top-level one, else the default. */
function effectiveHealth(
  c: Checker,
  scope: string,
  key: 'interval' | 'fast_interval',
): Effective | undefined {
  const candidates = scope === '' ? [`/health/${key}`] : [`${scope}/health/${key}`, `/health/${key}`];
  for (const ptr of candidates) {
    if (!c.present(ptr)) continue;
    const s = c.str(ptr);
    if (s === undefined) return undefined; // already reported: nothing to compare
    try {
      return { ptr, ms: parseDuration(s) };
    } catch {
      return undefined;
    }
  }
  return { ptr: null, ms: parseDuration(DEFAULTS.health[key]) };
}

export function checkIntervalOrder(c: Checker, mirrors: string[]): void {
  for (const scope of ['', ...mirrors]) {
    const interval = effectiveHealth(c, scope, 'interval');
    const fast = effectiveHealth(c, scope, 'fast_interval');
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
