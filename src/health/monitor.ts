import { performance } from 'node:perf_hooks';
import type { MirrorConfig, MemberConfig } from '../config/types.js';
import { MlbError } from '../errors.js';
import { choosePrimary, sameDecision } from './choose.js';
import type { ProbeOptions, ProbeTarget } from './probe.js';
import { INITIAL_HEALTH, nextHealth } from './state.js';
import type { AdminState, Decision, HealthRole, MemberHealth, MemberView, ProbeResult } from './types.js';

/** What the monitor needs from the prober (src/health/probe.ts); tests pass fakes. */
export interface ProbeRunner {
  probe(target: ProbeTarget, opts: ProbeOptions): Promise<ProbeResult>;
}

export interface RoleChange {
  readonly member: string;
  readonly from: HealthRole;
  readonly to: HealthRole;
  readonly result: string | null;
}

export interface DecisionChange {
  readonly prev: Decision;
  readonly next: Decision;
  /** ms since the mirror last had a primary accepting clients (null when it had one until now). */
  readonly withoutPrimaryMs: number | null;
}

/**
 * One step of the monitor: what one probe result changed (a member's role, the decision,
 * or both). Handed over once per step, so its mirror applies the decision and then reports
 * the role change with what the cut really did.
 */
export interface MonitorChange {
  readonly role: RoleChange | null;
  readonly decision: DecisionChange | null;
}

/** Time and timers the monitor runs on; tests pass a fake scheduler (monotonic ms). */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(timer: unknown): void;
  /** In [0, 1): the jitter draw. */
  random(): number;
}

export const REAL_CLOCK: Clock = Object.freeze({
  now: () => performance.now(),
  // Whole milliseconds (timers fire at that resolution anyway): Node keeps one timer list per
  // distinct duration, keyed by its string form, so a jittered fractional delay would make a
  // new list, a priority-queue entry and a number-to-string conversion for every probe.
  // Rounding up keeps the delay never shorter than asked, and never above the interval.
  setTimeout: (fn: () => void, ms: number): unknown => setTimeout(fn, Math.ceil(ms)),
  clearTimeout: (t: unknown): void => clearTimeout(t as NodeJS.Timeout),
  random: () => Math.random(),
});

export interface MonitorOptions {
  /**
   * Member health carried over a reload, so an unchanged member keeps its role and the
   * decision in force stays in force (no sessions cut, no clients held by a reload).
   */
  readonly seed?: ReadonlyMap<string, { health: MemberHealth; admin: AdminState }>;
  readonly clock?: Clock;
}

/** Kicks closer together than this are one kick (a burst of failed connects). */
const KICK_GAP_MS = 10;

interface MemberSlot {
  readonly config: MemberConfig;
  /** What the prober is asked to check, the same object every probe (it caches by it). */
  readonly target: ProbeTarget;
  health: MemberHealth;
  admin: AdminState;
  timer: unknown;
  /** When the pending timer fires (monotonic ms). */
  dueAt: number;
  inFlight: boolean;
  /** A kick arrived while a probe was in flight: probe again as soon as it ends. */
  again: boolean;
}

/** Who hears every step of a monitor: its mirror (src/mirror/mirror.ts), one explicit call each. */
export interface MonitorSink {
  /** Every probe, in order: the member, what it saw, its health before and after. */
  probed(member: string, result: ProbeResult, prev: MemberHealth, next: MemberHealth): void;
  /** A step that changed a role or the decision (after `probed` of the same probe). */
  changed(change: MonitorChange): void;
}

/**
 * The health-check loop of one mirror: probes each member on its own timer (never two
 * probes of one member at once), feeds results through the pure reducer and primary
 * choice, and hands each step to its sink. It owns no sockets and knows no router: the
 * mirror applies decisions, and calls `kick()` when its router reports a failed connect.
 */
