// The session log (log.sessions): one record per client at its end, over real sockets.
import type Tap from 'tap';
import net from 'node:net';
import t from 'tap';
import { withBalancer, yamlFor, type Balancer } from './helpers/balancer.js';
import { connect, eventually, readGreeting, readUpTo, withSim } from './helpers/sim.js';

type Rec = Record<string, unknown>;

function sessions(lb: Balancer): Rec[] {
  return lb.logs.records.filter((r) => r.msg === 'session');
}

async function recordFor(lb: Balancer, port: number): Promise<Rec> {
  let rec: Rec | undefined;
  const ok = await eventually(() => (rec = sessions(lb).find((r) => r.client_port === port)) !== undefined);
  if (!ok) throw new Error(`no session record for client port ${port}`);
  return rec!;
}

/** A member that greets, then closes its side first. */
async function closingBackend(t: Tap.Test): Promise<number> {
  const srv = net.createServer((s) => {
    s.on('error', () => undefined);
    s.end('bye\n');
  });
  srv.listen(0, '127.0.0.1');
  await new Promise((r) => srv.once('listening', r));
  t.teardown(() => srv.close());
  return (srv.address() as net.AddressInfo).port;
}

t.test('one record per session: client_closed, server_closed, cut, hold_timeout', async (t) => {
  const a = await withSim(t, { name: 'ap1a', role: 'primary' });
  const b = await withSim(t, { name: 'ap1b', role: 'backup' });
  const n = await withSim(t, { name: 'ap2a', role: 'backup' });
  const closing = await withSim(t, { name: 'ap3a', role: 'primary' });
  const closerPort = await closingBackend(t);
  const lb = await withBalancer(
    t,
    yamlFor(
      { ap1: [a, b], ap2: [n], ap3: [{ name: 'ap3a', port: closerPort, webPort: closing.webPort }] },
      'log:\n  sessions: true\nproxy:\n  hold_timeout: 300ms',
    ),
  );
  t.ok(await eventually(() => lb.daemon.snapshots().get('ap1')!.decision.primary === 'ap1a'), 'ap1a primary');
  t.ok(await eventually(() => lb.daemon.snapshots().get('ap3')!.decision.primary === 'ap3a'), 'ap3a primary');

  // The client closes first.
  const c1 = await connect(lb.port('ap1'));
  t.equal(await readGreeting(c1), 'ap1a');
  c1.write('ping\n');
  t.equal((await readUpTo(c1, 5, 5000)).data.toString(), 'ping\n', 'echoed');
  const p1 = c1.localPort!;
  c1.end();
  const r1 = await recordFor(lb, p1);
  t.match(r1, {
    mirror: 'ap1',
    member: 'ap1a',
    client: /127\.0\.0\.1$/,
    client_port: p1,
    bytes_in: 5,
    end: 'client_closed',
  });
  t.ok(Number(r1.bytes_out) >= 'ap1a\nping\n'.length, 'bytes out counted');
  t.type(r1.duration_ms, 'number');

  // The member closes first.
  const c2 = await connect(lb.port('ap3'));
  const p2 = c2.localPort!;
  t.equal((await readUpTo(c2, 4, 5000)).data.toString(), 'bye\n');
  c2.on('end', () => c2.end());
  t.match(await recordFor(lb, p2), { mirror: 'ap3', member: 'ap3a', end: 'server_closed', bytes_out: 4 });

  // A demotion cuts it.
  const c3 = await connect(lb.port('ap1'));
  c3.on('error', () => undefined);
  const p3 = c3.localPort!;
  t.equal(await readGreeting(c3), 'ap1a');
  await a.setRole('backup');
  t.match(await recordFor(lb, p3), { member: 'ap1a', end: 'cut_demoted' });

  // Never linked: held until its timeout, no member.
  const c4 = await connect(lb.port('ap2'));
  c4.on('error', () => undefined);
  const p4 = c4.localPort!;
  t.match(await recordFor(lb, p4), { mirror: 'ap2', member: null, end: 'hold_timeout', bytes_in: 0 });

  // Left while held.
  const c5 = await connect(lb.port('ap2'));
  const p5 = c5.localPort!;
  t.ok(await eventually(() => lb.daemon.snapshots().get('ap2')!.held === 1), 'held');
  c5.end();
  t.match(await recordFor(lb, p5), { member: null, end: 'left_while_held' });
  t.equal(sessions(lb).length, 5, 'one record per client, no more');
});

t.test('off by default: no session records', async (t) => {
  const a = await withSim(t, { name: 'ap1a', role: 'primary' });
  const lb = await withBalancer(t, yamlFor({ ap1: [a] }));
  t.ok(await eventually(() => lb.daemon.snapshots().get('ap1')!.decision.primary === 'ap1a'), 'ap1a primary');
  const c = await connect(lb.port('ap1'));
  t.equal(await readGreeting(c), 'ap1a');
  c.end();
  t.ok(await eventually(() => lb.daemon.snapshots().get('ap1')!.sessions === 0), 'session over');
  t.equal(sessions(lb).length, 0);
});
