import type { HostPort, MemberConfig, MirrorConfig } from './config/types.js';
import type { AdminState, Decision, MemberHealth } from './health/types.js';
import type { Resolution } from './proxy/resolver.js';

/**
 * What the daemon shows of one mirror to admin/status, the demo and tests: plain frozen
 * data copied at the time of the call, never the live monitor or proxy. Made by
 * `Daemon.snapshots()`; changing the daemon goes through its methods only.
 */
export interface MirrorSnapshot {
  readonly config: MirrorConfig;
  readonly decision: Decision;
  /** The address really bound (port 0 becomes a real port); null while not listening. */
  readonly listen: HostPort | null;
  readonly sessions: number;
  readonly held: number;
  readonly members: readonly MemberSnapshot[];
  /** Its read pools (frozen by the pool). */
  readonly pools?: readonly PoolSnapshot[];
}

/** One read pool: its listener, where new clients go, each member's pool state. */
export interface PoolSnapshot {
  readonly name: string;
  readonly listen: HostPort | null;
  /** The members taking new clients (comma-separated), the primary (`when_empty: primary`), or null. */
  readonly open: string | null;
  readonly sessions: number;
  readonly held: number;
  readonly members: readonly PoolMemberSnapshot[];
}

export interface PoolMemberSnapshot {
  readonly name: string;
  /** pool-state.ts's PoolMemberStatus: `primary` is not `down`. */
  readonly state: string;
  readonly takesClients: boolean;
  readonly lagBytes: number | null;
  readonly sessions: number;
}

export interface MemberSnapshot {
  readonly config: MemberConfig;
  readonly health: MemberHealth;
  readonly admin: AdminState;
  readonly sessions: number;
  /** The member address's DNS lookup: `error` set while the name does not resolve. */
  readonly resolution: Resolution;
}

/** Freezes a snapshot and its members (config and decision are frozen already). */
export function freezeSnapshot(s: MirrorSnapshot): MirrorSnapshot {
  return Object.freeze({
    ...s,
    listen: s.listen && Object.freeze({ ...s.listen }),
    members: Object.freeze(
      s.members.map((m) =>
        Object.freeze({
          ...m,
          health: Object.freeze({ ...m.health }),
          resolution: Object.freeze({ ...m.resolution }),
        }),
      ),
    ),
  });
}
