/**
 * Read pools over real sockets: a simulated primary and two simulated replicas answering a
 * Patroni-like /replica, the daemon with one pool. Balancing, a replica killed, lag with
 * hysteresis (a long session not cut), a replica that becomes primary, and when_empty.
 */
import type net from 'node:net';
import t from 'tap';
import { withBalancer, type Balancer } from './helpers/balancer.js';
import { connect, eventually, httpRequest, readGreeting, readUpTo, withSim } from './helpers/sim.js';

type Test = Parameters<typeof withSim>[0];

async function cluster(t: Test, pool = '') {
  const p = await withSim(t, { name: 'p', role: 'primary' });
  const r1 = await withSim(t, { name: 'r1', role: 'backup' });
  const r2 = await withSim(t, { name: 'r2', role: 'backup' });
  const sims = [p, r1, r2];
  const yaml = [
    'mirrors:',
    '  - name: m',
    '    listen: 127.0.0.1:0',
    '    pools:',
    '      - name: reads',
    '        listen: 127.0.0.1:0',
    '        slow_start: 1ms',
    '        rise: 1',
    '        checks:',
    ...sims.map((s) => `          ${s.name}: http://127.0.0.1:${s.webPort}/replica`),
    ...pool
      .split('\n')
      .filter(Boolean)
      .map((l) => `        ${l}`),
    '    members:',
    ...sims.flatMap((s) => [
      `      - name: ${s.name}`,
      `        address: 127.0.0.1:${s.superserverPort}`,
      `        check: http://127.0.0.1:${s.webPort}/csp/mirror_status.cxw`,
    ]),
    'health:',
    '  interval: 50ms',
    'admin:',
    '  listen: 127.0.0.1:0',
  ].join('\n');
  const b = await withBalancer(t, yaml);
  return { b, p, r1, r2 };
}

const poolOf = (b: Balancer) => b.daemon.snapshots().get('m')!.pools![0]!;
const poolPort = (b: Balancer): number => poolOf(b).listen!.port;
const stateOf = (b: Balancer, member: string): string =>
  poolOf(b).members.find((m) => m.name === member)!.state;

async function reach(b: Balancer): Promise<{ s: net.Socket; name: string }> {
  const s = await connect(poolPort(b));
  t.teardown(() => s.destroy());
  return { s, name: await readGreeting(s) };
}

async function bothIn(b: Balancer): Promise<boolean> {
  return eventually(() => stateOf(b, 'r1') === 'in' && stateOf(b, 'r2') === 'in', 5000);
}

/** Whether the socket was closed by the other side within `ms`. */
function closedWithin(s: net.Socket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (s.destroyed || s.readableEnded) return resolve(true);
    const timer = setTimeout(() => resolve(false), ms);
    s.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
    s.once('end', () => {
      clearTimeout(timer);
      resolve(true);
    });
    s.resume();
  });
}

t.test(
  'balances new clients across both replicas, never to the primary; "primary" is not "down"',
  async (t) => {
    const { b } = await cluster(t);
    t.ok(await bothIn(b), 'both replicas join');
    t.equal(stateOf(b, 'p'), 'primary');
    const names: string[] = [];
    for (let i = 0; i < 8; i++) names.push((await reach(b)).name);
    const count = (n: string) => names.filter((x) => x === n).length;
    t.equal(count('p'), 0, 'no read to the primary');
    t.equal(count('r1'), 4, 'least connections: an even split of long sessions');
    t.equal(count('r2'), 4);
    const status = JSON.parse((await httpRequest(b.adminPort(), '/status')).body) as {
      mirrors: { pools: { members: { name: string; state: string; sessions: number }[] }[] }[];
    };
    const members = status.mirrors[0]!.pools[0]!.members;
    t.same(
      members.map((m) => [m.name, m.state, m.sessions]),
      [
        ['p', 'primary', 0],
        ['r1', 'in', 4],
        ['r2', 'in', 4],
      ],
    );
    const ready = await httpRequest(b.adminPort(), '/readyz?mirror=m&pool=reads');
    t.equal(ready.status, 200);
    t.equal((await httpRequest(b.adminPort(), '/readyz?mirror=m&pool=nope')).status, 404);
    const metrics = (await httpRequest(b.adminPort(), '/metrics')).body;
    t.match(metrics, /mirrorlb_pool_member_in\{mirror="m",pool="reads",member="r1"\} 1/);
    t.match(metrics, /mirrorlb_pool_member_state\{mirror="m",pool="reads",member="p",state="primary"\} 1/);
    t.match(metrics, /mirrorlb_pool_member_state\{mirror="m",pool="reads",member="p",state="down"\} 0/);
  },
);

