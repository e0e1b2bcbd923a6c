/**
 * Types shared by the pure health decisions (state.ts, choose.ts) and the I/O shell
 * (probe.ts, monitor.ts). Time is always passed in as milliseconds from a monotonic clock.
 */

/**
 * What one probe of one member saw. Produced by the prober (probe.ts), consumed by
 * the reducer (state.ts). `superserver` is only looked at when the HTTP check failed:
 * it says whether the member's SuperServer port still accepted a TCP connect
 * (null = not tried).
 */
export type ProbeResult =
  | { readonly kind: 'primary'; readonly status: number; readonly latencyMs: number; readonly url: string }
  | {
      readonly kind: 'not_primary';
      readonly status: number;
      readonly latencyMs: number;
      readonly url: string;
    }
  /** No URL answered within the timeout (hung member, blackholed network). */
  | { readonly kind: 'timeout'; readonly latencyMs: number; readonly superserver: boolean | null }
  /** Every URL failed fast (refused, reset, DNS, bad answer): the status page is down. */
  | {
      readonly kind: 'error';
      readonly code: string;
      readonly latencyMs: number;
      readonly superserver: boolean | null;
    };

/** Role of a member as the health checks see it (admin overrides are kept apart, see AdminState). */
export type HealthRole = 'unknown' | 'primary' | 'suspect' | 'backup' | 'unreachable';

/** Maintenance state set through the admin API. */
export type AdminState = 'enabled' | 'draining' | 'disabled';

/** Hysteresis settings the reducer needs. */
export interface Hysteresis {
  readonly rise: number;
  readonly fall: number;
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
  readonly lastCheckAt: number | null;
  readonly lastLatencyMs: number | null;
  /** Short text of the last result: 'primary', 'not_primary 503', 'timeout', 'error ECONNREFUSED'. */
  readonly lastResult: string | null;
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
