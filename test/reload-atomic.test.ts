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

const OLD_TOKEN = 'a13-old-token-0123456789abcdef';
const NEW_TOKEN = 'a13-new-token-0123456789abcdef';

function member(s: SimMember): string[] {
  return [
    `      - name: ${s.name}`,
    `        address: 127.0.0.1:${s.superserverPort}`,
    `        check: http://127.0.0.1:${s.webPort}/csp/mirror_status.cxw`,
  ];
}

function mirrorYaml(name: string, listen: string, members: SimMember[], extra: string[] = []): string[] {
  return [
    `  - name: ${name}`,
    `    listen: "${listen}"`,
    ...extra,
    '    members:',
    ...members.flatMap(member),
  ];
}

/** POST an admin action; returns the HTTP status. */
async function act(adminPort: number, token: string): Promise<number> {
  const r = await httpRequest(adminPort, '/mirrors/ap1/members/ap1a/enable', {
    method: 'POST',
    headers: { authorization: `Bearer ${token}` },
  });
  return r.status;
}

t.test(
  'a reload refused for a busy port changes nothing; the same reload then applies in full',
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'a13-reload-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const a = await withSim(t, { name: 'ap1a', role: 'primary' });
    const b = await withSim(t, { name: 'ap2a', role: 'primary' });
    const c = await withSim(t, { name: 'm9a', role: 'primary' });
    // Another process (here: a plain server) holds the port the new mirror wants.
    const squatter = net.createServer();
    await new Promise<void>((r) => squatter.listen(0, '127.0.0.1', r));
    const busy = (squatter.address() as net.AddressInfo).port;
    t.teardown(() => new Promise<void>((r) => squatter.close(() => r())));

    const file = join(dir, 'mirrorlb.yml');
    const before = [
      'mirrors:',
      ...mirrorYaml('ap1', '127.0.0.1:0', [a]),
      ...mirrorYaml('ap2', '127.0.0.1:0', [b]),
      'admin:',
      '  listen: 127.0.0.1:0',
      `  token: ${OLD_TOKEN}`,
    ].join('\n');
    const after = [
      'mirrors:',
      ...mirrorYaml('ap1', '127.0.0.1:0', [a], ['    proxy:', '      hold_timeout: 7s']),
      ...mirrorYaml('m9', `127.0.0.1:${busy}`, [c]),
      'admin:',
      '  listen: 127.0.0.1:0',
      `  token: ${NEW_TOKEN}`,
    ].join('\n');
    await writeFile(file, before);
    const logs = new LogSink();
    const running = await startBalancer(await loadConfigFile(file), {
      reloadFrom: file,
      log: createLogger('debug', logs),
    });
    t.teardown(() => running.stop());
    const { daemon } = running;
    const adminPort = running.admin.address().port;
    const port = (m: string): number => daemon.snapshots().get(m)!.listen!.port;
    t.ok(await eventually(() => daemon.ready(), 10_000), 'both mirrors have their primary');
    const ap1Port = port('ap1');
    const ap2Port = port('ap2');
    const ap1Config = JSON.stringify(daemon.snapshots().get('ap1')!.config);
    const s1 = await connect(ap1Port);
    t.equal(await readGreeting(s1), 'ap1a');
    const s2 = await connect(ap2Port);
    t.equal(await readGreeting(s2), 'ap2a');
    const eventsBefore = daemon.events.count;

    await writeFile(file, after);
    process.emit('SIGHUP');
    const reloads = async (result: string): Promise<number> =>
      (await daemon.metrics.configReloads.get()).values.find((v) => v.labels.result === result)?.value ?? 0;
    t.ok(await eventually(async () => (await reloads('invalid')) === 1, 10_000), 'the reload is refused');

    t.same([...daemon.snapshots().keys()], ['ap1', 'ap2'], 'the same mirrors run');
    t.equal(JSON.stringify(daemon.snapshots().get('ap1')!.config), ap1Config, 'ap1 keeps its config');
    t.equal(daemon.currentConfig.mirrors.length, 2, 'the daemon keeps the running config');
    t.same([port('ap1'), port('ap2')], [ap1Port, ap2Port], 'on the same listeners');
    for (const [s, what] of [
      [s1, 'ap1'],
      [s2, 'ap2'],
    ] as const) {
      s.write('still?');
      t.equal((await readUpTo(s, 6, 3000)).data.toString(), 'still?', `the ${what} session carries on`);
    }
    const n2 = await connect(ap2Port);
    t.equal(await readGreeting(n2), 'ap2a', 'new clients still reach ap2');
    n2.destroy();
    t.equal(await act(adminPort, OLD_TOKEN), 200, 'the old admin token still works');
    t.equal(await act(adminPort, NEW_TOKEN), 401, 'the new one does not');
    const metrics = (await httpRequest(adminPort, '/metrics')).body;
    t.notMatch(metrics, /mirror="m9"/, 'no metric series of the refused mirror');
    t.notMatch(metrics, /accept_EADDRINUSE/, 'the bind failure is no client error');
    t.notOk(logs.messages().includes('accept failed'), 'nor logged as an accept failure');
    t.ok(logs.messages().includes('config reload refused; keeping the running config'));
    t.equal(daemon.events.count - eventsBefore, 1, 'only the admin action made an event, no reload');

    // The port is free again: the same file now applies, all of it.
    await new Promise<void>((r) => squatter.close(() => r()));
    process.emit('SIGHUP');
    t.ok(await eventually(async () => (await reloads('ok')) === 1, 10_000), 'the reload applies');
    t.same([...daemon.snapshots().keys()].sort(), ['ap1', 'm9']);
    t.equal(port('m9'), busy, 'm9 listens on the port it asked for');
    t.equal(daemon.snapshots().get('ap1')!.config.proxy.holdTimeoutMs, 7000, 'ap1 took its new config');
    const n9 = await connect(busy);
    t.equal(await readGreeting(n9), 'm9a', 'm9 routes');
    n9.destroy();
    s1.write('!');
    t.equal((await readUpTo(s1, 1, 3000)).data.toString(), '!', 'the ap1 session survived the reload');
    t.ok((await readUpTo(s2, 1, 3000)).ended, 'the ap2 session was cut with its mirror');
    t.equal(await act(adminPort, NEW_TOKEN), 200, 'the new admin token works');
    t.equal(await act(adminPort, OLD_TOKEN), 401, 'the old one no longer does');
    const line = logs.records.find((r) => r.msg === 'config reloaded');
    t.match(line, { source: file, added: ['m9'], removed: ['ap2'], changed: ['ap1'], cut_sessions: 1 });
    t.not(line?.from, line?.to, 'from and to name two different configs');
    const ev = daemon.events.list().find((e) => e.kind === 'reload');
    t.match(ev, {
      from: line?.from,
      to: line?.to,
      detail: 'added m9; removed ap2; changed ap1',
      cutSessions: 1,
    });
    s1.destroy();
    s2.destroy();
  },
);
