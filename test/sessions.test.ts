// The session table and its idle wheel over real loopback sockets: counters follow opens and
// closes (no prom-client call on the way), a quiet session is cut by the wheel and a busy one
// is not, taking a member's sessions leaves them counted until they close, and the wheel's
// timer runs only while it has entries.
import net from 'node:net';
import t from 'tap';
import { Registry } from 'prom-client';
import { Metrics } from '../src/metrics.js';
import { IdleWheel, type IdleEntry } from '../src/proxy/idle-wheel.js';
import { SessionTable } from '../src/proxy/sessions.js';
import { eventually } from './helpers/sim.js';

type Test = typeof t;

/** A connected pair of sockets (client end, server end) over loopback, destroyed in teardown. */
async function pair(t: Test): Promise<[net.Socket, net.Socket]> {
  const srv = net.createServer({ allowHalfOpen: true });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const accepted = new Promise<net.Socket>((r) => srv.once('connection', r));
  const c = net.connect({
    port: (srv.address() as net.AddressInfo).port,
    host: '127.0.0.1',
    allowHalfOpen: true,
  });
  const s = await accepted;
  srv.close();
  t.teardown(() => {
    c.destroy();
    s.destroy();
  });
  c.on('error', () => undefined);
  s.on('error', () => undefined);
  return [c, s];
}

/** A proxied session: outside client ↔ (client end | table | backend end) ↔ outside backend. */
async function session(t: Test, table: SessionTable, member: string) {
  const [clientOut, clientIn] = await pair(t);
  const [backendIn, backendOut] = await pair(t);
  const s = table.open(member, clientIn, backendIn, 0);
  // The outside backend closes its side when the client's FIN reaches it, as a server does.
  backendOut.on('end', () => backendOut.end());
  return { s, clientOut, backendOut };
}

function metrics(): Metrics {
  return new Metrics(new Registry(), { defaultMetrics: false });
}

t.test('counters follow opens, bytes and closes; a scrape exports them', async (t) => {
  const m = metrics();
  const table = new SessionTable('ap1', m);
  const a = await session(t, table, 'ap1a');
  const b = await session(t, table, 'ap1a');
  t.equal(table.count(), 2);
  t.equal(table.count('ap1a'), 2);
  const c = m.member('ap1', 'ap1a');
  t.equal(c.active, 2);
  t.equal(c.total, 2);
  a.clientOut.write('hello');
  const got = await new Promise<Buffer>((r) => a.backendOut.once('data', r));
  t.equal(got.toString(), 'hello', 'bytes forwarded');
  a.clientOut.destroy();
  await eventually(() => c.active === 1, 5000, 'the closed session leaves the count');
  t.equal(table.count(), 1);
  t.equal(c.bytesIn, 5, 'its bytes counted at close');
  const text = await m.registry.metrics();
  t.match(text, /mirrorlb_connections_active\{mirror="ap1",member="ap1a"\} 1/);
  t.match(text, /mirrorlb_connections_total\{mirror="ap1",member="ap1a"\} 2/);
  t.match(text, /mirrorlb_bytes_total\{mirror="ap1",member="ap1a",direction="in"\} 5/);
  // A second scrape adds nothing that did not happen.
  t.match(await m.registry.metrics(), /mirrorlb_connections_total\{mirror="ap1",member="ap1a"\} 2/);
  b.clientOut.destroy();
  await eventually(() => c.active === 0, 5000, 'both closed');
});

t.test('take() removes a member at once; the close still updates the counters', async (t) => {
  const m = metrics();
  const table = new SessionTable('ap1', m);
  const a = await session(t, table, 'ap1a');
  const taken = table.take('ap1a', 'demoted');
  t.equal(taken.length, 1);
  t.equal(table.count('ap1a'), 0, 'no longer counted');
  t.same(table.take('ap1a', 'demoted'), [], 'a second take finds nothing to cut again');
  t.equal(m.member('ap1', 'ap1a').active, 1, 'still open');
  a.s.link.destroy();
  await eventually(() => m.member('ap1', 'ap1a').active === 0, 5000, 'closed');
});

t.test('idle timeout: the quiet session is cut, the busy one lives', async (t) => {
  const table = new SessionTable('ap1', metrics(), 200);
  const cut: string[] = [];
  table.onIdleCut = (member) => cut.push(member);
  const quiet = await session(t, table, 'ap1a');
  const busy = await session(t, table, 'ap1a');
  busy.backendOut.on('data', (d: Buffer) => busy.backendOut.write(d));
  const quietClosed = new Promise<void>((r) => quiet.clientOut.once('end', () => r()));
  let quietEnded = false;
  void quietClosed.then(() => (quietEnded = true));
  // The busy one echoes a byte every 50 ms until the quiet one is gone (bounded: 10 s).
  const started = Date.now();
  while (!quietEnded && Date.now() - started < 10_000) {
    busy.clientOut.write('.');
    await new Promise<Buffer>((r) => busy.clientOut.once('data', r));
    await Promise.race([quietClosed, new Promise((r) => setTimeout(r, 50))]);
  }
  t.ok(quietEnded, 'the quiet session was closed');
  t.same(cut, ['ap1a'], 'one idle cut');
  busy.clientOut.write('still');
  const echoed = await new Promise<Buffer>((r) => busy.clientOut.once('data', r));
  t.equal(echoed.toString(), 'still', 'the busy session lives on');
  t.equal(table.count(), 1);
  table.setIdleTimeout(0);
});

t.test('no idle timeout: no wheel; turning it on applies to open sessions', async (t) => {
  const table = new SessionTable('ap1', metrics(), 0);
  const a = await session(t, table, 'ap1a');
  const closed = new Promise<void>((r) => a.clientOut.once('end', () => r()));
  table.setIdleTimeout(100);
  await closed;
  t.pass('the open session was cut once a timeout was set');
  table.setIdleTimeout(0);
});

t.test('the wheel: timer only while entries exist, removal is immediate', async (t) => {
  const wheel = new IdleWheel(100);
  let n = 0;
  const entry = (): IdleEntry & { idled: boolean } => ({
    idleSlot: -1,
    idleMark: 0,
    idleQuietTicks: 0,
    idled: false,
    activity: () => n,
    onIdle() {
      this.idled = true;
    },
  });
  const a = entry();
  const b = entry();
  wheel.add(a);
  wheel.add(b);
  t.equal(wheel.size, 2);
  wheel.remove(b);
  t.equal(wheel.size, 1);
  await eventually(() => a.idled, 5000, 'a idles');
  t.equal(b.idled, false, 'a removed entry is never told');
  t.equal(wheel.size, 0);
  // Activity keeps an entry out of onIdle: bump the counter faster than the timeout.
  const c = entry();
  wheel.add(c);
  const started = Date.now();
  while (Date.now() - started < 400) {
    n++;
    await new Promise((r) => setTimeout(r, 20));
  }
  t.equal(c.idled, false, 'an active entry is not idle');
  await eventually(() => c.idled, 5000, 'quiet again, it idles');
});
