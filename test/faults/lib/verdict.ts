/**
 * What a fault case proved, computed from two independent records: the sessions as the
 * load clients saw them (load-client.mjs) and the balancer's own JSON log. Pure functions
 * of their inputs (wall-clock milliseconds on one machine), so they are tested without a
 * network (test/faults/verdict.test.ts).
 */

export type Outcome = 'completed' | 'closed' | 'no_greeting' | 'refused' | 'corrupt' | 'stalled';

/** One client session as load-client.mjs reports it. */
export interface SessionRecord {
  readonly id: number;
  readonly mirror: string;
  readonly kind: 'short' | 'long' | 'arrival';
  readonly tConnect: number;
  readonly tGreet: number | null;
  readonly tEnd: number;
  readonly member: string | null;
  readonly outcome: Outcome;
  readonly rounds: number;
  readonly sent: number;
  readonly verified: number;
  readonly endedBy: string | null;
  readonly detail: string | null;
}

export interface Span {
  readonly member: string;
  readonly from: number;
  /** Infinity: still open when the log ends. */
  readonly to: number;
}

/**
 * One mirror's routing over time, rebuilt from the balancer's log: when each member took
 * new clients (`routable`: the decision's primary, accepting) and when it held the role at
 * all (`holder`: its sessions are kept; a suspect primary holds without taking clients).
 */
export interface Timeline {
  readonly routable: readonly Span[];
  readonly holder: readonly Span[];
}

type LogLine = Readonly<Record<string, unknown>>;

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

export function timeline(logs: readonly LogLine[], mirror: string): Timeline {
  const routable: Span[] = [];
  const holder: Span[] = [];
  let primary: string | null = null;
  let accepting = false;
  let routableSince = 0;
  let holderSince = 0;
  const set = (t: number, p: string | null, acc: boolean): void => {
    const wasRoutable = accepting ? primary : null;
    const nowRoutable = acc ? p : null;
    if (wasRoutable !== nowRoutable) {
      if (wasRoutable !== null) routable.push({ member: wasRoutable, from: routableSince, to: t });
      routableSince = t;
    }
    if (primary !== p) {
      if (primary !== null) holder.push({ member: primary, from: holderSince, to: t });
      holderSince = t;
    }
    primary = p;
    accepting = acc;
  };
  for (const l of logs) {
    if (l.mirror !== mirror || typeof l.time !== 'string') continue;
    const t = Date.parse(l.time);
    switch (l.msg) {
      case 'member promoted':
      case 'member demoted':
      case 'member role changed': {
        const member = str(l.member);
        const to = str(l.to);
        if (member === null || member !== primary) break;
        if (to === 'suspect') set(t, primary, false);
        else if (to !== 'primary') set(t, null, false);
        break;
      }
      case 'primary found':
      case 'failover':
        set(t, str(l.to), true);
        break;
      case 'mirror not accepting: holding new clients':
        set(t, str(l.primary), false);
        break;
      case 'primary accepting again':
        set(t, str(l.primary), true);
        break;
      default:
        break;
    }
  }
  if (accepting && primary !== null) routable.push({ member: primary, from: routableSince, to: Infinity });
  if (primary !== null) holder.push({ member: primary, from: holderSince, to: Infinity });
  return { routable, holder };
}

/** Times at which `member` stopped holding the role (its sessions were due to be cut). */
export function demotions(tl: Timeline, member: string): number[] {
  return tl.holder.filter((s) => s.member === member && s.to !== Infinity).map((s) => s.to);
}

/** Slack for log times (whole ms, taken a moment after the decision) against client times. */
const CLOCK_SLACK_MS = 2;
/**
 * The balancer logs a decision right after acting on it, so a client may see its session
 * cut a little before the log line's time: a session that ended this close before a
 * demotion was still open at it.
 */
const LOG_LAG_MS = 100;

export interface Violation {
  readonly rule: 'corrupt' | 'stalled' | 'to_demoted' | 'outlived';
  readonly session: number;
  readonly detail: string;
}

export interface SessionCounts {
  readonly total: number;
  readonly completed: number;
  /**
   * Closed by the far side before they completed, cleanly: every byte received was right
   * (including sessions cut before the member's greeting reached the client).
   */
  readonly cut: number;
  /** Held without a primary until the hold timeout, then closed. */
  readonly holdTimeouts: number;
  readonly refused: number;
  readonly corrupt: number;
  readonly stalled: number;
}

