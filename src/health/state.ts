import type { Hysteresis, MemberHealth, ProbeResult } from './types.js';

/**
 * The health reducer: one member's health after one probe. Pure: no clock, no I/O
 * (the probe time is passed in), so every rule of the contract is tested table-driven.
 *
 * Rules (contract, "Routing semantics"):
 * - never primary before a check answered primary `rise` times in a row;
 * - an answered "not primary" demotes at once (unlike haproxy's fall counter);
 * - a primary whose check times out is `suspect`: new clients wait, sessions stay;
 * - a status page that fails fast while the SuperServer port accepts keeps the role;
 * - the role is lost only after `fall` failed checks in a row with the SuperServer
 *   port failing too.
 */

export const INITIAL_HEALTH: MemberHealth = Object.freeze({
  role: 'unknown',
  primaryStreak: 0,
  failStreak: 0,
  primarySince: null,
  lastCheckAt: null,
  lastLatencyMs: null,
  lastResult: null,
  reachable: false,
});

export function describeResult(r: ProbeResult): string {
  switch (r.kind) {
    case 'primary':
      return 'primary';
    case 'not_primary':
      return `not_primary ${r.status}`;
    case 'timeout':
      return r.superserver === null ? 'timeout' : `timeout, superserver ${r.superserver ? 'up' : 'down'}`;
    case 'error':
      return r.superserver === null
        ? `error ${r.code}`
        : `error ${r.code}, superserver ${r.superserver ? 'up' : 'down'}`;
    default:
      return assertNever(r);
  }
}

export function nextHealth(prev: MemberHealth, r: ProbeResult, h: Hysteresis, now: number): MemberHealth {
  const seen = {
    lastCheckAt: now,
    lastLatencyMs: r.latencyMs,
    lastResult: describeResult(r),
    reachable: r.kind === 'primary' || r.kind === 'not_primary',
  };
  const holdsRole = prev.role === 'primary' || prev.role === 'suspect';

  switch (r.kind) {
    case 'primary': {
      if (holdsRole) return { ...prev, ...seen, role: 'primary', failStreak: 0, primaryStreak: 0 };
      const streak = prev.primaryStreak + 1;
      if (streak >= h.rise) {
        return { ...prev, ...seen, role: 'primary', primarySince: now, failStreak: 0, primaryStreak: 0 };
      }
      return { ...prev, ...seen, primaryStreak: streak, failStreak: 0 };
    }
    case 'not_primary':
      return { ...prev, ...seen, role: 'backup', primarySince: null, primaryStreak: 0, failStreak: 0 };
    case 'timeout':
    case 'error': {
      // A dead status page over a live SuperServer port is not a reason to cut healthy sessions.
      if (r.kind === 'error' && r.superserver === true && holdsRole) {
        return { ...prev, ...seen, role: 'primary', primaryStreak: 0, failStreak: 0 };
      }
      // A port that still accepts (a hung or stopped process) keeps the member suspect, never demoted:
      // the mirror itself decides a takeover, and we follow the member that then answers primary.
      const failed = r.superserver !== true;
      const failStreak = failed ? prev.failStreak + 1 : 0;
      if (failed && failStreak >= h.fall) {
        return { ...prev, ...seen, role: 'unreachable', primarySince: null, primaryStreak: 0, failStreak };
      }
      return { ...prev, ...seen, role: holdsRole ? 'suspect' : prev.role, primaryStreak: 0, failStreak };
    }
    default:
      return assertNever(r);
  }
}

export function assertNever(x: never): never {
  throw new Error(`unexpected value: ${JSON.stringify(x)}`);
}
