import type { CutReason, RoutePlan } from '../mirror/plan.js';
import type { SharedMirrorState } from './shared-state.js';

/**
 * A loop's plan for one mirror: the primary plan (plan.ts PrimaryPlan) read from the shared
 * routing word on every pick, so a new client follows the control plane's latest decision
 * from the moment it is stored, before the loop has read the message that cuts and releases.
 * `open` is what the word said when the message was read: `apply` compares it to release
 * the held clients once per change.
 */
export class SharedPlan implements RoutePlan {
  readonly open: string | null;

  constructor(
    private readonly state: SharedMirrorState,
    private readonly names: readonly (string | undefined)[],
    private readonly slotOf: ReadonlyMap<string, number>,
    private readonly reasons: Readonly<Record<string, CutReason>> = {},
  ) {
    this.open = this.pick();
  }

  pick(): string | null {
    const r = this.state.read();
    return r.accepting ? this.name(r.primary) : null;
  }

  keeps(member: string): boolean {
    return this.slotOf.get(member) === this.state.read().primary;
  }

  admits(member: string): boolean {
    const r = this.state.read();
    const slot = this.slotOf.get(member);
    return slot !== undefined && (slot === r.primary || slot === r.fallback);
  }

  get fallback(): string | null {
    const r = this.state.read();
    return this.name(r.accepting ? r.primary : r.fallback);
  }

  cutReason(member: string): CutReason {
    return this.reasons[member] ?? 'removed';
  }

  private name(slot: number): string | null {
    return slot < 0 ? null : (this.names[slot] ?? null);
  }
}

/** Slot → name, from a name → slot map. */
export function slotNames(slots: ReadonlyMap<string, number>): (string | undefined)[] {
  const names: (string | undefined)[] = [];
  for (const [name, slot] of slots) names[slot] = name;
  return names;
}
