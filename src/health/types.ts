/**
 * Types shared by the pure health decisions (state.ts, choose.ts) and the I/O shell
 * (probe.ts, monitor.ts). Time is always passed in as milliseconds from a monotonic clock.
 */

/**
 * The class of one check URL's answer (contract, "Configuration"): `primary` and
 * `not_primary` are the member speaking (authoritative); `unexpected` is anything else
 * (a gateway's error page, a redirect, a 404), which counts as that URL's failed check.
 */
export type AnswerClass = 'primary' | 'not_primary' | 'unexpected';

/**
 * What one check URL gave in one probe round: an answer of some class, a fast failure
 * (`error`, with its code), a `timeout`, or `skipped` (the round was decided before it
 * settled and it was not waited for).
 */
export interface UrlAnswer {
  readonly url: string;
  readonly outcome: AnswerClass | 'error' | 'timeout' | 'skipped';
  /** HTTP status of an answer; null otherwise. */
  readonly status: number | null;
  /** Failure code of an error (ECONNREFUSED, MLB_ERR_INCOMPLETE_BODY, ...); null otherwise. */
  readonly code: string | null;
  readonly latencyMs: number | null;
}

/** Per-URL detail every probe result carries (status, page, logs). */
interface RoundDetail {
  /** One entry per check URL, in the configured order. */
  readonly answers: readonly UrlAnswer[];
}

/**
 * What one probe of one member saw. Produced by the prober (probe.ts), consumed by
 * the reducer (state.ts). `superserver` is only looked at when no URL answered
 * authoritatively: it says whether the member's SuperServer port still accepted a TCP
 * connect (null = not tried). `contradicted`: another URL answered the other
 * authoritative class in the same round (the first authoritative answer still decides,
 * but the member takes no new clients until its URLs agree).
 */
export type ProbeResult =
  | ({
      readonly kind: 'primary' | 'not_primary';
      readonly status: number;
      readonly latencyMs: number;
      /** The URL whose answer decided. */
      readonly url: string;
      readonly contradicted?: boolean;
    } & Partial<RoundDetail>)
  /** Some URL was still silent at the timeout and none answered authoritatively (hung member, blackhole). */
  | ({
      readonly kind: 'timeout';
      readonly latencyMs: number;
      readonly superserver: boolean | null;
    } & Partial<RoundDetail>)
  /** Every URL answered unexpectedly or failed fast, at least one answered unexpectedly. */
  | ({
      readonly kind: 'unexpected';
      /** Status of the first unexpected answer. */
      readonly status: number;
      readonly url: string;
      readonly latencyMs: number;
      readonly superserver: boolean | null;
    } & Partial<RoundDetail>)
  /** Every URL failed fast (refused, reset, DNS, bad answer): the status page is down. */
  | ({
      readonly kind: 'error';
      readonly code: string;
      readonly latencyMs: number;
      readonly superserver: boolean | null;
    } & Partial<RoundDetail>);

/** Role of a member as the health checks see it (admin overrides are kept apart, see AdminState). */
export type HealthRole = 'unknown' | 'primary' | 'suspect' | 'backup' | 'unreachable';

/** Maintenance state set through the admin API. */
export type AdminState = 'enabled' | 'draining' | 'disabled';

/** Hysteresis settings the reducer needs. */
export interface Hysteresis {
  readonly rise: number;
  readonly fall: number;
  /** Fencing deadline (contract rule 3); null: never. Optional so older callers keep working. */
  readonly fenceAfterMs?: number | null;
}

/** Everything the reducer keeps about one member. Plain data, replaced on every probe. */
export interface MemberHealth {
  readonly role: HealthRole;
  /** Consecutive "primary" answers while not yet primary (rise counter). */
  readonly primaryStreak: number;
  /** Consecutive failed checks (fall counter). */
  readonly failStreak: number;
  /** When the member last became primary from a non-primary role (conflict rule: newest wins). */
  readonly primarySince: number | null;
  /**
   * When it last answered "primary" uncontradicted (takeover vs conflict, contract rule 6;
   * fencing, rule 3). Kept across roles: a member demoted and claiming again is compared by it.
   */
  readonly lastPrimaryAnswerAt: number | null;
  /** Its URLs contradicted each other in the last round: no new clients until they agree. */
  readonly contradicted: boolean;
  /** It lost the role to fencing (no authoritative answer for fence_after); cleared by any authoritative answer. */
  readonly fenced: boolean;
  readonly lastCheckAt: number | null;
  readonly lastLatencyMs: number | null;
  /** Short text of the last result: 'primary', 'not_primary 503', 'timeout', 'error ECONNREFUSED'. */
  readonly lastResult: string | null;
  /** Each check URL's last answer, and which one decided (status, page, `mirrorlb status`). */
  readonly lastAnswers: readonly UrlAnswer[];
  readonly decidedBy: string | null;
  /** Whether the last check answered at all (metric mirrorlb_member_reachable). */
  readonly reachable: boolean;
}

/** What the primary choice looks at for one member. */
export interface MemberView {
  readonly name: string;
  readonly health: MemberHealth;
  readonly admin: AdminState;
}

/** Why the balancer cuts the sessions of a member that is not (or no longer) the primary. */
export type DemoteReason = 'demoted' | 'disabled' | 'conflict';

/**
 * Where a mirror's new clients go. `primary` is the member holding the role (also while
 * suspect or draining: its sessions are kept); `accepting` says whether new clients may
 * be sent to it now. primary=null: no primary, hold clients, cut every session.
 *
 * Everything the proxy needs to act is here (it never asks the monitor): where a held
 * client goes at its hold timeout, and why each other member's sessions are cut.
 * Made by choosePrimary (choose.ts), frozen.
 */
export interface Decision {
  readonly primary: string | null;
  readonly accepting: boolean;
  /** Members that claim primary but lost a conflict (or all claimants under 'hold'). */
  readonly conflict: readonly string[];
  /**
   * Where a client still held at its hold timeout goes while nobody accepts (routing rule 5
   * and rule 3's "to it at their hold timeout"): the suspect primary, admin enabled. null:
   * the client is closed.
   */
  readonly fallback: string | null;
  /** For every member but the primary: the reason its sessions are cut (metric label, log). */
  readonly cutReason: Readonly<Record<string, DemoteReason>>;
}
