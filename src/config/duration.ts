import { ConfigValueError } from './errors.js';

/** Longest delay setTimeout honours; beyond it Node fires after 1 ms instead, which would be a silent bug. */
export const MAX_DURATION_MS = 2 ** 31 - 1;

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
type Unit = keyof typeof UNIT_MS;

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;

/** Parses `250ms`, `1.5s`, `2m`, `1h` into whole milliseconds; throws ConfigValueError on anything else. */
export function parseDuration(s: string): number {
  if (typeof s !== 'string') {
    throw new ConfigValueError(`a duration must be a string like 250ms, got ${typeof s}`);
  }
  const m = DURATION.exec(s);
  if (!m) throw new ConfigValueError(explainBadDuration(s));
  const ms = Math.round(Number(m[1]) * UNIT_MS[m[2] as Unit]);
  if (Number(m[1]) === 0) throw new ConfigValueError(`duration "${s}" is zero; it must be positive`);
  if (ms < 1) throw new ConfigValueError(`duration "${s}" is shorter than 1ms`);
  if (ms > MAX_DURATION_MS) {
    throw new ConfigValueError(
      `duration "${s}" is longer than the longest timer Node.js supports (${MAX_DURATION_MS}ms, about 24.8 days)`,
    );
  }
  return ms;
}

function explainBadDuration(s: string): string {
  const t = s.trim();
  if (/^-\s*\d/.test(t)) return `duration "${s}" is negative; it must be positive`;
  if (/^\d+(\.\d+)?$/.test(t)) return `duration "${s}" has no unit; write ${t}ms or ${t}s`;
  return `"${s}" is not a duration; use a number with unit ms, s, m or h (e.g. 250ms, 1.5s, 2m)`;
}

/** The shortest string parseDuration reads back as the same milliseconds (`1500` → `1.5s`). */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) throw new ConfigValueError(`cannot format ${ms} as a duration`);
  if (ms === 0) return '0ms';
  for (const unit of ['h', 'm', 's'] as const) {
    if (ms % UNIT_MS[unit] === 0) return `${ms / UNIT_MS[unit]}${unit}`;
  }
  if (ms >= 1000 && Number.isInteger(ms)) return `${ms / 1000}s`;
  return `${ms}ms`;
}
