// Small helpers shared by every part of the bench: a clock shared with child processes,
// order statistics, and formatting.
import { setTimeout as sleep } from 'node:timers/promises';

export { sleep };

/**
 * Milliseconds on CLOCK_MONOTONIC. process.hrtime is system-wide on Linux, so times taken in
 * child processes (idle clients, sims) line up with the bench's own.
 */
export function now() {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** @param {readonly unknown[]} values */
export function median(values) {
  return percentile(values, 50);
}

/**
 * Nearest-rank percentile of the finite numbers in `values`; null when there are none.
 * @param {readonly unknown[]} values
 * @param {number} p
 * @returns {number | null}
 */
export function percentile(values, p) {
  const v = values
    .filter((x) => typeof x === 'number' && Number.isFinite(x))
    .map(Number)
    .sort((a, b) => a - b);
  if (v.length === 0) return null;
  const rank = Math.min(v.length - 1, Math.max(0, Math.ceil((p / 100) * v.length) - 1));
  return v[rank];
}

/**
 * @param {unknown} a
 * @param {unknown} b
 * @returns {number | null}
 */
export function ratio(a, b) {
  if (typeof a !== 'number' || typeof b !== 'number' || b === 0) return null;
  return a / b;
}

/**
 * `x` rounded to `digits` decimals; NaN and infinities as they are, null for null or undefined.
 * @param {number | null | undefined} x
 * @param {number} [digits]
 * @returns {number | null}
 */
export function round(x, digits = 1) {
  if (typeof x !== 'number' || !Number.isFinite(x)) return x ?? null;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/**
 * Formats a number for a table cell with thousands separators; '–' for null.
 * @param {unknown} x
 * @param {number} [digits]
 */
export function fmt(x, digits = 0) {
  if (x === null || x === undefined || Number.isNaN(x)) return '–';
  if (typeof x !== 'number') return String(x);
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** @param {number | null | undefined} x */
export function fmtRatio(x) {
  return x === null || x === undefined ? '–' : `${x.toFixed(2)}x`;
}

/**
 * Resolves when `fn` returns truthy (its value), or rejects after `timeoutMs`.
 * @template T
 * @param {() => Promise<T> | T} fn
 * @param {number} timeoutMs
 * @param {string} what
 * @param {number} [stepMs]
 * @returns {Promise<T>}
 */
export async function waitFor(fn, timeoutMs, what, stepMs = 50) {
  const deadline = now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (now() > deadline)
      throw new BenchError('MLB_ERR_BENCH_TIMEOUT', `timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(stepMs);
  }
}

/** Errors of the bench itself, with a stable code like the daemon's. */
export class BenchError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    this.name = 'BenchError';
    this.code = code;
  }
}

/**
 * @typedef {object} BenchContext What run.js hands every part: where things are, the CPUs,
 *   the tools found and the run's options.
 * @property {string} repoRoot
 * @property {string} benchDir
 * @property {string} logDir child logs and generated configs
 * @property {boolean} quick
 * @property {number | null} reps --reps, or null for the part's default
 * @property {{ balancer: number | null, load: number | null }} cpus null: not pinned
 * @property {{ available: Record<string, boolean>, installed: string[], missing: Record<string, string> }} tools
 * @property {string[]} only failover scenarios to run (empty: all)
 * @property {number} nofile the open-files limit
 * @property {number | null} stormClients --storm-clients, or null for the default
 */

const t0 = now();

/** Progress on stderr, with seconds since the bench started (stdout carries the table). */
/** @param {...unknown} parts */
export function log(...parts) {
  process.stderr.write(`[${((now() - t0) / 1000).toFixed(1).padStart(6)}s] ${parts.join(' ')}\n`);
}
