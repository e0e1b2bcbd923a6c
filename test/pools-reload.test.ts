/**
 * Read pools and reloads, over real sockets: a pool added by SIGHUP (its listener bound before
 * anything changes: a busy port refuses the whole reload and leaves the running config as it
 * was), then removed by Daemon.reload (its sessions cut, its port closed, its series gone),
 * while the mirror's own sessions carry on.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { startBalancer } from '../src/cli/run.js';
import { loadConfigFile } from '../src/config/load.js';
import { createLogger } from '../src/log.js';
import type { SimMember } from '../src/sim/member.js';
import { LogSink } from './helpers/balancer.js';
import { connect, eventually, httpRequest, readGreeting, readUpTo, withSim } from './helpers/sim.js';

function yaml(sims: SimMember[], pools: { name: string; port: number; extra?: string }[]): string {
  return [
    'mirrors:',
    '  - name: m',
    '    listen: 127.0.0.1:0',
    ...(pools.length > 0 ? ['    pools:'] : []),
    ...pools.flatMap((p) => [
      `      - name: ${p.name}`,
      `        listen: 127.0.0.1:${p.port}`,
      '        rise: 1',
      '        slow_start: 1ms',
      ...(p.extra ? [`        ${p.extra}`] : []),
      '        checks:',
      ...sims.map((s) => `          ${s.name}: http://127.0.0.1:${s.webPort}/replica`),
    ]),
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
}

function refuses(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

t.test('a pool added by SIGHUP (refused whole on a busy port), removed by reload', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'pool-reload-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const p = await withSim(t, { name: 'p', role: 'primary' });
  const r1 = await withSim(t, { name: 'r1', role: 'backup' });
  const r2 = await withSim(t, { name: 'r2', role: 'backup' });
  const sims = [p, r1, r2];
  const squatter = net.createServer();
  await new Promise<void>((r) => squatter.listen(0, '127.0.0.1', r));
  const busy = (squatter.address() as net.AddressInfo).port;
  let squatting = true;
  t.teardown(() => (squatting ? new Promise<void>((r) => squatter.close(() => r())) : undefined));

  const file = join(dir, 'mirrorlb.yml');
  await writeFile(file, yaml(sims, []));
  const logs = new LogSink();
  const running = await startBalancer(await loadConfigFile(file), {
    reloadFrom: file,
    log: createLogger('debug', logs),
  });
  t.teardown(() => running.stop());
  const { daemon } = running;
  const adminPort = running.admin.address().port;
  const snap = () => daemon.snapshots().get('m')!;
  t.ok(await eventually(() => daemon.ready(), 10_000), 'the mirror has its primary');
  const primary = await connect(snap().listen!.port);
  t.teardown(() => primary.destroy());
  t.equal(await readGreeting(primary), 'p');
  const reloads = async (result: string): Promise<number> =>
    (await daemon.metrics.configReloads.get()).values.find((v) => v.labels.result === result)?.value ?? 0;

  // A pool on a port another process holds: the whole reload is refused, nothing changes.
  await writeFile(file, yaml(sims, [{ name: 'reads', port: busy }]));
  process.emit('SIGHUP');
  t.ok(await eventually(async () => (await reloads('invalid')) === 1, 10_000), 'the reload is refused');
  t.same(snap().pools ?? [], [], 'no pool runs');
  t.equal(daemon.currentConfig.mirrors[0]!.pools.length, 0, 'the running config has no pool');
  t.notMatch((await httpRequest(adminPort, '/metrics')).body, /pool="reads"/, 'no series of the pool');
  t.equal((await httpRequest(adminPort, '/readyz?mirror=m&pool=reads')).status, 404, 'no /readyz for it');
  primary.write('still?');
  t.equal((await readUpTo(primary, 6, 3000)).data.toString(), 'still?', 'the mirror session carries on');

  // The port is free: the same file applies, the pool listens where it asked and balances.
  await new Promise<void>((r) => squatter.close(() => r()));
  squatting = false;
  process.emit('SIGHUP');
  t.ok(await eventually(async () => (await reloads('ok')) === 1, 10_000), 'the reload applies');
  t.equal(snap().pools?.[0]?.listen?.port, busy, 'the pool listens on its port');
  t.ok(
    await eventually(() => snap().pools![0]!.members.filter((m) => m.state === 'in').length === 2, 10_000),
    'both replicas join',
  );
  const reads: net.Socket[] = [];
  const names: string[] = [];
  for (let i = 0; i < 2; i++) {
    const s = await connect(busy);
    t.teardown(() => s.destroy());
    reads.push(s);
    names.push(await readGreeting(s));
  }
  t.same(names.sort(), ['r1', 'r2'], 'reads spread over the replicas');
  t.equal((await httpRequest(adminPort, '/readyz?mirror=m&pool=reads')).status, 200);

  // Another pool on a busy port with a change to the running one: refused whole again.
  const squatter2 = net.createServer();
  await new Promise<void>((r) => squatter2.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => squatter2.close(() => r())));
  const busy2 = (squatter2.address() as net.AddressInfo).port;
  await writeFile(
    file,
    yaml(sims, [
      { name: 'reads', port: busy, extra: 'when_empty: refuse' },
      { name: 'more', port: busy2 },
    ]),
  );
  process.emit('SIGHUP');
  t.ok(await eventually(async () => (await reloads('invalid')) === 2, 10_000), 'refused');
  t.same(
    snap().pools!.map((x) => x.name),
    ['reads'],
    'still one pool',
  );
  t.equal(daemon.currentConfig.mirrors[0]!.pools[0]!.whenEmpty, 'hold', 'the running pool is unchanged');

  // Removed by a reload: its sessions cut, its port closed, its series gone; the mirror's stay.
  await daemon.reload(await loadYaml(sims, file));
  t.same(snap().pools ?? [], [], 'the pool is gone');
  for (const s of reads) t.ok((await readUpTo(s, 1, 3000)).ended, 'its session is cut');
  t.ok(await refuses(busy), 'its port is closed');
  t.notMatch((await httpRequest(adminPort, '/metrics')).body, /pool="reads"/, 'its series are gone');
  primary.write('!');
  t.equal((await readUpTo(primary, 1, 3000)).data.toString(), '!', 'the mirror session survived');
  const line = logs.records.filter((r) => r.msg === 'config reloaded').pop();
  t.match(line, { changed: ['m'], cut_sessions: 2 }, 'the reload log counts the cut sessions');
});

/** The poolless config, written to `file` and loaded. */
async function loadYaml(sims: SimMember[], file: string) {
  await writeFile(file, yaml(sims, []));
  return loadConfigFile(file);
}