export class MirrorMonitor {
  readonly config: MirrorConfig;
  private readonly slots: Map<string, MemberSlot>;
  private readonly prober: ProbeRunner;
  private readonly clock: Clock;
  /**
   * The probe options of this config, without and with the SuperServer check: made once,
   * so the prober can keep what it derives from them (answer rules) across probes.
   */
  private readonly probeOpts: readonly [ProbeOptions, ProbeOptions];
  private current: Decision;
  private lastChangeAt: number;
  private noPrimarySince: number | null;
  private state: 'new' | 'running' | 'stopped' = 'new';
  private lastKickAt = -Infinity;

  constructor(
    config: MirrorConfig,
    prober: ProbeRunner,
    private readonly sink: MonitorSink,
    opts: MonitorOptions = {},
  ) {
    this.config = config;
    this.prober = prober;
    this.clock = opts.clock ?? REAL_CLOCK;
    const h = config.health;
    const base = {
      timeoutMs: h.timeoutMs,
      expectStatus: h.expectStatus,
      expectBody: h.expectBody,
      expectBodyAll: h.expectBodyAll,
      notPrimaryStatus: h.notPrimaryStatus,
      notPrimaryBody: h.notPrimaryBody,
      maxBodyBytes: h.maxBodyBytes,
    };
    this.probeOpts = [
      Object.freeze({ ...base, checkSuperserver: false }),
      Object.freeze({ ...base, checkSuperserver: true }),
    ];
    const seed = opts.seed ?? new Map();
    this.slots = new Map(
      config.members.map((m) => {
        const s = seed.get(m.name);
        return [
          m.name,
          {
            config: m,
            target: Object.freeze({ urls: m.check, superserver: m.address, tls: m.tls }),
            health: s?.health ?? INITIAL_HEALTH,
            admin: s?.admin ?? 'enabled',
            timer: null,
            dueAt: 0,
            inFlight: false,
            again: false,
          },
        ];
      }),
    );
    this.lastChangeAt = this.clock.now();
    this.current = choosePrimary(this.views(), config.onConflict, null);
    this.noPrimarySince = this.current.accepting ? null : this.lastChangeAt;
  }

  get decision(): Decision {
    return this.current;
  }

  members(): ReadonlyArray<{
    readonly config: MemberConfig;
    readonly health: MemberHealth;
    readonly admin: AdminState;
  }> {
    return [...this.slots.values()];
  }

  start(): void {
    if (this.state !== 'new')
      throw new MlbError('MLB_ERR_ALREADY_STARTED', `monitor of ${this.config.name} already ${this.state}`);
    this.state = 'running';
    for (const slot of this.slots.values()) void this.probe(slot);
  }

  stop(): void {
    this.state = 'stopped';
    for (const slot of this.slots.values()) {
      if (slot.timer) this.clock.clearTimeout(slot.timer);
      slot.timer = null;
    }
  }

  /**
   * Probe every member now (a connect to the primary failed). A burst of failing connects
   * asks many times; probing more often than a fraction of the fast interval adds nothing.
   */
  kick(): void {
    if (this.state !== 'running') return;
    const now = this.clock.now();
    if (now - this.lastKickAt < Math.min(KICK_GAP_MS, this.config.health.fastIntervalMs / 5)) return;
    this.lastKickAt = now;
    for (const slot of this.slots.values()) this.probeNow(slot);
  }

  /**
   * Sets a member's maintenance state. Returns the decision change it made (null: none, or
   * no such member); it is not handed to the sink: the caller (the mirror's admin action) applies it.
   */
  setAdmin(member: string, admin: AdminState): DecisionChange | null {
    const slot = this.slots.get(member);
    if (!slot) return null;
    slot.admin = admin;
    return this.decide();
  }

  private views(): MemberView[] {
    return [...this.slots.values()].map((s) => ({ name: s.config.name, health: s.health, admin: s.admin }));
  }

