import t from 'tap';
import type { MirrorConfig } from '../src/config/types.js';
import {
  MirrorMonitor,
  type Clock,
  type MonitorChange,
  type MonitorSink,
  type ProbeRunner,
} from '../src/health/monitor.js';

const NO_SINK: MonitorSink = { probed: () => undefined, changed: () => undefined };
import type { ProbeResult } from '../src/health/types.js';

/**
 * A fake scheduler: time moves only when the test says so, and timers fire in order. After
 * each timer the probes it started are let finish (the fake prober answers at once), so a
 * test reads as "at this time, this happened" with no wall-clock sleep.
 */
class FakeClock implements Clock {
  private t = 0;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimeout(id: unknown): void {
    this.timers.delete(id as number);
  }
  random(): number {
    return 0.5;
  }
  /** Fires the earliest timer (moving time to it); false when none is pending. */
  async fireNext(): Promise<boolean> {
    let next: [number, { at: number; fn: () => void }] | undefined;
    for (const e of this.timers) if (!next || e[1].at < next[1].at) next = e;
    if (!next) return false;
    this.timers.delete(next[0]);
    this.t = Math.max(this.t, next[1].at);
    next[1].fn();
    await settle();
    return true;
  }
  /** Moves time forward by `ms`, firing every timer due on the way. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      let due = Infinity;
      for (const e of this.timers.values()) due = Math.min(due, e.at);
      if (due > end) break;
      await this.fireNext();
    }
    this.t = end;
  }
  pending(): number {
    return this.timers.size;
  }
}

/** Lets every probe already answered run to its end (promise callbacks, then one more turn). */
const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A prober whose answers the test sets per member; counts probes and overlap; `gate` holds answers back. */
class FakeProber implements ProbeRunner {
  answers = new Map<string, ProbeResult['kind']>();
  probes = new Map<string, number>();
  inFlight = new Map<string, number>();
  maxOverlap = 0;
  gate: Promise<void> | null = null;
  async probe(target: { urls: readonly string[] }): Promise<ProbeResult> {
    const name = new URL(target.urls[0]!).hostname;
    this.probes.set(name, (this.probes.get(name) ?? 0) + 1);
    const n = (this.inFlight.get(name) ?? 0) + 1;
    this.inFlight.set(name, n);
    this.maxOverlap = Math.max(this.maxOverlap, n);
    if (this.gate) await this.gate;
    this.inFlight.set(name, (this.inFlight.get(name) ?? 1) - 1);
    const kind = this.answers.get(name) ?? 'not_primary';
    switch (kind) {
      case 'primary':
        return { kind, status: 200, latencyMs: 1, url: target.urls[0]! };
      case 'not_primary':
        return { kind, status: 503, latencyMs: 1, url: target.urls[0]! };
      case 'timeout':
        return { kind, latencyMs: 1, superserver: true };
      case 'error':
        return { kind, code: 'ECONNREFUSED', latencyMs: 1, superserver: false };
    }
  }
  count(name: string): number {
    return this.probes.get(name) ?? 0;
  }
}

function mirror(intervalMs: number, fastIntervalMs: number, fastWindowMs = 0): MirrorConfig {
  return {
    name: 'm',
    listen: { host: '127.0.0.1', port: 0 },
    onConflict: 'newest',
    members: ['a', 'b'].map((n) => ({
      name: n,
      address: { host: '127.0.0.1', port: 1 },
      check: [`http://${n}/`],
    })),
    health: {
      intervalMs,
      fastIntervalMs,
      fastWindowMs,
      timeoutMs: 100,
      rise: 1,
      fall: 2,
      expectStatus: 200,
      expectBody: null,
      maxBodyBytes: 100,
      jitter: 0.1,
    },
    proxy: {
      connectTimeoutMs: 100,
      holdTimeoutMs: 100,
      maxHeld: 10,
      maxConnections: 0,
      maxConnecting: 0,
      idleTimeoutMs: 0,
    },
  };
}

function setup(t: Tap.Test, cfg: MirrorConfig) {
  const clock = new FakeClock();
  const p = new FakeProber();
  const changes: MonitorChange[] = [];
  const m = new MirrorMonitor(
    cfg,
    p,
    { probed: () => undefined, changed: (c) => changes.push(c) },
    { clock },
  );
  t.teardown(() => m.stop());
  return { clock, p, m, changes };
}

t.test('no decision before the first answers; then the primary, in one change with its role', async (t) => {
  const { p, m, changes } = setup(t, mirror(40, 10));
  p.answers.set('a', 'primary');
  t.same(
    m.decision,
    {
      primary: null,
      accepting: false,
      conflict: [],
      fallback: null,
      cutReason: { a: 'demoted', b: 'demoted' },
    },
    'fresh: nothing routable',
  );
  m.start();
  t.throws(() => m.start(), 'start twice is an error');
  await settle();
  t.equal(changes.length, 2, 'a: unknown -> primary (with the decision), b: unknown -> backup');
  t.same(changes[0]?.role, { member: 'a', from: 'unknown', to: 'primary', result: 'primary' });
  t.equal(changes[0]?.decision?.next.primary, 'a', 'the decision comes in the same change as the role');
  t.same(changes[1]?.role?.to, 'backup');
  t.equal(changes[1]?.decision, null, 'b turning backup changes no routing');
  m.stop();
  m.stop();
});

t.test('probes of one member never overlap: a kick during a probe probes again after it', async (t) => {
  const { p, m, clock } = setup(t, mirror(10_000, 10_000));
  let open!: () => void;
  p.gate = new Promise((r) => (open = r));
  m.start();
  await settle();
  t.equal(p.count('a'), 1, 'first probe under way');
  m.kick();
  await settle();
  t.equal(p.count('a'), 1, 'no second probe while the first is in flight');
  p.gate = null;
  open();
  await settle();
  await settle();
  t.equal(p.count('a'), 2, 'the kick is served once the probe ended');
  t.equal(p.maxOverlap, 1, 'never two probes of one member at once');
  t.ok(clock.pending() >= 2, 'each member has its next probe scheduled');
});

t.test('fast interval while there is no primary, steady once there is one', async (t) => {
  const { p, m, clock } = setup(t, mirror(300, 10));
  m.start();
  await settle();
  await clock.advance(300);
  // 10 ms less 5% jitter (random() is 0.5, jitter 0.1): a probe every 9.5 ms.
  t.equal(p.count('a'), 1 + Math.floor(300 / 9.5), 'probed at the fast interval with no primary');
  p.answers.set('a', 'primary');
  await clock.advance(10);
  t.equal(m.decision.primary, 'a');
  const before = p.count('a');
  await clock.advance(1000);
  t.equal(
    p.count('a') - before,
    Math.floor(1000 / 285),
    'probed at the steady interval (285 ms) with a primary',
  );
});

t.test('a demoted primary makes the others be probed at once', async (t) => {
  const { p, m, clock } = setup(t, mirror(10_000, 10_000));
  p.answers.set('a', 'primary');
  m.start();
  await settle();
  t.equal(m.decision.primary, 'a');
  const b0 = p.count('b');
  p.answers.set('a', 'not_primary');
  p.answers.set('b', 'primary');
  // Only a's timer fires (it was scheduled first); b's would be due 9.5 s from now.
  await clock.fireNext();
  t.equal(p.count('b'), b0 + 1, 'b probed as soon as a stopped being primary');
  t.equal(m.decision.primary, 'b');
});

t.test('kick() probes everyone; a second kick right away is coalesced', async (t) => {
  const { p, m, clock } = setup(t, mirror(10_000, 10_000));
  p.answers.set('a', 'primary');
  m.start();
  await settle();
  const [a0, b0] = [p.count('a'), p.count('b')];
  m.kick();
  await settle();
  t.same([p.count('a'), p.count('b')], [a0 + 1, b0 + 1], 'kick probed both despite a 10 s interval');
  m.kick();
  await settle();
  t.same([p.count('a'), p.count('b')], [a0 + 1, b0 + 1], 'a second kick at the same instant probes nothing');
  await clock.advance(5);
  m.kick();
  await settle();
  t.same(
    [p.count('a'), p.count('b')],
    [a0 + 1, b0 + 1],
    'nor one 5 ms later (kicks closer than 10 ms are one)',
  );
  await clock.advance(5);
  m.kick();
  await settle();
  t.same([p.count('a'), p.count('b')], [a0 + 2, b0 + 2], 'a kick 10 ms after the first probes again');
});

t.test('setAdmin returns the decision change and does not emit it', async (t) => {
  const { p, m, changes } = setup(t, mirror(10_000, 10_000));
  p.answers.set('a', 'primary');
  m.start();
  await settle();
  const seen = changes.length;
  const c = m.setAdmin('a', 'disabled');
  t.equal(c?.prev.primary, 'a');
  t.equal(c?.next.primary, null);
  t.equal(c?.next.cutReason.a, 'disabled', 'the decision says why a is cut');
  t.equal(changes.length, seen, 'not emitted: the caller applies it');
  t.equal(m.setAdmin('b', 'draining'), null, 'a backup draining changes no routing');
  t.equal(m.setAdmin('nope', 'disabled'), null);
});

t.test('seeded health survives a rebuild: the decision in force stays in force', async (t) => {
  const { p, m } = setup(t, mirror(20, 10));
  p.answers.set('a', 'primary');
  m.start();
  await settle();
  m.stop();
  const seed = new Map(m.members().map((s) => [s.config.name, { health: s.health, admin: s.admin }]));
  const m2 = new MirrorMonitor(mirror(20, 10), p, NO_SINK, { seed, clock: new FakeClock() });
  t.same(
    m2.decision,
    { primary: 'a', accepting: true, conflict: [], fallback: null, cutReason: { b: 'demoted' } },
    'routable from the first instant',
  );
});

t.test(
  'fencing: a suspect primary is fenced at fence_after; it is never the fallback after that',
  async (t) => {
    const cfg = mirror(40, 10);
    const { clock, p, m } = setup(t, { ...cfg, health: { ...cfg.health, fenceAfterMs: 1000 } });
    p.answers.set('a', 'primary');
    m.start();
    await clock.advance(50);
    t.match(m.decision, { primary: 'a', accepting: true });
    // a hangs (its port still accepts): suspect, clients held, a is the hold-timeout fallback.
    p.answers.set('a', 'timeout');
    await clock.advance(100);
    t.match(m.decision, { primary: 'a', accepting: false, fallback: 'a' });
    await clock.advance(700);
    t.equal(m.members()[0]!.health.role, 'suspect', 'still suspect before fence_after');
    await clock.advance(400);
    t.match(m.decision, { primary: null, accepting: false, fallback: null }, 'fenced: no role, no fallback');
    t.match(m.members()[0]!.health, { role: 'unreachable', fenced: true });
    // Answering primary again is a fresh claim.
    p.answers.set('a', 'primary');
    await clock.advance(50);
    t.match(m.decision, { primary: 'a', accepting: true });
    t.equal(m.members()[0]!.health.fenced, false);
  },
);
