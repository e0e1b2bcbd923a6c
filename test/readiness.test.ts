/**
 * Replica readiness (GET /readyz) and the SIGTERM grace (shutdown.grace): what an outer L4
 * load balancer (a Kubernetes Service, an NLB, IPVS) relies on to take a replica out before
 * its port closes. Real sockets throughout; the process tests run bin/mirrorlb.js.
 */
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StatusDoc } from '../src/admin/status.js';
import { ConfigError } from '../src/config/errors.js';
import { parseConfig } from '../src/config/load.js';
import { withBalancer, yamlFor } from './helpers/balancer.js';
import { runCli } from './helpers/cli-proc.js';
import { connect, eventually, httpRequest, readGreeting, readUpTo, withSim } from './helpers/sim.js';

t.test('shutdown.grace: default 5s, 0 / "0" / off for none, a clear error otherwise', async (t) => {
  const base =
    'mirrors:\n  - name: m\n    listen: 127.0.0.1:0\n    members:\n      - name: a\n        address: 127.0.0.1:1\n        check: http://127.0.0.1:1/\n';
  t.equal(parseConfig(base, 'f.yml', {}).shutdown.graceMs, 5000, 'default');
  for (const [v, ms] of [
    ['0', 0],
    ['"0"', 0],
    ['off', 0],
    ['2.5s', 2500],
    ['1m', 60_000],
  ] as const) {
    t.equal(
      parseConfig(`${base}shutdown:\n  grace: ${v}\n`, 'f.yml', {}).shutdown.graceMs,
      ms,
      `grace: ${v}`,
    );
  }
  for (const [v, msg] of [
    ['-1s', /shutdown\.grace: .*negative/],
    ['"5"', /shutdown\.grace: .*no unit/],
    ['soon', /shutdown\.grace: /],
  ] as const) {
    t.throws(() => parseConfig(`${base}shutdown:\n  grace: ${v}\n`, 'f.yml', {}), ConfigError, `grace: ${v}`);
    try {
      parseConfig(`${base}shutdown:\n  grace: ${v}\n`, 'f.yml', {});
    } catch (e) {
      t.match((e as Error).message, msg, `grace: ${v} explained`);
    }
  }
});

t.test('a mirror without a primary does not make the replica unready; ?mirror= tells', async (t) => {
  const a = await withSim(t, { name: 'ap1a', role: 'primary' });
  const c = await withSim(t, { name: 'ap2a', role: 'backup' });
  const lb = await withBalancer(t, yamlFor({ ap1: [a], ap2: [c] }));
  const port = lb.adminPort();
  t.ok(
    await eventually(() => lb.daemon.snapshots().get('ap1')!.decision.accepting, 5000),
    'ap1 has a primary',
  );
  // ap2's only member answered "not primary": it has none, and its clients are held.
  t.ok(
    await eventually(() => lb.daemon.snapshots().get('ap2')!.members[0]!.health.role === 'backup'),
    'ap2a is a backup',
  );
  const ready = await httpRequest(port, '/readyz');
  t.equal(ready.status, 200, 'replica ready while ap2 has no primary');
  t.equal(ready.body, 'ready\n');
  const one = await httpRequest(port, '/readyz?mirror=ap1');
  t.equal(one.status, 200, 'ap1 ready');
  const two = await httpRequest(port, '/readyz?mirror=ap2');
  t.equal(two.status, 503, 'ap2 not ready');
  t.match(two.body, /mirror ap2 has no primary taking clients/);
  const unknown = await httpRequest(port, '/readyz?mirror=nope');
  t.equal(unknown.status, 404);
  t.same(JSON.parse(unknown.body), { error: 'MLB_ERR_NOT_FOUND', message: 'no mirror nope' });
  const status = JSON.parse((await httpRequest(port, '/status')).body) as StatusDoc;
  t.equal(status.ready, true);
  t.equal(status.phase, 'running');

  // ap2 gets a primary: its mirror readiness follows.
  await httpRequest(c.webPort, '/sim/role', { method: 'POST', body: 'primary' });
  t.ok(
    await eventually(async () => (await httpRequest(port, '/readyz?mirror=ap2')).status === 200, 5000),
    'ap2 ready once ap2a is primary',
  );
});

t.test('Daemon.stop with a grace: unready at once, still accepting, then closed; idempotent', async (t) => {
  const a = await withSim(t, { name: 'ap1a', role: 'primary' });
  const lb = await withBalancer(t, yamlFor({ ap1: [a] }));
  const port = lb.port('ap1');
  t.ok(await eventually(() => lb.daemon.snapshots().get('ap1')!.decision.accepting, 5000));
  t.equal((await httpRequest(lb.adminPort(), '/readyz')).status, 200);

  const stopped = lb.daemon.stop(5000, 600_000);
  t.equal(lb.daemon.stop(), stopped, 'a second stop() is the same shutdown');
  t.equal(lb.daemon.phase, 'grace');
  const r = await httpRequest(lb.adminPort(), '/readyz');
  t.equal(r.status, 503, '/readyz 503 during the grace');
  t.match(r.body, /shutting down \(still accepting for the grace period\)/);
  t.equal((await httpRequest(lb.adminPort(), '/readyz?mirror=ap1')).status, 503, 'every mirror too');
  const s = await connect(port);
  t.equal(await readGreeting(s), 'ap1a', 'a client connecting during the grace is served');
  const graceStatus = JSON.parse((await httpRequest(lb.adminPort(), '/status')).body) as StatusDoc;
  t.equal(graceStatus.phase, 'grace');
  t.equal(graceStatus.mirrors[0]!.accepting, true, 'still accepting during the grace');

  lb.daemon.endGrace();
  t.ok(await eventually(() => lb.daemon.phase === 'stopping', 5000), 'draining once the grace ends');
  const drainStatus = JSON.parse((await httpRequest(lb.adminPort(), '/status')).body) as StatusDoc;
  t.equal(drainStatus.mirrors[0]!.accepting, false, 'not "accepting" while the listener is closed');
  await t.rejects(connect(port, '127.0.0.1', 2000), 'the listener is closed');
  s.write('still here');
  t.equal((await readUpTo(s, 10, 3000)).data.toString(), 'still here', 'the session drains');
  s.end();
  await stopped;
  t.equal(lb.daemon.phase, 'stopped');
});

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

