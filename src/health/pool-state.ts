/**
 * A read pool's view of one member, as a pure reducer of what its pool check saw
 * (`nextPoolState`), apart from the member's primary health (state.ts). The clock is passed in.
 *
 * - `in`: qualified `rise` checks in a row and not lagging: takes new clients;
 * - `joining`: qualifies, not yet `rise` times;
 * - `lagging`: qualifies but its lag held above the limit for `lagExitAfterMs` (hysteresis:
 *   it returns only after staying at or below the return mark for `lagReturnAfterMs`);
 * - `not_streaming`: answers as a replica but is not replicating from the current primary
 *   (another timeline, the primary does not list it as streaming, or no primary is known —
 *   the one it streamed from is gone and no new one answered yet);
 * - `out`: its own "not in this pool" answer (503) that is not a primary's;
 * - `primary`: it is the primary — not in a read pool, but not down either;
 * - `failing`: its check stopped answering while its port still accepts (a REST error is not
 *   a role change: sessions stay, no new clients);
 * - `down`: dead (check failing and port refusing, or a client's connect failed): sessions cut;
 * - `unknown`: never checked.
 */
export type PoolMemberStatus =
  'unknown' | 'joining' | 'in' | 'lagging' | 'not_streaming' | 'out' | 'primary' | 'failing' | 'down';

/** What one pool check of one member saw (pool-probe.ts makes it). */
export interface PoolObservation {
  /** 200 (qualifies), 503 not as primary, 503/200 as primary, no answer with the port up, dead. */
  readonly kind: 'qualifies' | 'not_qualifies' | 'primary' | 'failing' | 'dead';
  /** Bytes its replay is behind the primary's position, when both were read; null: unknown. */
  readonly lagBytes: number | null;
  /**
   * true: the primary lists it as streaming; false: it does not replicate from the primary, or
   * no primary is known (the last one answered as something else or died, and none answered
   * primary yet); `held`: no member answered primary this round but the last primary's own
   * check failed (it may still be primary: a REST error is not a role change), so a member in
   * the pool stays in while one that is not cannot join; null: cannot be told (the primary's
   * names are not this pool's member names, or no primary ever answered).
   */
  readonly streaming: boolean | 'held' | null;
}

export interface PoolLagRules {
  readonly rise: number;
  readonly maxLagBytes: number | null;
  readonly lagExitAfterMs: number;
  readonly lagReturnBelowBytes: number | null;
  readonly lagReturnAfterMs: number;
}

export interface PoolMemberState {
  readonly status: PoolMemberStatus;
  /** Qualifying checks in a row. */
  readonly ok: number;
  /** Left (or kept out) for lag; cleared only by the return rule. */
  readonly lagged: boolean;
  /** Since when the lag has been above the limit (not lagged) or at/below the return mark (lagged). */
  readonly lagMarkSince: number | null;
  readonly lagBytes: number | null;
  /**
   * When it last joined (slow start counts from here). A lag exit keeps it: a replica that only
   * fell behind kept serving its sessions and is warm, so it returns without a slow start.
   */
  readonly inSince: number | null;
  readonly lastCheckAt: number | null;
}

export const INITIAL_POOL_STATE: PoolMemberState = Object.freeze({
  status: 'unknown',
  ok: 0,
  lagged: false,
  lagMarkSince: null,
  lagBytes: null,
  inSince: null,
  lastCheckAt: null,
});

/** Whether a member takes new clients of the pool. */
export function takesClients(s: PoolMemberState): boolean {
  return s.status === 'in';
}

/** The lag hysteresis: whether it is (still) lagged, and since when the current mark holds. */
function lagStep(
  prev: PoolMemberState,
  lag: number | null,
  r: PoolLagRules,
  now: number,
): { lagged: boolean; since: number | null } {
  if (r.maxLagBytes === null) return { lagged: false, since: null };
  // Unknown lag (the primary's position not read this round): nothing changes.
  if (lag === null) return { lagged: prev.lagged, since: prev.lagMarkSince };
  if (!prev.lagged) {
    if (lag <= r.maxLagBytes) return { lagged: false, since: null };
    const since = prev.lagMarkSince ?? now;
    return now - since >= r.lagExitAfterMs ? { lagged: true, since: null } : { lagged: false, since };
  }
  if (lag > (r.lagReturnBelowBytes ?? r.maxLagBytes)) return { lagged: true, since: null };
  const since = prev.lagMarkSince ?? now;
  return now - since >= r.lagReturnAfterMs ? { lagged: false, since: null } : { lagged: true, since };
}

export function nextPoolState(
  prev: PoolMemberState,
  obs: PoolObservation,
  r: PoolLagRules,
  now: number,
): PoolMemberState {
  const base = { ...prev, lastCheckAt: now, lagBytes: obs.lagBytes ?? prev.lagBytes };
  switch (obs.kind) {
    case 'dead':
    case 'primary':
    case 'not_qualifies':
      return {
        ...base,
        status: obs.kind === 'dead' ? 'down' : obs.kind === 'primary' ? 'primary' : 'out',
        ok: 0,
        lagged: false,
        lagMarkSince: null,
        inSince: null,
      };
    case 'failing':
      // Out of new clients' way at once, but no role change: its sessions stay.
      return { ...base, status: 'failing', ok: 0, inSince: null };
    case 'qualifies': {
      // With no primary to judge by, a member keeps its place but gains none: only one in the
      // pool (lagging or not) goes on as before.
      const held = obs.streaming === 'held' && prev.status !== 'in' && prev.status !== 'lagging';
      if (obs.streaming === false || held)
        return { ...base, status: 'not_streaming', ok: 0, lagMarkSince: null, inSince: null };
      const lag = lagStep(prev, obs.lagBytes, r, now);
      const ok = prev.ok + 1;
      const status: PoolMemberStatus = lag.lagged ? 'lagging' : ok >= r.rise ? 'in' : 'joining';
      // Carried through a lag exit (every other absence clears it), so that a replica back from
      // lagging keeps the slow start it had already done; a cold one starts it now.
      const inSince = status === 'joining' ? null : status === 'in' ? (prev.inSince ?? now) : prev.inSince;
      return { ...base, status, ok, lagged: lag.lagged, lagMarkSince: lag.since, inSince };
    }
    default: {
      const never: never = obs.kind;
      throw new Error(`unhandled observation ${String(never)}`);
    }
  }
}

/** A client's connect to the member failed: out of new clients' way at once (re-probed now). */
export function connectFailedState(prev: PoolMemberState, now: number): PoolMemberState {
  if (prev.status !== 'in' && prev.status !== 'joining') return prev;
  return { ...prev, status: 'failing', ok: 0, inSince: null, lastCheckAt: prev.lastCheckAt ?? now };
}
