/**
 * Takeover, not conflict (contract rule 6, issue 10): the demo's switchover (old primary set
 * to backup, then the other member to primary, as the demo suggests) is an ordinary
 * failover every time, even when the new primary is seen before the old one's next check.
 * A forced real conflict (both members answering primary for seconds) is still logged as an
 * error and counted.
 */
import t from 'tap';
import { withBalancer, yamlFor } from './helpers/balancer.js';
import { connect, eventually, readGreeting, withSim } from './helpers/sim.js';

async function served(port: number): Promise<string> {
  const s = await connect(port);
  try {
    return await readGreeting(s);
  } finally {
    s.destroy();
  }
}

t.test('switchovers are takeovers: failovers counted, no conflict logged', async (t) => {
  const a = await withSim(t, { name: 'ap1a', role: 'primary' });
  const b = await withSim(t, { name: 'ap1b', role: 'backup' });
  const lb = await withBalancer(t, yamlFor({ ap1: [a, b] }));
  const port = lb.port('ap1');
  t.equal(await served(port), 'ap1a');
  const SWITCHOVERS = 7;
  let [from, to] = [a, b];
  for (let i = 0; i < SWITCHOVERS; i++) {
    await from.setRole('backup');
    await to.setRole('primary');
    const want = to.name;
    t.ok(
      await eventually(() => {
        const d = lb.daemon.snapshots().get('ap1')!.decision;
        return d.primary === want && d.accepting;
      }, 5000),
      `switchover ${i + 1}: ${want} takes over`,
    );
    t.equal(await served(port), want, `switchover ${i + 1}: new clients reach ${want}`);
    [from, to] = [to, from];
  }
  const conflicts = (await lb.daemon.metrics.primaryConflicts.get()).values[0]?.value ?? 0;
  const failovers = (await lb.daemon.metrics.failovers.get()).values[0]?.value ?? 0;
  t.equal(conflicts, 0, 'mirrorlb_primary_conflicts_total stays 0');
  t.equal(failovers, SWITCHOVERS, 'every switchover counted as a failover');
  t.strictSame(
    lb.logs.records.filter((r) => r.msg === 'two members claim primary'),
    [],
    'no conflict logged',
  );
  t.equal(
    lb.logs.records.filter((r) => r.msg === 'failover').length,
    SWITCHOVERS,
    'each logged as a failover',
  );
  const cutConflict = (await lb.daemon.metrics.sessionsCut.get()).values.filter(
    (v) => v.labels.reason === 'conflict',
  );
  t.ok(
    cutConflict.every((v) => v.value === 0),
    'no session cut for a conflict',
  );
});

t.test('a forced real conflict (both answer primary for seconds) is still an error, counted', async (t) => {
  const a = await withSim(t, { name: 'ap1a', role: 'primary' });
  const b = await withSim(t, { name: 'ap1b', role: 'backup' });
  const lb = await withBalancer(t, yamlFor({ ap1: [a, b] }));
  const port = lb.port('ap1');
  t.equal(await served(port), 'ap1a');
  await b.setRole('primary');
  const logged = () => lb.logs.records.filter((r) => r.msg === 'two members claim primary');
  t.ok(await eventually(() => logged().length === 1, 5000), 'the conflict is logged');
  t.match(logged()[0], { level: 50, kept: 'ap1b', claimants: ['ap1b', 'ap1a'] }, 'as an error, newest kept');
  t.equal((await lb.daemon.metrics.primaryConflicts.get()).values[0]?.value, 1, 'counted once');
  t.equal(await served(port), 'ap1b', 'newest wins (on_conflict: newest)');
  // Many more rounds of both answering primary: still one conflict, not one per probe.
  const seen = new Set<number>();
  const ap1a = () => lb.daemon.snapshots().get('ap1')!.members[0]!.health;
  t.ok(
    await eventually(
      () => {
        const at = ap1a().lastCheckAt;
        if (at !== null && ap1a().role === 'primary') seen.add(at);
        return seen.size >= 20;
      },
      15_000,
      10,
    ),
    'twenty more rounds of ap1a answering primary',
  );
  t.equal((await lb.daemon.metrics.primaryConflicts.get()).values[0]?.value, 1, 'still counted once');
  await a.setRole('backup');
  t.ok(
    await eventually(() => lb.daemon.snapshots().get('ap1')!.decision.conflict.length === 0, 5000),
    'resolved when ap1a steps down',
  );
  t.equal((await lb.daemon.metrics.primaryConflicts.get()).values[0]?.value, 1, 'still one conflict');
});