/** Starts bin/mirrorlb.js with one mirror on the sim and the given shutdown keys. */
async function startCli(t: Tap.Test, sim: { superserverPort: number; webPort: number }, shutdown: string) {
  const [port, admin] = [await freePort(), await freePort()];
  const dir = mkdtempSync(join(tmpdir(), 'rp15-ready-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'mirrorlb.yml');
  writeFileSync(
    file,
    [
      'mirrors:',
      '  - name: ap1',
      `    listen: 127.0.0.1:${port}`,
      '    members:',
      '      - name: ap1a',
      `        address: 127.0.0.1:${sim.superserverPort}`,
      `        check: http://127.0.0.1:${sim.webPort}/csp/mirror_status.cxw`,
      'admin:',
      `  listen: 127.0.0.1:${admin}`,
      'shutdown:',
      shutdown,
      '',
    ].join('\n'),
  );
  const p = runCli(t, ['--config', file]);
  const up = await eventually(
    async () => (await httpRequest(admin, '/readyz?mirror=ap1').catch(() => ({ status: 0 }))).status === 200,
    30_000,
  );
  t.ok(up, 'started, ap1 has a primary', { stderr: p.stderr() });
  return { p, port, admin };
}

t.test(
  'SIGTERM with shutdown.grace: 503 at once, clients served through the grace, exit 0 after the drain',
  async (t) => {
    const a = await withSim(t, { name: 'ap1a', role: 'primary' });
    // A long grace, so nothing below races its end; the second SIGTERM ends it.
    const { p, port, admin } = await startCli(t, a, '  grace: 10m\n  drain_timeout: 20s');
    const early = await connect(port);
    t.equal(await readGreeting(early), 'ap1a');

    p.child.kill('SIGTERM');
    t.ok(
      await eventually(async () => (await httpRequest(admin, '/readyz')).status === 503, 10_000),
      '/readyz answers 503 after SIGTERM',
    );
    const during = await connect(port);
    t.equal(await readGreeting(during), 'ap1a', 'a client connecting during the grace is served');
    const st = JSON.parse((await httpRequest(admin, '/status')).body) as StatusDoc;
    t.equal(st.phase, 'grace');
    t.equal(st.mirrors[0]!.accepting, true);

    p.child.kill('SIGTERM');
    t.ok(
      await eventually(
        () => p.lines.some((l) => String(l.msg).startsWith('stopping: listeners closed')),
        10_000,
      ),
      'a second SIGTERM ends the grace',
    );
    await t.rejects(connect(port, '127.0.0.1', 2000), 'new clients refused once the grace is over');
    const drain = JSON.parse((await httpRequest(admin, '/status')).body) as StatusDoc;
    t.equal(drain.phase, 'stopping');
    t.equal(drain.mirrors[0]!.accepting, false, '/status does not say accepting during the drain');
    for (const [s, text] of [
      [early, 'early'],
      [during, 'during'],
    ] as const) {
      s.write(text);
      t.equal((await readUpTo(s, text.length, 3000)).data.toString(), text, `the ${text} session drains`);
      s.end();
    }
    t.equal(await p.exited, 0, 'exit 0 once the sessions ended');
    const msgs = p.lines.map((l) => String(l.msg));
    const order = [
      'stopping',
      'stopping: unready, still accepting for the grace period',
      'stopping: listeners closed, draining',
      'stopped',
    ].map((m) => msgs.findIndex((x) => x === m || x.startsWith(m)));
    t.ok(
      order.every((i, k) => i >= 0 && (k === 0 || i > order[k - 1]!)),
      'logged in order',
      { msgs },
    );
  },
);

t.test('the grace ends by itself; grace 0 closes the listener at once', async (t) => {
  const a = await withSim(t, { name: 'ap1a', role: 'primary' });
  const timed = await startCli(t, a, '  grace: 300ms\n  drain_timeout: 20s');
  timed.p.child.kill('SIGTERM');
  t.equal(await timed.p.exited, 0, 'exit 0 after the grace, nothing to drain');
  t.ok(timed.p.lines.some((l) => l.msg === 'stopping: unready, still accepting for the grace period'));

  const none = await startCli(t, a, '  grace: 0\n  drain_timeout: 20s');
  const s = await connect(none.port);
  t.equal(await readGreeting(s), 'ap1a');
  none.p.child.kill('SIGTERM');
  t.ok(
    await eventually(
      () => none.p.lines.some((l) => String(l.msg).startsWith('stopping: listeners closed')),
      10_000,
    ),
  );
  t.notOk(
    none.p.lines.some((l) => l.msg === 'stopping: unready, still accepting for the grace period'),
    'no grace phase with grace 0',
  );
  await t.rejects(connect(none.port, '127.0.0.1', 2000), 'refused at once');
  s.end();
  t.equal(await none.p.exited, 0);
});
