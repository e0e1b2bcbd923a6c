import t from 'tap';
import { parseConfig } from '../src/config/load.js';
import { choosePrimary } from '../src/health/choose.js';
import { INITIAL_HEALTH } from '../src/health/state.js';
import { createLogger } from '../src/log.js';
import { Metrics } from '../src/metrics.js';
import { PrimaryPlan } from '../src/mirror/plan.js';
import { Router } from '../src/mirror/router.js';
import { Resolver } from '../src/proxy/resolver.js';
import { LogSink, withBalancer, yamlFor } from './helpers/balancer.js';
import { within } from './helpers/http.js';
import { connect, readGreeting, readUpTo, withSim } from './helpers/sim.js';

// Fixed ports of this file (the range given to it; port 0 cannot test "the same address").
const PORT_A = 20011;
const PORT_B = 20012;

t.test('the data path is logged once, at start', async (t) => {
  const a = await withSim(t, { name: 'ap1a', role: 'primary' });
  const b = await withSim(t, { name: 'ap2a', role: 'primary' });
  const lb = await withBalancer(t, yamlFor({ ap1: [a], ap2: [b] }));
  await lb.daemon.reload(parseConfig(yamlFor({ ap1: [a] }), 'next.yml', process.env));
  const lines = lb.logs.records.filter((r) => r.msg === 'data path');
  t.equal(lines.length, 1, 'one line, not one per mirror or reload');
  const l = lines[0]!;
  t.equal(l.connect, process.env.MIRRORLB_DATAPATH === 'plain' ? 'plain' : 'fast');
  const fast = l.accept === 'fast' && l.connect === 'fast';
  const mode = process.env.MIRRORLB_DATAPATH;
  t.equal(
    l.data_path,
    fast ? (mode === 'stream' ? 'fast' : 'raw') : 'plain',
    'raw by default; fast only when both accept and connect are',
  );
  if (l.data_path === 'raw') t.equal(l.reason, null, 'no reason when raw');
  else t.type(l.reason, 'string', 'why not raw');
});

t.test('stop drains: it ends when the last session closes, not at the drain timeout', async (t) => {
  const a = await withSim(t, { name: 'ap1a', role: 'primary' });
  const lb = await withBalancer(t, yamlFor({ ap1: [a] }));
  const port = lb.port('ap1');
  const s = await connect(port);
  t.equal(await readGreeting(s), 'ap1a');
  let stopped = false;
  const stopping = lb.daemon.stop(120_000).then(() => (stopped = true));
  await t.rejects(connect(port, '127.0.0.1', 2000), 'the listener is closed at once');
  s.write('draining');
  t.equal((await readUpTo(s, 8, 3000)).data.toString(), 'draining', 'the open session still works');
  t.notOk(stopped, 'stop waits for it');
  s.end();
  await within(stopping, 10_000, 'stop after the last session closed');
  const cut = (await lb.daemon.metrics.sessionsCut.get()).values.filter((v) => v.value > 0);
  t.same(cut, [], 'the session ended by itself: nothing was cut');
  await lb.daemon.stop();
  t.pass('stop twice is fine');
});

