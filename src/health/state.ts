import type { Hysteresis, MemberHealth, ProbeResult } from './types.js';

/**
 * The health reducer: one member's health after one probe. Pure: no clock, no I/O
 * (the probe's start and end times are passed in), so every rule of the contract is
 * tested table-driven.
 *
 * Rules (contract, "Configuration" and "Routing semantics"):
 * - never primary before a check answered primary `rise` times in a row;
 * - an answered "not primary" demotes at once (unlike haproxy's fall counter);
 * - an unexpected answer (a gateway's error page) is a failed check, never a demotion;
 * - URLs contradicting each other: the first authoritative answer decides, but the member
 *   takes no new clients (a holder is suspect, others do not rise) until they agree;
 * - a primary whose check times out is `suspect`: new clients wait, sessions stay;
 * - a status page that fails fast while the SuperServer port accepts keeps the role;
 * - the role is lost only after `fall` failed checks in a row with the SuperServer
 *   port failing too;
 * - fencing: a holder with no uncontradicted "primary" answer for `fenceAfterMs` loses the
 *   role whatever its port says.
 */

export const INITIAL_HEALTH: MemberHealth = Object.freeze({
  role: 'unknown',
  primaryStreak: 0,
  failStreak: 0,
  primarySince: null,
  lastPrimaryAnswerAt: null,
  contradicted: false,
  fenced: false,
  lastCheckAt: null,
  lastLatencyMs: null,
  lastResult: null,
  lastAnswers: Object.freeze([]),
  decidedBy: null,
  reachable: false,
});

function superserverText(up: boolean | null): string {
  return up === null ? '' : `, superserver ${up ? 'up' : 'down'}`;
}

export function describeResult(r: ProbeResult): string {
  switch (r.kind) {
    case 'primary':
      return r.contradicted === true ? 'primary, contradicted' : 'primary';
    case 'not_primary':
      return `not_primary ${r.status}${r.contradicted === true ? ', contradicted' : ''}`;
    case 'timeout':
      return `timeout${superserverText(r.superserver)}`;
    case 'unexpected':
      return `unexpected ${r.status}${superserverText(r.superserver)}`;
    case 'error':
      return `error ${r.code}${superserverText(r.superserver)}`;
    default:
      return assertNever(r);
  }
}

/**
 * `now`: when the probe ended; `startedAt`: when it was sent, the earliest moment its answer
 * can stand for (a "primary" answer is dated by it, so that an answer already on its way
 * when another member claimed the role never counts as given after that claim).
 */
export function nextHealth(
  prev: MemberHealth,
  r: ProbeResult,
  h: Hysteresis,
  now: number,
  startedAt: number = now - r.latencyMs,
): MemberHealth {
  const authoritative = r.kind === 'primary' || r.kind === 'not_primary';
  const seen = {
    lastCheckAt: now,
    lastLatencyMs: r.latencyMs,
    lastResult: describeResult(r),
    reachable: authoritative,
    lastAnswers: r.answers ?? [],
    decidedBy: authoritative ? r.url : null,
    contradicted: authoritative && r.contradicted === true,
  };
  const holdsRole = prev.role === 'primary' || prev.role === 'suspect';
  const next = ((): MemberHealth => {
    switch (r.kind) {
      case 'primary': {
        // Not trusted with new clients until its URLs agree: a holder keeps its sessions.
        if (seen.contradicted) {
          return {
            ...prev,
            ...seen,
            role: holdsRole ? 'suspect' : prev.role,
            primaryStreak: 0,
            failStreak: 0,
          };
        }
        const answered = { ...seen, lastPrimaryAnswerAt: startedAt, fenced: false, failStreak: 0 };
        if (holdsRole) return { ...prev, ...answered, role: 'primary', primaryStreak: 0 };
        const streak = prev.primaryStreak + 1;
        if (streak >= h.rise)
          return { ...prev, ...answered, role: 'primary', primarySince: now, primaryStreak: 0 };
        return { ...prev, ...answered, primaryStreak: streak };
      }
      case 'not_primary':
        return {
          ...prev,
          ...seen,
          role: 'backup',
          primarySince: null,
          primaryStreak: 0,
          failStreak: 0,
          fenced: false,
        };
      case 'timeout':
      case 'unexpected':
      case 'error': {
        // A dead status page (or a gateway's error page) over a live SuperServer port is not
        // a reason to cut healthy sessions.
        if (r.kind !== 'timeout' && r.superserver === true && holdsRole) {
          return { ...prev, ...seen, role: 'primary', primaryStreak: 0, failStreak: 0 };
        }
        // A port that still accepts (a hung or stopped process) keeps the member suspect, not
        // demoted: the mirror itself decides a takeover, and we follow the member that then
        // answers primary (or fence it, below).
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
  })();
  return fence(next, h, now);
}

/** The member's time without an uncontradicted "primary" answer, as of `now`. */
export function silentForMs(health: MemberHealth, now: number): number {
  const since = health.lastPrimaryAnswerAt ?? health.primarySince;
  return since === null ? 0 : now - since;
}

/**
 * Fencing (contract rule 3): a holder silent for `fenceAfterMs` loses the role for routing,
 * so its sessions are cut and no held client is sent to it, whatever its port says.
 */
export function fence(health: MemberHealth, h: Hysteresis, now: number): MemberHealth {
  const holds = health.role === 'primary' || health.role === 'suspect';
  const after = h.fenceAfterMs ?? null;
  if (!holds || after === null || silentForMs(health, now) < after) return health;
  return {
    ...health,
    role: 'unreachable',
    primarySince: null,
    primaryStreak: 0,
    fenced: true,
    lastResult: `${health.lastResult ?? 'no answer'}; fenced: no authoritative answer for ${Math.round(
      silentForMs(health, now),
    )}ms`,
  };
}

export function assertNever(x: never): never {
  throw new Error(`unexpected value: ${JSON.stringify(x)}`);
}
