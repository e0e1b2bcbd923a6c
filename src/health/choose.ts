import type { ConflictPolicy } from '../config/types.js';
import type { Decision, DemoteReason, MemberView } from './types.js';

/**
 * The primary choice: where a mirror's new clients go, from its members' health and
 * admin state. Pure; `prev` is the decision in force (needed to keep the established
 * primary when two members claim the role under the 'hold' policy).
 *
 * - A disabled member never holds the role; a draining one keeps it but takes no new clients.
 * - One member answering primary: it is the primary.
 * - Several: the one that became primary last is the newest claim. An older claimant whose
 *   last "primary" answer is older than that claim is a takeover seen half-way (its next
 *   check will no longer say primary): an ordinary failover, not a conflict. Only one that
 *   answered primary *after* the newest claim is a conflict (contract rule 6). On a conflict,
 *   'newest' gives the role to the newest claim (members list order breaks ties) and 'hold'
 *   keeps the established primary, if any, without new clients; a takeover under 'hold'
 *   waits, without new clients, for the old holder's next check.
 * - None answering primary, but a suspect one: it keeps the role (sessions stay), new clients wait,
 *   and it is the `fallback` of clients still held at their hold timeout (when admin enabled and
 *   its URLs do not contradict each other; a fenced member holds no role at all).
 */
export function choosePrimary(
  members: readonly MemberView[],
  policy: ConflictPolicy,
  prev: Decision | null,
): Decision {
  const { primary, accepting, conflict } = route(members, policy, prev);
  const holder = members.find((m) => m.name === primary);
  // Rule 3: at the hold timeout a client goes to a merely suspect primary rather than nowhere.
  const fallback =
    !accepting &&
    holder &&
    holder.health.role === 'suspect' &&
    !holder.health.contradicted &&
    holder.admin === 'enabled'
      ? holder.name
      : null;
  const cutReason: Record<string, DemoteReason> = {};
  for (const m of members) {
    if (m.name === primary) continue;
    cutReason[m.name] = conflict.includes(m.name)
      ? 'conflict'
      : m.admin === 'disabled'
        ? 'disabled'
        : 'demoted';
  }
  return Object.freeze({
    primary,
    accepting,
    conflict: Object.freeze(conflict),
    fallback,
    cutReason: Object.freeze(cutReason),
  });
}

type Route = Pick<Decision, 'primary' | 'accepting'> & { conflict: string[] };

function route(members: readonly MemberView[], policy: ConflictPolicy, prev: Decision | null): Route {
  const live = members.filter((m) => m.admin !== 'disabled');
  const claimants = live.filter((m) => m.health.role === 'primary');

  if (claimants.length === 0) {
    const suspect = newest(live.filter((m) => m.health.role === 'suspect'));
    return { primary: suspect?.name ?? null, accepting: false, conflict: [] };
  }
  if (claimants.length === 1) {
    const only = claimants[0]!;
    return { primary: only.name, accepting: only.admin === 'enabled', conflict: [] };
  }
  const winner = newest(claimants)!;
  const contenders = claimants.filter((m) => m !== winner && answeredAfterClaim(m, winner));
  if (policy === 'hold') {
    const kept = claimants.find((m) => m.name === prev?.primary);
    const conflict = contenders.length === 0 ? [] : claimants.map((m) => m.name);
    return { primary: kept?.name ?? null, accepting: false, conflict };
  }
  return {
    primary: winner.name,
    accepting: winner.admin === 'enabled',
    conflict: contenders.map((m) => m.name),
  };
}

/**
 * Whether `m` said primary after `winner` claimed the role: a real conflict, not a takeover.
 * Its answer is dated by when its probe was sent, so an answer already on its way at the
 * claim never counts.
 */
export function answeredAfterClaim(m: MemberView, winner: MemberView): boolean {
  const answered = m.health.lastPrimaryAnswerAt;
  const claimed = winner.health.primarySince;
  return answered !== null && claimed !== null && answered > claimed;
}

/** The member that became primary last; earlier in the list wins a tie. */
function newest(ms: readonly MemberView[]): MemberView | undefined {
  let best: MemberView | undefined;
  for (const m of ms) {
    if (
      best === undefined ||
      (m.health.primarySince ?? -Infinity) > (best.health.primarySince ?? -Infinity)
    ) {
      best = m;
    }
  }
  return best;
}

/**
 * Whether `b` routes like `a` (primary, accepting, conflict, fallback). Cut reasons are left
 * out: they only matter when a change cuts, and then the new decision carries them.
 */
export function sameDecision(a: Decision | null, b: Decision): boolean {
  return (
    a !== null &&
    a.primary === b.primary &&
    a.accepting === b.accepting &&
    a.fallback === b.fallback &&
    a.conflict.length === b.conflict.length &&
    a.conflict.every((n, i) => b.conflict[i] === n)
  );
}
