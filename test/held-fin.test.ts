// A client given back by a member that reset it (re-held), whose FIN comes while it waits:
// dropped at once and counted as left_while_held, never kept until its hold timeout.
import net from 'node:net';
import type Tap from 'tap';
import t from 'tap';
import { withBalancer, yamlFor } from './helpers/balancer.js';
import { eventually, readUpTo, withSim } from './helpers/sim.js';

/** A member port that accepts and resets at once, before its first byte (a dying primary). */
async function resettingBackend(t: Tap.Test): Promise<{ port: number; accepted: () => number }> {
  let accepted = 0;
  const srv = net.createServer((s) => {
    accepted++;
    s.on('error', () => undefined);
    s.resetAndDestroy();
  });
  srv.listen(0, '127.0.0.1');
  await new Promise((r) => srv.once('listening', r));
  t.teardown(() => srv.close());
  return { port: (srv.address() as net.AddressInfo).port, accepted: () => accepted };
}

async function heldClientWithFin(t: Tap.Test): Promise<void> {
  const a = await withSim(t, { name: 'ap1a', role: 'primary' });
  const backend = await resettingBackend(t);
  const lb = await withBalancer(
    t,
    yamlFor(
      { ap1: [{ name: 'ap1a', port: backend.port, webPort: a.webPort }] },
      'proxy:\n  hold_timeout: 60s',
    ),
  );
  t.ok(await eventually(() => lb.daemon.snapshots().get('ap1')!.decision.primary === 'ap1a'), 'ap1a primary');
  const c = net.connect({ host: '127.0.0.1', port: lb.port('ap1') });
  c.on('error', () => undefined);
  c.write('hello');
  t.ok(await eventually(() => backend.accepted() >= 1), 'linked to the member, which reset it');
  // No primary any more: the client given back waits with nothing to wake it but its hold timeout.
  await a.setRole('backup');
  t.ok(await eventually(() => lb.daemon.snapshots().get('ap1')!.decision.primary === null), 'no primary');
  t.ok(await eventually(() => lb.daemon.snapshots().get('ap1')!.held === 1), 'the client is held again');
  c.end();
  const r = await readUpTo(c, 1, 10_000);
  t.ok(r.ended, 'its FIN ends it at once, long before its 60 s hold timeout');
  t.ok(await eventually(() => lb.daemon.snapshots().get('ap1')!.held === 0), 'out of the queue');
  const errors = await lb.daemon.metrics.connectionErrors.get();
  const by = (reason: string): number => errors.values.find((v) => v.labels.reason === reason)?.value ?? 0;
  t.equal(by('left_while_held'), 1, 'counted as left_while_held');
  t.equal(by('hold_timeout'), 0, 'not as a hold timeout');
}

t.test('a re-held client whose FIN comes while it waits is dropped at once', heldClientWithFin);
