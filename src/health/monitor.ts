import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { MirrorConfig, MemberConfig } from '../config/types.js';
import { choosePrimary, sameDecision } from './choose.js';
import { INITIAL_HEALTH, nextHealth } from './state.js';
import type { AdminState, Decision, HealthRole, MemberHealth, MemberView, ProbeResult } from './types.js';

/** What the monitor needs from the prober (src/health/probe.ts); tests pass fakes. */
export interface ProbeRunner {
  probe(
    target: { readonly urls: readonly string[]; readonly superserver: MemberConfig['address'] },
    opts: {
      readonly timeoutMs: number;
      readonly expectStatus: number;
      readonly expectBody: string | readonly string[] | null;
      readonly notPrimaryStatus?: number | readonly number[];
      readonly notPrimaryBody?: string | readonly string[] | null;
      readonly maxBodyBytes: number;
      readonly checkSuperserver: boolean;
    },
  ): Promise<ProbeResult>;
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

/** Kicks closer together than this are one kick (a burst of failed connects). */
const KICK_GAP_MS = 10;

interface MemberSlot {
  readonly config: MemberConfig;
  health: MemberHealth;
  admin: AdminState;
  timer: NodeJS.Timeout | null;
  /** When the pending timer fires (monotonic ms). */
  dueAt: number;
  inFlight: boolean;
  /** A kick arrived while a probe was in flight: probe again as soon as it ends. */
  again: boolean;
}

export interface MonitorEvents {
  role: [RoleChange];
  decision: [DecisionChange];
  probe: [string, ProbeResult];
}

/**
 * The health-check loop of one mirror: probes each member on its own timer (never two
 * probes of one member at once), feeds results through the pure reducer and primary
 * choice, and emits 'role' and 'decision' events. It owns no sockets of the data path;
 * the proxy listens to 'decision' and calls `kick()` when a connect to the primary fails.
 */
export class MirrorMonitor extends EventEmitter<MonitorEvents> {
  readonly config: MirrorConfig;
  private readonly slots: Map<string, MemberSlot>;
  private readonly prober: ProbeRunner;
  private readonly now: () => number;
  private current: Decision = { primary: null, accepting: false, conflict: [] };
  private lastChangeAt: number;
  private noPrimarySince: number | null;
  private state: 'new' | 'running' | 'stopped' = 'new';
  private lastKickAt = -Infinity;

  /**
   * `seed` carries member health over a reload, so an unchanged member keeps its role and
   * the decision in force stays in force (no sessions cut, no clients held by a reload).
   */
  constructor(
    config: MirrorConfig,
    prober: ProbeRunner,
    seed: ReadonlyMap<string, { health: MemberHealth; admin: AdminState }> = new Map(),
    now: () => number = () => performance.now(),
  ) {
    super();
    this.config = config;
    this.prober = prober;
    this.now = now;
    this.slots = new Map(
      config.members.map((m) => {
        const s = seed.get(m.name);
        return [
          m.name,
          {
            config: m,
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
    this.lastChangeAt = now();
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
    if (this.state !== 'new') throw new Error(`monitor of ${this.config.name} already ${this.state}`);
    this.state = 'running';
    for (const slot of this.slots.values()) void this.probe(slot);
  }

  stop(): void {
    this.state = 'stopped';
    for (const slot of this.slots.values()) {
      if (slot.timer) clearTimeout(slot.timer);
      slot.timer = null;
    }
  }

  /**
   * Probe every member now (a connect to the primary failed). A burst of failing connects
   * asks many times; probing more often than a fraction of the fast interval adds nothing.
   */
  kick(): void {
    if (this.state !== 'running') return;
    const now = this.now();
    if (now - this.lastKickAt < Math.min(KICK_GAP_MS, this.config.health.fastIntervalMs / 5)) return;
    this.lastKickAt = now;
    for (const slot of this.slots.values()) {
      if (slot.inFlight) {
        slot.again = true;
        continue;
      }
      if (slot.timer) clearTimeout(slot.timer);
      slot.timer = null;
      void this.probe(slot);
    }
  }

  setAdmin(member: string, admin: AdminState): boolean {
    const slot = this.slots.get(member);
    if (!slot) return false;
    slot.admin = admin;
    this.decide();
    return true;
  }

  private views(): MemberView[] {
    return [...this.slots.values()].map((s) => ({ name: s.config.name, health: s.health, admin: s.admin }));
  }

  private async probe(slot: MemberSlot): Promise<void> {
    slot.inFlight = true;
    const h = this.config.health;
    const role = slot.health.role;
    const startedAt = this.now();
    let result: ProbeResult;
    try {
      result = await this.prober.probe(
        { urls: slot.config.check, superserver: slot.config.address },
        {
          timeoutMs: h.timeoutMs,
          expectStatus: h.expectStatus,
          expectBody: h.expectBody,
          notPrimaryStatus: h.notPrimaryStatus,
          notPrimaryBody: h.notPrimaryBody,
          maxBodyBytes: h.maxBodyBytes,
          checkSuperserver: role === 'primary' || role === 'suspect',
        },
      );
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
    this.emit('probe', slot.config.name, result);
    const prev = slot.health;
    slot.health = nextHealth(prev, result, h, this.now(), startedAt);
    if (slot.health.role !== prev.role) {
      this.emit('role', {
        member: slot.config.name,
        from: prev.role,
        to: slot.health.role,
        result: slot.health.lastResult,
      });
      // Whoever takes over is usually already answering: look at everyone now, not in one interval.
      if (prev.role === 'primary') this.kickOthers(slot);
    }
    this.decide();
    if (slot.again) {
      slot.again = false;
      void this.probe(slot);
      return;
    }
    this.schedule(slot);
  }

  private kickOthers(except: MemberSlot): void {
    for (const s of this.slots.values()) {
      if (s === except) continue;
      if (s.inFlight) s.again = true;
      else {
        if (s.timer) clearTimeout(s.timer);
        s.timer = null;
        void this.probe(s);
      }
    }
  }

  private schedule(slot: MemberSlot): void {
    const delay = this.nextDelay(slot);
    slot.dueAt = this.now() + delay;
    slot.timer = setTimeout(() => {
      slot.timer = null;
      void this.probe(slot);
    }, delay);
  }

  private nextDelay(slot: MemberSlot): number {
    const h = this.config.health;
    const now = this.now();
    const fast =
      !this.current.accepting || now - this.lastChangeAt < h.fastWindowMs || slot.health.role === 'suspect';
    const base = fast ? h.fastIntervalMs : h.intervalMs;
    // Jitter only shortens the wait, so the interval stays an upper bound on detection time.
    return base * (1 - h.jitter * Math.random());
  }

  private decide(): void {
    const next = choosePrimary(this.views(), this.config.onConflict, this.current);
    if (sameDecision(this.current, next)) return;
    const prev = this.current;
    const now = this.now();
    this.current = next;
    this.lastChangeAt = now;
    let withoutPrimaryMs: number | null = null;
    if (next.accepting && this.noPrimarySince !== null) {
      withoutPrimaryMs = now - this.noPrimarySince;
      this.noPrimarySince = null;
    } else if (!next.accepting && this.noPrimarySince === null) {
      this.noPrimarySince = now;
    }
    this.emit('decision', { prev, next, withoutPrimaryMs });
    // The decision changed: speed up every member's loop from now on (fast window).
    for (const s of this.slots.values()) {
      if (s.timer && !s.inFlight && now + this.nextDelay(s) < s.dueAt) {
        clearTimeout(s.timer);
        this.schedule(s);
      }
    }
  }
}