t.test('a mirror renamed (or two swapping ports) takes over the listen address of the old one', async (t) => {
  const a = await withSim(t, { name: 'ap1a', role: 'primary' });
  const b = await withSim(t, { name: 'ap2a', role: 'primary' });
  const yaml = (names: [string, string], ports: [number, number]): string => {
    let i = 0;
    // The two mirrors' listen lines, in order; the admin listener stays on port 0.
    return yamlFor({ [names[0]]: [a], [names[1]]: [b] }).replace(/ {4}listen: 127\.0\.0\.1:0/g, () =>
      i < 2 ? `    listen: 127.0.0.1:${ports[i++]}` : '    listen: 127.0.0.1:0',
    );
  };
  const lb = await withBalancer(t, yaml(['ap1', 'ap2'], [PORT_A, PORT_B]));
  const s = await connect(PORT_A);
  t.equal(await readGreeting(s), 'ap1a');
  await lb.daemon.reload(parseConfig(yaml(['ap1x', 'ap2'], [PORT_A, PORT_B]), 'renamed.yml', process.env));
  t.same([...lb.daemon.snapshots().keys()].sort(), ['ap1x', 'ap2']);
  t.equal(lb.port('ap1x'), PORT_A);
  const r = await connect(PORT_A);
  t.equal(await readGreeting(r), 'ap1a', 'ap1x serves on the old address');
  r.destroy();
  t.ok((await readUpTo(s, 1, 3000)).ended, "the old mirror's session was cut with it");
  // ap1x and ap2 swap ports: each new listener needs the other's old address.
  await lb.daemon.reload(parseConfig(yaml(['ap1x', 'ap2'], [PORT_B, PORT_A]), 'swapped.yml', process.env));
  t.same([lb.port('ap1x'), lb.port('ap2')], [PORT_B, PORT_A], 'both listen where they asked');
  const x = await connect(PORT_A);
  t.equal(await readGreeting(x), 'ap2a', 'ap2 serves on its new port');
  x.destroy();
});

t.test(
  'a listener bound by a reload not yet committed keeps its clients until serve(), or closes them uncounted',
  async (t) => {
    const a = await withSim(t, { name: 'ap1a', role: 'primary' });
    const mirror = parseConfig(yamlFor({ ap1: [a] }), 'test.yml', process.env).mirrors[0]!;
    const decision = choosePrimary(
      [{ name: 'ap1a', admin: 'enabled', health: { ...INITIAL_HEALTH, role: 'primary', primarySince: 0 } }],
      'newest',
      null,
    );
    const make = (metrics: Metrics): Router =>
      new Router(mirror, new PrimaryPlan(decision), {
        metrics,
        resolver: new Resolver(),
        log: createLogger('debug', new LogSink()),
        owner: { connectFailed: () => {} },
      });
    const metrics = new Metrics(undefined, { defaultMetrics: false });

    const served = make(metrics);
    t.teardown(() => served.close());
    await served.listen();
    const early = await connect(served.address()!.port);
    early.write('first');
    served.serve();
    t.equal(await readGreeting(early), 'ap1a', 'served once committed');
    t.equal(
      (await readUpTo(early, 5, 3000)).data.toString(),
      'first',
      'with the bytes it sent while waiting',
    );
    early.destroy();

    const refused = make(metrics);
    await refused.listen();
    const gone = await connect(refused.address()!.port);
    refused.close();
    t.ok((await readUpTo(gone, 1, 3000)).ended, 'a refused reload closes the clients of its listener');
    const errors = (await metrics.connectionErrors.get()).values.filter((v) => v.value > 0);
    t.same(errors, [], 'and counts them nowhere');
  },
);

t.test('snapshots() hands out frozen copies, not the live state', async (t) => {
  const a = await withSim(t, { name: 'ap1a', role: 'primary' });
  const lb = await withBalancer(t, yamlFor({ ap1: [a] }));
  const before = lb.daemon.snapshots().get('ap1')!;
  t.equal(before.sessions, 0);
  const s = await connect(lb.port('ap1'));
  t.equal(await readGreeting(s), 'ap1a');
  const after = lb.daemon.snapshots().get('ap1')!;
  t.equal(after.sessions, 1, 'a new snapshot sees the session');
  t.equal(after.members[0]!.sessions, 1);
  t.equal(before.sessions, 0, 'the old one does not change under its reader');
  t.same(after.members[0]!.resolution, { ip: '127.0.0.1', error: null }, 'an IP literal needs no lookup');
  for (const o of [
    after,
    after.members,
    after.members[0],
    after.members[0]!.health,
    after.decision,
    after.listen,
  ])
    t.ok(Object.isFrozen(o), 'frozen');
  t.throws(() => {
    (after as { held: number }).held = 5;
  }, 'writing to a snapshot throws');
  s.destroy();
});
