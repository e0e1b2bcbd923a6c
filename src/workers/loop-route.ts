import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { MirrorConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import type { Route } from '../mirror/mirror.js';
import { NO_EFFECT, PrimaryPlan, type RouteEffect, type RoutePlan } from '../mirror/plan.js';
import type { RouterOwner } from '../mirror/router.js';
import type { LoopMetrics } from './loop-metrics.js';
import type { LoopClient, LoopSet } from './loops.js';
import type { FromLoop, MirrorPart } from './protocol.js';
import { MemberSlots, SharedMirrorState } from './shared-state.js';

/** Acks of one decision: when it was stored, and what the loops did with it so far. */
interface Pending {
  readonly generation: number;
  readonly storedAt: number;
  acks: number;
  last: number;
  cut: number;
  moved: number;
  released: number;
}

/**
 * One mirror's route, served by every data-plane loop: what the mirror (mirror.ts) calls a
 * router, on the control plane. A decision is stored in the mirror's shared routing state
 * first (every loop's next pick follows it), then sent to every loop to act on (cuts,
 * releases); the loops' answers are added up and logged once the last one acted, with how
 * long that took. Counts (`held`, sessions) are the sum of every loop's row.
 */
export class LoopRoute implements Route, LoopClient {
  private readonly state = new SharedMirrorState();
  private readonly memberSlots = new MemberSlots();
  private slots: ReadonlyMap<string, number>;
  private port: number | null = null;
  private serving = false;
  private pending: Pending | null = null;
  fastAccept: boolean | null = null;

  constructor(
    private config: MirrorConfig,
    plan: RoutePlan,
    private readonly loops: LoopSet,
    private readonly owner: RouterOwner,
    private readonly metrics: LoopMetrics,
    private readonly log: Logger,
  ) {
    this.slots = this.memberSlots.assign(config.members.map((m) => m.name));
    this.store(plan);
  }

  get name(): string {
    return this.config.name;
  }

  /** Binds on every loop (the first picks the port when it is 0), or on none: a failure closes the others. */
  async listen(): Promise<void> {
    let port = this.config.listen.port;
    for (let i = 0; i < this.loops.count; i++) {
      const a = await this.bindOn(i, port);
      if (a?.t !== 'bound') {
        for (let j = 0; j < i; j++) this.loops.post(j, { t: 'close', mirror: this.name });
        const err = new Error(a?.t === 'failed' ? a.message : `data-plane loop ${i} died while binding`);
        throw Object.assign(err, { code: a?.t === 'failed' ? a.code : undefined });
      }
      port = a.port;
      if (i === 0) this.fastAccept = a.fastAccept;
    }
    this.port = port;
  }

  serve(): void {
    this.serving = true;
    this.loops.register(this);
    this.loops.broadcast({ t: 'serve', mirror: this.name });
  }

  address(): net.AddressInfo | null {
    if (this.port === null) return null;
    const host = this.config.listen.host;
    return { address: host, port: this.port, family: host.includes(':') ? 'IPv6' : 'IPv4' };
  }

  apply(next: RoutePlan): RouteEffect {
    const generation = this.store(next);
    const reasons = next instanceof PrimaryPlan ? next.decision.cutReason : {};
    this.loops.broadcast({ t: 'apply', mirror: this.name, generation, reasons });
    return NO_EFFECT;
  }

  update(config: MirrorConfig, plan: RoutePlan): RouteEffect {
    this.config = config;
    this.slots = this.memberSlots.assign(config.members.map((m) => m.name));
    const generation = this.store(plan);
    this.loops.broadcast({ t: 'update', mirror: this.name, generation, part: this.part() });
    return NO_EFFECT;
  }

  close(): void {
    this.serving = false;
    this.loops.broadcast({ t: 'close', mirror: this.name });
  }

  async drain(timeoutMs: number): Promise<void> {
    const all = [...Array(this.loops.count).keys()];
    await Promise.all(
      all.map((i) => this.loops.request(i, (id) => ({ t: 'drain', id, mirror: this.name, timeoutMs }))),
    );
    this.loops.forget(this.name);
  }

  /** Every loop cuts; the sessions are counted by each loop's own metrics and logs, not returned. */
  cutAll(reason: 'removed' | 'shutdown'): number {
    for (let i = 0; i < this.loops.count; i++)
      void this.loops.request(i, (id) => ({ t: 'cut', id, mirror: this.name, reason }));
    if (reason === 'removed') this.loops.forget(this.name);
    return 0;
  }

  heldCount(): number {
    return this.state.total('held', this.loops.count);
  }

  sessionCount(member?: string): number {
    const slots = member === undefined ? [...this.slots.values()] : [this.slots.get(member) ?? -1];
    return slots.reduce((n, s) => (s < 0 ? n : n + this.state.linked(s, this.loops.count)), 0);
  }

  /** The loops add their bytes when the metrics are asked of them. */
  flushBytes(): void {}

  /** Connections each loop accepted for this mirror. */
  accepted(): number[] {
    return [...Array(this.loops.count).keys()].map((i) => this.state.loop(i).accepted);
  }

  /** LoopClient: one loop acted on a decision; the last one's answer is logged with the lag. */
  applied(m: FromLoop & { t: 'applied' }): void {
    const p = this.pending;
    if (p === null || p.generation !== m.generation) return;
    p.acks++;
    p.last = Math.max(p.last, m.at);
    p.cut += m.effect.cut;
    p.moved += m.effect.moved;
    p.released += m.effect.released;
    if (p.acks < this.loops.count) return;
    this.pending = null;
    const lagMs = Math.max(0, p.last - p.storedAt);
    this.metrics.applyLag.observe({ mirror: this.name }, lagMs / 1000);
    const fields = { generation: p.generation, loops: p.acks, lag_ms: Number(lagMs.toFixed(3)) };
    if (p.cut + p.moved + p.released > 0 || lagMs >= 1)
      this.log.info(
        { ...fields, cut: p.cut, moved: p.moved, released: p.released },
        'decision acted on by every loop',
      );
  }

  connectFailed(member: string): void {
    this.owner.connectFailed(member);
  }

  clearLoop(loop: number): void {
    this.state.clearLoop(loop);
  }

  async restore(loop: number): Promise<void> {
    if (!this.serving || this.port === null) return;
    const a = await this.bindOn(loop, this.port);
    if (a?.t !== 'bound') {
      this.log.error(
        { loop, err: a?.t === 'failed' ? a.message : 'died' },
        'replacement loop could not bind',
      );
      return;
    }
    this.loops.post(loop, { t: 'serve', mirror: this.name });
    this.loops.post(loop, { t: 'apply', mirror: this.name, generation: this.state.generation, reasons: {} });
  }

  /** The decision into shared memory, before anything else is done about it. */
  private store(plan: RoutePlan): number {
    if (!(plan instanceof PrimaryPlan))
      throw new Error('a route served by several loops takes primary plans');
    const generation = this.state.write(plan.decision, (m) => this.slots.get(m) ?? -1);
    const storedAt = performance.timeOrigin + performance.now();
    this.pending = { generation, storedAt, acks: 0, last: storedAt, cut: 0, moved: 0, released: 0 };
    return generation;
  }

  private bindOn(loop: number, port: number): ReturnType<LoopSet['request']> {
    return this.loops.request(loop, (id) => ({ t: 'bind', id, part: this.part(), port }));
  }

  private part(): MirrorPart {
    return { config: this.config, state: this.state.buffer, slots: [...this.slots] };
  }
}
