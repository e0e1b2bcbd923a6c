import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { MirrorConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import type { Route } from '../mirror/mirror.js';
import { newEffect, type MutableEffect, type PrimaryPlan, type RouteEffect } from '../mirror/plan.js';
import type { RouterOwner } from '../mirror/router.js';
import type { LoopMetrics } from './loop-metrics.js';
import type { LoopClient, LoopSet } from './loops.js';
import type { FromLoop, MirrorPart } from './protocol.js';
import { MemberSlots, SharedMirrorState } from './shared-state.js';

/** Acks of one decision: when it was stored, which loops acted on it, what they did in sum. */
interface Pending {
  readonly storedAt: number;
  /** Loops that acted on it, or died (a dead loop's clients are gone: nothing left to do). */
  readonly done: Set<number>;
  last: number;
  readonly effect: MutableEffect;
  readonly settle: (effect: RouteEffect) => void;
}

/**
 * One mirror's route, served by every data-plane loop: what the mirror (mirror.ts) calls a
 * router, on the control plane. A decision is stored in the mirror's shared routing state
 * first (every loop's next pick follows it), then sent to every loop to act on (cuts,
 * releases); the loops' answers are added up, logged with how long the last one took, and
 * are what `apply` resolves to (so the mirror reports real cut counts). Loops act on
 * messages in order, so decisions settle in the order they were stored. Counts (`held`, sessions) are the sum of every loop's row.
 */
export class LoopRoute implements Route, LoopClient {
  private readonly state = new SharedMirrorState();
  private readonly memberSlots = new MemberSlots();
  private slots: ReadonlyMap<string, number>;
  private port: number | null = null;
  private serving = false;
  private readonly pending = new Map<number, Pending>();
  fastAccept: boolean | null = null;

  constructor(
    private config: MirrorConfig,
    plan: PrimaryPlan,
    private readonly loops: LoopSet,
    private readonly owner: RouterOwner,
    private readonly metrics: LoopMetrics,
    private readonly log: Logger,
  ) {
    this.slots = this.memberSlots.assign(config.members.map((m) => m.name));
    this.state.write(plan.decision, (m) => this.slots.get(m) ?? -1);
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

  /** Resolves to what every loop did, added up, once the last one acted on it. */
  apply(next: PrimaryPlan): Promise<RouteEffect> {
    return this.store(next, (generation) => {
      const reasons = next.decision.cutReason;
      this.loops.broadcast({ t: 'apply', mirror: this.name, generation, reasons });
    });
  }

  update(config: MirrorConfig, plan: PrimaryPlan): Promise<RouteEffect> {
    this.config = config;
    this.slots = this.memberSlots.assign(config.members.map((m) => m.name));
    return this.store(plan, (generation) =>
      this.loops.broadcast({ t: 'update', mirror: this.name, generation, part: this.part() }),
    );
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
    // Nothing more comes from the loops about this mirror: what they did so far is the effect.
    for (const [generation, p] of this.pending) this.settle(generation, p);
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

  /** Per loop: this mirror's client connections open now (held, connecting or linked) and accepted so far. */
  perLoop(): Array<{ open: number; accepted: number }> {
    return [...Array(this.loops.count).keys()].map((i) => {
      const l = this.state.loop(i);
      return { open: l.active, accepted: l.accepted };
    });
  }

  /** LoopClient: one loop acted on a decision; once every loop has, it is settled. */
  applied(m: FromLoop & { t: 'applied' }, loop: number): void {
    const p = this.pending.get(m.generation);
    if (p === undefined || p.done.has(loop)) return;
    p.done.add(loop);
    p.last = Math.max(p.last, m.at);
    p.effect.cut += m.effect.cut;
    p.effect.moved += m.effect.moved;
    p.effect.released += m.effect.released;
    for (const [member, n] of Object.entries(m.effect.cutBy))
      p.effect.cutBy[member] = (p.effect.cutBy[member] ?? 0) + n;
    if (p.done.size >= this.loops.count) this.settle(m.generation, p);
  }

  /** The last loop acted: the lag observed and logged, the effect handed to the mirror. */
  private settle(generation: number, p: Pending): void {
    this.pending.delete(generation);
    const lagMs = Math.max(0, p.last - p.storedAt);
    const { cut, moved, released } = p.effect;
    if (p.done.size > 0) this.metrics.applyLag.observe({ mirror: this.name }, lagMs / 1000);
    const fields = { generation, loops: p.done.size, lag_ms: Number(lagMs.toFixed(3)) };
    if (cut + moved + released > 0 || lagMs >= 1)
      this.log.info({ ...fields, cut, moved, released }, 'decision acted on by every loop');
    p.settle(p.effect);
  }

  connectFailed(member: string): void {
    this.owner.connectFailed(member);
  }

  clearLoop(loop: number): void {
    this.state.clearLoop(loop);
    for (const [generation, p] of this.pending) {
      p.done.add(loop);
      if (p.done.size >= this.loops.count) this.settle(generation, p);
    }
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

  /**
   * The decision into shared memory before anything else is done about it (every loop's next
   * pick follows it), then `send` tells the loops to act on it; resolves with what they did.
   */
  private store(plan: PrimaryPlan, send: (generation: number) => void): Promise<RouteEffect> {
    const generation = this.state.write(plan.decision, (m) => this.slots.get(m) ?? -1);
    const storedAt = performance.timeOrigin + performance.now();
    return new Promise((settle) => {
      this.pending.set(generation, {
        storedAt,
        done: new Set(),
        last: storedAt,
        effect: newEffect(),
        settle,
      });
      send(generation);
    });
  }

  private bindOn(loop: number, port: number): ReturnType<LoopSet['request']> {
    return this.loops.request(loop, (id) => ({ t: 'bind', id, part: this.part(), port }));
  }

  private part(): MirrorPart {
    return { config: this.config, state: this.state.buffer, slots: [...this.slots] };
  }
}
