/**
 * The hold-queue case of issue 10, shared by the fast and the plain data path
 * (test/hold-leave.test.ts, test/hold-leave-plain.test.ts): clients held by a mirror without
 * a primary, some of which leave (FIN or RST) before a primary comes. Those leave the queue
 * at once and are counted apart; the release log counts only the clients really released,
 * and each of those is served by the new primary with the bytes it sent while held.
 */
import net from 'node:net';
import type Tap from 'tap';
import { fastPathDefault } from '../../src/proxy/fastpath.js';
import { withBalancer, yamlFor } from './balancer.js';
import { eventually, readGreeting, readUpTo, withSim } from './sim.js';

function open(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => resolve(s));
    s.once('error', reject);
  });
}

export async function heldClientsThatLeave(t: Tap.Test, expectFast: boolean): Promise<void> {
  const a = await withSim(t, { name: 'ap1a', role: 'backup' });
  const lb = await withBalancer(t, yamlFor({ ap1: [a] }, 'proxy:\n  hold_timeout: 20s'));
  t.equal(fastPathDefault(), expectFast, `the ${expectFast ? 'fast' : 'plain'} data path`);
  const held = (): number => lb.daemon.snapshots().get('ap1')!.held;
  const port = lb.port('ap1');
  const STAY = 4;
  const FIN = 3;
  const RST = 3;
  const clients = await Promise.all(Array.from({ length: STAY + FIN + RST }, () => open(port)));
  for (const c of clients) c.on('error', () => undefined);
  t.ok(await eventually(() => held() === clients.length, 5000), `${clients.length} clients held`);
  // Those that stay send a line while held: it must reach the primary first and in order.
  const stay = clients.slice(0, STAY);
  stay.forEach((c, i) => c.write(`hello ${i}\n`));
  for (const c of clients.slice(STAY, STAY + FIN)) c.end();
  for (const c of clients.slice(STAY + FIN)) c.resetAndDestroy();
  t.ok(await eventually(() => held() === STAY, 5000), 'the clients that left are out of the queue at once');

  await a.setRole('primary');
  for (const [i, c] of stay.entries()) {
    t.equal(await readGreeting(c), 'ap1a', `held client ${i} is served by the new primary`);
    const echo = await readUpTo(c, `hello ${i}\n`.length, 5000);
    t.equal(echo.data.toString(), `hello ${i}\n`, `held client ${i}: the bytes sent while held arrive`);
    c.destroy();
  }
  const released = lb.logs.records.filter((r) => r.msg === 'held clients released');
  t.equal(released.length, 1, 'one release');
  t.match(
    released[0],
    { clients: STAY, left_while_held: FIN + RST },
    'only the clients really released are counted',
  );
  const errors = await lb.daemon.metrics.connectionErrors.get();
  const left = errors.values.find((v) => v.labels.reason === 'left_while_held')?.value;
  t.equal(left, FIN + RST, 'mirrorlb_connection_errors_total{reason="left_while_held"}');
}
