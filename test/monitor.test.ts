import t from 'tap';
import type { MirrorConfig } from '../src/config/types.js';
import { MirrorMonitor, type ProbeRunner } from '../src/health/monitor.js';
import type { ProbeResult } from '../src/health/types.js';

/** A prober whose answers the test sets per member; counts probes and overlap. */
class FakeProber implements ProbeRunner {
  answers = new Map<string, ProbeResult['kind']>();
  probes = new Map<string, number>();
  inFlight = new Map<string, number>();
  maxOverlap = 0;
  delayMs = 2;
  async probe(target: { urls: readonly string[] }): Promise<ProbeResult> {
    const name = new URL(target.urls[0]!).hostname;
    this.probes.set(name, (this.probes.get(name) ?? 0) + 1);
    const n = (this.inFlight.get(name) ?? 0) + 1;
    this.inFlight.set(name, n);
    this.maxOverlap = Math.max(this.maxOverlap, n);
    await new Promise((r) => setTimeout(r, this.delayMs));
    this.inFlight.set(name, n - 1);
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
    proxy: { connectTimeoutMs: 100, holdTimeoutMs: 100, maxHeld: 10, maxConnections: 0, idleTimeoutMs: 0 },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('no decision before the first answers; then the primary; never overlapping probes', async (t) => {
  const p = new FakeProber();
  p.answers.set('a', 'primary');
  const m = new MirrorMonitor(mirror(40, 10), p);
  t.teardown(() => m.stop());
  t.same(m.decision, { primary: null, accepting: false, conflict: [] }, 'fresh: nothing routable');
  const decisions: Array<string | null> = [];
  m.on('decision', (c) => decisions.push(c.next.primary));
  m.start();
  t.throws(() => m.start(), 'start twice is an error');
  await sleep(300);
  t.same(decisions, ['a']);
  t.equal(p.maxOverlap, 1, 'probes of one member never overlap');
  m.stop();
  m.stop();
});

t.test('fast interval while there is no primary, steady once there is one', async (t) => {
  const p = new FakeProber();
  const m = new MirrorMonitor(mirror(300, 10), p);
  t.teardown(() => m.stop());
  m.start();
  await sleep(300);
  const fastCount = p.count('a');
  t.ok(fastCount >= 8, `probed fast with no primary (${fastCount} probes in 300 ms)`);
  p.answers.set('a', 'primary');
  await sleep(100);
  const before = p.count('a');
  await sleep(400);
  const steadyCount = p.count('a') - before;
  t.ok(steadyCount <= 3, `probed at the steady interval with a primary (${steadyCount} in 400 ms)`);
});

t.test('a demoted primary makes the others be probed at once, and kick() probes everyone', async (t) => {
  const p = new FakeProber();
  p.answers.set('a', 'primary');
  const m = new MirrorMonitor(mirror(10_000, 10_000), p);
  t.teardown(() => m.stop());
  m.start();
  await sleep(50);
  t.equal(m.decision.primary, 'a');
  const b0 = p.count('b');
  m.kick();
  await sleep(50);
  t.equal(p.count('b'), b0 + 1, 'kick probed b immediately despite a 10 s interval');
  const roles: string[] = [];
  m.on('role', (c) => roles.push(`${c.member}:${c.from}->${c.to}`));
  p.answers.set('a', 'not_primary');
  p.answers.set('b', 'primary');
  m.kick();
  await sleep(20);
  m.kick(); // a second kick right away is coalesced, not a probe storm
  await sleep(80);
  t.ok(roles.includes('a:primary->backup'));
  t.ok(roles.includes('b:backup->primary'));
  t.equal(m.decision.primary, 'b');
});

t.test('seeded health survives a rebuild: the decision in force stays in force', async (t) => {
  const p = new FakeProber();
  p.answers.set('a', 'primary');
  const m1 = new MirrorMonitor(mirror(20, 10), p);
  m1.start();
  await sleep(60);
  m1.stop();
  const seed = new Map(m1.members().map((s) => [s.config.name, { health: s.health, admin: s.admin }]));
  const m2 = new MirrorMonitor(mirror(20, 10), p, seed);
  t.same(m2.decision, { primary: 'a', accepting: true, conflict: [] }, 'routable from the first instant');
});
