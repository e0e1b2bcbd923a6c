// proxy.max_connecting over real sockets (issue 14): clients held while the mirror has no
// primary are all released at once to a member whose SuperServer port is frozen (a small
// listen backlog, nothing accepted), so every connect past the backlog stays in SYN_SENT and
// the balancer's connects in flight are counted from /proc/net/tcp. With the bound they
// never exceed max_connecting and the rest wait (accepted, counted toward max_connections, a
// waiter that leaves never connects); without it they all go out at once. Once the member
// thaws, every client still there is linked to it.
import net from 'node:net';
import t from 'tap';
import { withBalancer, yamlFor, type Balancer } from './helpers/balancer.js';
import { withFrozenBackend, type FrozenBackend } from './helpers/frozen-backend.js';
import { eventually, readGreeting, withSim } from './helpers/sim.js';

type Test = typeof t;

const CLIENTS = 30;
/** The frozen member queues BACKLOG + 1 connections, then drops SYNs. */
const BACKLOG = 2;
const MAX_CONNECTING = 4;

function open(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => resolve(s));
    s.once('error', reject);
  });
}

async function gauge(lb: Balancer, name: 'connectsWaiting' | 'held'): Promise<number> {
  const m = await lb.daemon.metrics[name].get();
  return m.values.find((v) => v.labels.mirror === 'ap1')?.value ?? 0;
}

/**
 * A balancer in front of one member (status page: a sim, SuperServer: the frozen backend)
 * and CLIENTS clients held by it; the member becomes primary, releasing them at once.
 * Connects in flight are sampled every few ms from then on (the largest count is returned
 * by `peak`); the SYN retransmits after the thaw take a second or more, so waits are long.
 */
async function storm(t: Test, maxConnecting: number, extra = '') {
  const backend: FrozenBackend = await withFrozenBackend(t, BACKLOG);
  const sim = await withSim(t, { name: 'ap1a', role: 'backup' });
  const lb = await withBalancer(
    t,
    yamlFor(
      { ap1: [{ name: 'ap1a', port: backend.port, webPort: sim.webPort }] },
      // Long enough that no connect times out and no client is given up while SYNs are retried;
      // and a check that a loaded machine (npm test runs files in parallel) answers in time:
      // a timed-out check makes the member unreachable, and its promotion late.
      `health:\n  timeout: 5s\nproxy:\n  max_connecting: ${maxConnecting}\n  connect_timeout: 30s\n  hold_timeout: 60s${extra}`,
    ),
  );
  const port = lb.port('ap1');
  const clients: net.Socket[] = [];
  for (let i = 0; i < CLIENTS; i++) clients.push(await open(port));
  // Each sends a line while held (replayed to the member): on a connect whose final ACK the
  // full backlog dropped, only a data segment gets the member to accept it, as with a real
  // client's first request; a client that sends nothing there would wait for the member.
  clients.forEach((c, i) => {
    c.on('error', () => undefined);
    c.write(`hello ${i}\n`);
  });
  t.ok(await eventually(async () => (await gauge(lb, 'held')) === CLIENTS, 5000), `${CLIENTS} clients held`);
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, backend.synSent())), 5);
  t.teardown(() => clearInterval(sampler));
  await sim.setRole('primary');
  return { backend, sim, lb, port, clients, peak: () => Math.max(peak, backend.synSent()) };
}