/** A client closed unserved after waiting at least this long was held to its timeout. */
export function isHoldTimeout(s: SessionRecord, holdTimeoutMs: number): boolean {
  // Timers fire a little early or late relative to the client's own clock.
  return s.outcome === 'no_greeting' && s.tEnd - s.tConnect >= holdTimeoutMs - 250;
}

export function countSessions(sessions: readonly SessionRecord[], holdTimeoutMs: number): SessionCounts {
  const n = (o: Outcome): number => sessions.filter((s) => s.outcome === o).length;
  const held = sessions.filter((s) => isHoldTimeout(s, holdTimeoutMs)).length;
  return {
    total: sessions.length,
    completed: n('completed'),
    cut: n('closed') + n('no_greeting') - held,
    holdTimeouts: held,
    refused: n('refused'),
    corrupt: n('corrupt'),
    stalled: n('stalled'),
  };
}

/**
 * The rules of "nothing lost":
 * - no session corrupt (a wrong, missing-then-continued or reordered byte) or stalled;
 * - no new session reaches a member that was not taking new clients at any moment between
 *   the client's connect and the member's greeting;
 * - no session outlives its member losing the role by more than `boundMs`.
 */
export function violations(
  sessions: readonly SessionRecord[],
  tl: Timeline,
  boundMs: number,
): { list: Violation[]; maxOutliveMs: number | null } {
  const list: Violation[] = [];
  let maxOutliveMs: number | null = null;
  for (const s of sessions) {
    if (s.outcome === 'corrupt' || s.outcome === 'stalled') {
      list.push({ rule: s.outcome, session: s.id, detail: s.detail ?? '' });
    }
    if (s.member === null || s.tGreet === null) continue;
    const lo = s.tConnect - CLOCK_SLACK_MS;
    const hi = s.tGreet + CLOCK_SLACK_MS;
    const wasRoutable = tl.routable.some((r) => r.member === s.member && r.from <= hi && r.to >= lo);
    if (!wasRoutable) {
      list.push({
        rule: 'to_demoted',
        session: s.id,
        detail: `greeted by ${s.member} at ${s.tGreet}, which took no new clients between ${s.tConnect} and then`,
      });
    }
    // The role span the session was linked in: the last one of its member that began before
    // the greeting (a greeting can trail the demotion that cut its session by a moment).
    const span = [...tl.holder].reverse().find((h) => h.member === s.member && h.from <= hi);
    const td =
      span !== undefined && span.to !== Infinity && span.to <= s.tEnd + LOG_LAG_MS ? span.to : undefined;
    if (td !== undefined) {
      const late = Math.max(0, s.tEnd - td);
      maxOutliveMs = Math.max(maxOutliveMs ?? 0, late);
      if (late > boundMs) {
        list.push({
          rule: 'outlived',
          session: s.id,
          detail: `open ${late} ms after ${s.member} lost the role (bound ${boundMs} ms)`,
        });
      }
    }
  }
  return { list, maxOutliveMs };
}

/** Milliseconds from `t0` to the first time `member` took new clients at or after `t0` (null: never). */
export function routableAfter(tl: Timeline, member: string, t0: number): number | null {
  const s = tl.routable.find((r) => r.member === member && r.to >= t0);
  return s === undefined ? null : Math.max(0, s.from - t0);
}

/** Milliseconds from `t0` until `member` stopped taking new clients (null: it never did). */
export function unroutableAfter(tl: Timeline, member: string, t0: number): number | null {
  const open = tl.routable.find((r) => r.member === member && r.from <= t0 && r.to >= t0);
  if (open === undefined) return 0;
  return open.to === Infinity ? null : open.to - t0;
}

/** Milliseconds from `t0` to the first greeting by `member` at or after `t0` (null: none). */
export function firstGreeting(sessions: readonly SessionRecord[], member: string, t0: number): number | null {
  let best: number | null = null;
  for (const s of sessions) {
    if (s.member === member && s.tGreet !== null && s.tGreet >= t0) {
      best = best === null ? s.tGreet : Math.min(best, s.tGreet);
    }
  }
  return best === null ? null : best - t0;
}

/** The longest a client waited for its greeting (held), or to be closed without one. */
export function maxWaitMs(sessions: readonly SessionRecord[]): number {
  let max = 0;
  for (const s of sessions) {
    if (s.tGreet !== null) max = Math.max(max, s.tGreet - s.tConnect);
    else if (s.outcome === 'no_greeting') max = Math.max(max, s.tEnd - s.tConnect);
  }
  return max;
}