t.test('a replica killed: its sessions cut, new clients to the other', async (t) => {
  const { b, r1 } = await cluster(t);
  t.ok(await bothIn(b));
  const sessions = [await reach(b), await reach(b)];
  const onR1 = sessions.find((x) => x.name === 'r1')!;
  t.ok(onR1, 'one session on r1');
  await r1.setRole('down');
  t.ok(await closedWithin(onR1.s, 5000), 'the session on the dead replica is cut');
  for (let i = 0; i < 4; i++) t.equal((await reach(b)).name, 'r2', 'new clients go to the other');
  t.equal(stateOf(b, 'r1'), 'down');
});

t.test(
  'lag over the limit: leaves after the hysteresis, its long session kept, returns below the mark',
  async (t) => {
    const { b, r1 } = await cluster(
      t,
      'max_lag: 1MB\nlag_exit_after: 300ms\nlag_return_below: 100kB\nlag_return_after: 300ms',
    );
    t.ok(await bothIn(b));
    const sessions = [await reach(b), await reach(b)];
    const onR1 = sessions.find((x) => x.name === 'r1')!;
    r1.lagBytes = 5 * 1024 * 1024;
    t.ok(await eventually(() => stateOf(b, 'r1') === 'lagging', 5000), 'r1 leaves for lag');
    t.ok(
      b.logs.records.some(
        (r) => r.msg === 'pool member left' && r.member === 'r1' && r.lag_bytes === 5 * 1024 * 1024,
      ),
      'logged once with the lag that caused it',
    );
    for (let i = 0; i < 3; i++) t.equal((await reach(b)).name, 'r2', 'no new client to the lagging replica');
    onR1.s.write('still here');
    const echo = (await readUpTo(onR1.s, 10, 3000)).data.toString();
    t.equal(echo, 'still here', 'its long session is not cut');
    r1.lagBytes = 500 * 1024; // under the limit, above the return mark: stays out
    t.notOk(await eventually(() => stateOf(b, 'r1') === 'in', 800), 'no return above the return mark');
    r1.lagBytes = 0;
    t.ok(await eventually(() => stateOf(b, 'r1') === 'in', 5000), 'returns below the mark after the delay');
  },
);

t.test('a replica that becomes primary leaves the pool at once; its read sessions are kept', async (t) => {
  const { b, p, r1 } = await cluster(t);
  t.ok(await bothIn(b));
  const sessions = [await reach(b), await reach(b)];
  const onR1 = sessions.find((x) => x.name === 'r1')!;
  await p.setRole('backup');
  await r1.setRole('primary');
  t.ok(await eventually(() => stateOf(b, 'r1') === 'primary', 5000));
  t.notOk(await closedWithin(onR1.s, 300), 'its read session stays');
  for (let i = 0; i < 4; i++) t.not((await reach(b)).name, 'r1', 'no new read to the new primary');
});

t.test('when_empty: hold, primary, refuse', async (t) => {
  for (const mode of ['hold', 'primary', 'refuse'] as const) {
    await t.test(mode, async (t) => {
      const { b, r1, r2 } = await cluster(t, `when_empty: ${mode}`);
      t.ok(await bothIn(b));
      await r1.setRole('down');
      await r2.setRole('down');
      t.ok(await eventually(() => stateOf(b, 'r1') === 'down' && stateOf(b, 'r2') === 'down', 5000));
      const s = await connect(poolPort(b));
      t.teardown(() => s.destroy());
      if (mode === 'primary') {
        t.equal(await readGreeting(s), 'p', 'reads go to the primary');
        return;
      }
      if (mode === 'refuse') {
        t.ok(await closedWithin(s, 3000), 'refused at once');
        return;
      }
      t.notOk(await closedWithin(s, 300), 'held');
      await r2.setRole('backup');
      t.equal(await readGreeting(s), 'r2', 'released to the replica that came back');
    });
  }
});