t.test('released clients connect at most max_connecting at a time, and all get linked', async (t) => {
  const { backend, lb, port, clients, peak } = await storm(
    t,
    MAX_CONNECTING,
    `\n  max_connections: ${CLIENTS}`,
  );
  t.ok(
    await eventually(() => backend.synSent() === MAX_CONNECTING, 30_000),
    `${MAX_CONNECTING} connects stuck in SYN_SENT: the gate's slots are all taken`,
  );
  const waiting = await gauge(lb, 'connectsWaiting');
  t.ok(
    waiting > 0 && waiting <= CLIENTS - MAX_CONNECTING - (BACKLOG + 1),
    `the others wait at the gate (mirrorlb_connects_waiting ${waiting})`,
  );
  t.equal(await gauge(lb, 'held'), 0, 'they are no longer held: they were released');

  // Waiters count toward max_connections like connecting clients: the next client is refused.
  const extra = await open(port);
  extra.on('error', () => undefined);
  await new Promise((resolve) => extra.once('close', resolve));
  const errors = await lb.daemon.metrics.connectionErrors.get();
  t.equal(
    errors.values.find((v) => v.labels.reason === 'max_connections')?.value,
    1,
    'a client beyond max_connections (waiters included) is closed at once',
  );

  // The last clients to arrive are surely still waiting: they leave, and never connect.
  const LEAVE = 5;
  const leaving = clients.splice(CLIENTS - LEAVE);
  for (const c of leaving) c.destroy();
  t.ok(
    await eventually(async () => (await gauge(lb, 'connectsWaiting')) === waiting - LEAVE, 5000),
    'waiters that leave are out of the queue at once',
  );

  backend.thaw();
  for (const [i, c] of clients.entries()) {
    t.equal(await readGreeting(c, 30_000), 'slow', `client ${i} is linked to the member`);
  }
  t.ok(peak() <= MAX_CONNECTING, `connects in flight never above ${MAX_CONNECTING} (peak ${peak()})`);
  t.equal(await gauge(lb, 'connectsWaiting'), 0, 'nobody waits any more');
  t.equal(backend.synSent(), 0, 'no connect in flight');
  t.equal(
    await backend.accepted(),
    CLIENTS - LEAVE,
    'one connect per client still there, none for those that left',
  );
  t.equal(lb.daemon.snapshots().get('ap1')!.sessions, CLIENTS - LEAVE, 'every one is a session');
  for (const c of clients) c.destroy();
});

t.test('max_connecting 0: every released client connects at once (what the bound prevents)', async (t) => {
  const { backend, clients } = await storm(t, 0);
  t.ok(
    await eventually(() => backend.synSent() > MAX_CONNECTING * 2, 30_000),
    'far more connects in flight than a bound of 4 allows',
  );
  backend.thaw();
  for (const [i, c] of clients.entries()) {
    t.equal(await readGreeting(c, 30_000), 'slow', `client ${i} is linked to the member`);
  }
  for (const c of clients) c.destroy();
});

t.test('waiters whose member loses the role are held again, then released to it', async (t) => {
  const { backend, sim, lb, clients, peak } = await storm(t, MAX_CONNECTING);
  t.ok(await eventually(() => backend.synSent() === MAX_CONNECTING, 30_000), 'the gate is full');
  t.ok((await gauge(lb, 'connectsWaiting')) > 0, 'clients wait at the gate');

  // Demoted: waiters, connects under way and the sessions the member never answered all go
  // where new clients go, which is the hold queue now.
  await sim.setRole('backup');
  t.ok(
    await eventually(async () => (await gauge(lb, 'held')) === CLIENTS, 10_000),
    'every client is held again',
  );
  t.equal(await gauge(lb, 'connectsWaiting'), 0, 'nobody waits at the gate for a member without the role');

  // Promoted again: the abandoned connects still hold their slots until they complete, so the
  // released clients wait for them; the thaw lets everything through.
  await sim.setRole('primary');
  t.ok(await eventually(async () => (await gauge(lb, 'held')) === 0, 30_000), 'released again');
  t.ok((await gauge(lb, 'connectsWaiting')) > 0, 'and waiting for the slots of the abandoned connects');
  backend.thaw();
  for (const [i, c] of clients.entries()) {
    t.equal(await readGreeting(c, 30_000), 'slow', `client ${i} is linked to the member`);
  }
  t.ok(peak() <= MAX_CONNECTING, `connects in flight never above ${MAX_CONNECTING} (peak ${peak()})`);
  t.equal(await gauge(lb, 'connectsWaiting'), 0, 'nobody waits any more');
  for (const c of clients) c.destroy();
});