  private async probe(slot: MemberSlot): Promise<void> {
    slot.inFlight = true;
    const h = this.config.health;
    const heldRole = slot.health.role;
    const startedAt = this.clock.now();
    let result: ProbeResult;
    try {
      const holds = heldRole === 'primary' || heldRole === 'suspect';
      result = await this.prober.probe(slot.target, this.probeOpts[holds ? 1 : 0]);
    } catch (err) {
      // The prober promises never to reject; if it ever does, that is a failed check, not a crash.
      result = {
        kind: 'error',
        code: (err as NodeJS.ErrnoException).code ?? 'MLB_ERR_PROBE',
        latencyMs: 0,
        superserver: null,
      };
    }
    slot.inFlight = false;
    if (this.state !== 'running') return;
    const prev = slot.health;
    slot.health = nextHealth(prev, result, h, this.clock.now(), startedAt);
    this.sink.probed(slot.config.name, result, prev, slot.health);
    const role: RoleChange | null =
      slot.health.role === prev.role
        ? null
        : { member: slot.config.name, from: prev.role, to: slot.health.role, result: slot.health.lastResult };
    const decision = this.decide();
    if (role || decision) this.sink.changed({ role, decision });
    // Whoever takes over is usually already answering: look at everyone now, not in one interval.
    if (role && prev.role === 'primary' && this.state === 'running') {
      for (const s of this.slots.values()) if (s !== slot) this.probeNow(s);
    }
    // A new claim while another member holds the role: check the old holder now. If it no longer
    // says primary this was a takeover (an ordinary failover); only a "primary" from a check sent
    // after the claim is a conflict (contract rule 6, choose.ts).
    else if (role && role.to === 'primary' && this.state === 'running') this.kickHolders(slot);
    if (slot.again) {
      slot.again = false;
      void this.probe(slot);
      return;
    }
    this.schedule(slot);
  }

  private kickHolders(claimant: MemberSlot): void {
    for (const s of this.slots.values()) {
      if (s === claimant || (s.health.role !== 'primary' && s.health.role !== 'suspect')) continue;
      this.probeNow(s);
    }
  }

  /** Probe a member at once, or again right after the probe in flight (sent before now). */
  private probeNow(s: MemberSlot): void {
    if (s.inFlight) {
      s.again = true;
      return;
    }
    if (s.timer) this.clock.clearTimeout(s.timer);
    s.timer = null;
    void this.probe(s);
  }

  private schedule(slot: MemberSlot): void {
    const delay = this.nextDelay(slot);
    slot.dueAt = this.clock.now() + delay;
    slot.timer = this.clock.setTimeout(() => {
      slot.timer = null;
      void this.probe(slot);
    }, delay);
  }

  private nextDelay(slot: MemberSlot): number {
    const h = this.config.health;
    const now = this.clock.now();
    // Contradicting URLs are re-probed at the fast interval until they agree.
    const fast =
      !this.current.accepting ||
      now - this.lastChangeAt < h.fastWindowMs ||
      slot.health.role === 'suspect' ||
      slot.health.contradicted;
    const base = fast ? h.fastIntervalMs : h.intervalMs;
    // Jitter only shortens the wait, so the interval stays an upper bound on detection time.
    return base * (1 - h.jitter * this.clock.random());
  }

  /** Recomputes the decision; returns the change, or null when it routes as before. */
  private decide(): DecisionChange | null {
    const next = choosePrimary(this.views(), this.config.onConflict, this.current);
    if (sameDecision(this.current, next)) {
      // Same routing; keep the newest cut reasons (a backup disabled) without a change.
      this.current = next;
      return null;
    }
    const prev = this.current;
    const now = this.clock.now();
    this.current = next;
    this.lastChangeAt = now;
    let withoutPrimaryMs: number | null = null;
    if (next.accepting && this.noPrimarySince !== null) {
      withoutPrimaryMs = now - this.noPrimarySince;
      this.noPrimarySince = null;
    } else if (!next.accepting && this.noPrimarySince === null) {
      this.noPrimarySince = now;
    }
    // The decision changed: speed up every member's loop from now on (fast window).
    for (const s of this.slots.values()) {
      if (s.timer && !s.inFlight && now + this.nextDelay(s) < s.dueAt) {
        this.clock.clearTimeout(s.timer);
        this.schedule(s);
      }
    }
    return { prev, next, withoutPrimaryMs };
  }
}
