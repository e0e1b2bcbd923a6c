import { Counter, Gauge, type Registry } from 'prom-client';
import type { Config } from '../config/types.js';
import type { Logger } from '../log.js';

/**
 * The admin listener's connection cap (src/admin/server.ts), part of the descriptors kept
 * apart: a sixteenth of the open-files limit, from 16 to 1024. Enough that a few hundred slow
 * clients on the admin port leave /healthz and Prometheus answered; bounded so that a flood
 * of thousands never takes the proxy's descriptors.
 */
export function adminMaxConnections(limit: number | null): number {
  return limit === null ? 1024 : Math.min(1024, Math.max(16, Math.floor(limit / 16)));
}

/** Descriptors kept apart besides the admin's, the checks' and the listeners': stdio, epoll, DNS, files read at reload. */
const RESERVE_BASE = 32;

/** Two descriptors per client (its own and its member's), the rest kept for everything else. */
export interface FdPlan {
  /** The open-files soft limit; null when unknown (then no ceiling). */
  readonly limit: number | null;
  readonly reserve: number;
  /** Clients at once, process-wide; null for none. */
  readonly ceiling: number | null;
}

export function planFds(limit: number | null, config: Config): FdPlan {
  if (limit === null) return { limit, reserve: 0, ceiling: null };
  let checks = 0;
  for (const m of config.mirrors) for (const member of m.members) checks += member.check.length;
  const reserve = RESERVE_BASE + adminMaxConnections(limit) + checks + config.mirrors.length + 1;
  return { limit, reserve, ceiling: Math.max(1, Math.floor((limit - reserve) / 2)) };
}

/** Below this many clients at once the limit is worth a warning even without max_connections. */
const LOW_CEILING = 1000;

/** What `check` and the start log say about an open-files limit too low for the config. */
export function fdWarnings(config: Config, plan: FdPlan): string[] {
  if (plan.ceiling === null) return [];
  const raise = "raise it (ulimit -n, systemd LimitNOFILE, the container runtime's nofile ulimit)";
  const caps = config.mirrors.map((m) => m.proxy.maxConnections);
  const sum = caps.reduce((a, b) => a + b, 0);
  if (!caps.includes(0) && sum <= plan.ceiling) return [];
  if (caps.includes(0) && plan.ceiling >= LOW_CEILING) return [];
  const asked = caps.includes(0) ? 'max_connections is unlimited' : `max_connections add up to ${sum}`;
  return [
    `the open-files limit ${plan.limit} allows ${plan.ceiling} clients at once (2 descriptors each, ` +
      `${plan.reserve} kept for checks, admin and logs) and ${asked}: past ${plan.ceiling} new clients ` +
      `wait in the listen queue; ${raise}`,
  ];
}

/** A front that can stop accepting (a route's listener, listener.ts). */
export interface Pausable {
  pause(): void;
  resume(): void;
}

/**
 * The process-wide count of clients against the descriptor ceiling: every route's client
 * table takes one when a client arrives and gives it back when it closes. At the ceiling every
 * listener stops accepting (clients wait in the kernel's listen queue); accepting resumes once
 * a tenth of the ceiling has left, so a full balancer does not flap at every close. Logged once
 * each way, counted in mirrorlb_accept_pauses_total, shown in mirrorlb_accept_paused.
 */
export class FdBudget {
  private inUse = 0;
  private paused = false;
  private readonly fronts = new Set<Pausable>();
  private readonly ceiling: number;
  private readonly resumeAt: number;
  private readonly pausedGauge: Gauge | null;
  private readonly pauses: Counter | null;

  constructor(
    readonly plan: FdPlan,
    private readonly log: Logger,
    registry: Registry | null,
  ) {
    this.ceiling = plan.ceiling ?? Infinity;
    this.resumeAt = this.ceiling - Math.max(1, Math.floor(this.ceiling / 10));
    if (registry === null) {
      this.pausedGauge = this.pauses = null;
      return;
    }
    const registers = [registry];
    new Gauge({
      name: 'mirrorlb_fd_ceiling',
      help: 'Clients the process takes at once: (open-files soft limit - reserve) / 2; absent when the limit is unknown.',
      registers,
    }).set(plan.ceiling ?? -1);
    if (plan.ceiling === null) registry.removeSingleMetric('mirrorlb_fd_ceiling');
    this.pausedGauge = new Gauge({
      name: 'mirrorlb_accept_paused',
      help: '1 while every listener has stopped accepting at the descriptor ceiling (new clients wait in the listen queue).',
      registers,
    });
    this.pausedGauge.set(0);
    this.pauses = new Counter({
      name: 'mirrorlb_accept_pauses_total',
      help: 'Times accepting stopped at the descriptor ceiling.',
      registers,
    });
  }

  /** A client arrived (its descriptors are in use). */
  take(): void {
    if (++this.inUse >= this.ceiling && !this.paused) this.pause();
  }

  /** A client closed. */
  give(): void {
    if (--this.inUse <= this.resumeAt && this.paused) this.resume();
  }

  get clients(): number {
    return this.inUse;
  }

  get accepting(): boolean {
    return !this.paused;
  }

  add(front: Pausable): void {
    this.fronts.add(front);
    if (this.paused) front.pause();
  }

  remove(front: Pausable): void {
    this.fronts.delete(front);
  }

  private pause(): void {
    this.paused = true;
    for (const f of this.fronts) f.pause();
    this.pausedGauge?.set(1);
    this.pauses?.inc();
    this.log.warn(
      { clients: this.inUse, ceiling: this.ceiling, open_files_limit: this.plan.limit },
      'descriptor ceiling reached; accepting paused, new clients wait in the listen queue',
    );
  }

  private resume(): void {
    this.paused = false;
    for (const f of this.fronts) f.resume();
    this.pausedGauge?.set(0);
    this.log.info({ clients: this.inUse, ceiling: this.ceiling }, 'accepting resumed');
  }
}
