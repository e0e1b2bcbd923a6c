/**
 * The license-free stack of compose/sim.yml run for real, without Docker: every service a
 * process in its own network namespace under its compose host name (ap1a … ap2b as
 * `mirrorlb sim`, webgw1/webgw2/nginx as nginx with the compose nginx files, mirrorlb with
 * compose/mirrorlb-sim.yml, Prometheus with compose/prometheus.yml), started in the
 * depends_on order, each awaited with its own compose (or Dockerfile) healthcheck. Then a
 * failover end to end, driven by compose/failover.sh from a client host, as the README
 * tells a user to do it.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import YAML from 'yaml';
import { startProc, type Proc } from './faults/lib/proc.js';
import { newResults, record } from './faults/lib/results.js';
import { BIN, faultNet, ROOT, sleep, STRICT, type FaultNet } from './faults/lib/suite.js';
import { run } from './faults/lib/netns.js';
import { readGreeting, readUpTo } from './helpers/sim.js';

interface Service {
  image?: string;
  build?: unknown;
  hostname?: string;
  command?: string;
  ports?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, unknown>;
}

const COMPOSE = join(ROOT, 'compose');
const compose = YAML.parse(readFileSync(join(COMPOSE, 'sim.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, Service>;
};
const services = compose.services;
const TOKEN = `stack-netns-token-${process.pid}`;

/** Services in an order that starts every dependency first (compose's depends_on). */
function startOrder(): string[] {
  const done: string[] = [];
  const visit = (name: string, path: string[]): void => {
    if (done.includes(name)) return;
    if (path.includes(name)) throw new Error(`depends_on cycle: ${[...path, name].join(' -> ')}`);
    for (const dep of Object.keys(services[name]?.depends_on ?? {})) visit(dep, [...path, name]);
    done.push(name);
  };
  for (const name of Object.keys(services)) visit(name, []);
  return done;
}

/** The host file a service mounts at `containerPath`. */
function mounted(s: Service, containerPath: string): string {
  const v = (s.volumes ?? []).find((x) => x.split(':')[1] === containerPath);
  if (!v) throw new Error(`no volume mounted at ${containerPath}`);
  return join(COMPOSE, v.split(':')[0]!);
}

/** The Dockerfile's HEALTHCHECK command (the mirrorlb image's own check). */
function dockerfileHealthcheck(): string[] {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const m = /^HEALTHCHECK .*?CMD (\[.*\])\s*$/m.exec(text);
  if (!m) throw new Error('no HEALTHCHECK CMD [...] in the Dockerfile');
  return JSON.parse(m[1]!) as string[];
}

function nginxConf(dir: string, include: string): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'nginx.conf');
  writeFileSync(
    file,
    [
      'daemon off;',
      'worker_processes 1;',
      'user root;',
      `pid ${dir}/nginx.pid;`,
      `error_log ${dir}/error.log warn;`,
      'events { worker_connections 512; }',
      'http {',
      '  access_log off;',
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((p) => `  ${p}_temp_path ${dir}/${p};`),
      `  include ${include};`,
      '}',
      '',
    ].join('\n'),
  );
  return file;
}

/** The argv that runs service `name` as a process (what its container would run). */
function commandOf(name: string, s: Service, dir: string): string[] {
  if (s.build !== undefined) {
    // The mirrorlb image: ENTRYPOINT node bin/mirrorlb.js; a sim's command, or the default CMD.
    if (s.command) return [process.execPath, BIN, ...s.command.split(/\s+/)];
    return [process.execPath, BIN, '--config', mounted(s, '/etc/mirrorlb/mirrorlb.yml')];
  }
  if (s.image?.startsWith('nginx:')) {
    const conf = nginxConf(join(dir, name), mounted(s, '/etc/nginx/conf.d/default.conf'));
    return ['nginx', '-e', join(dir, name, 'error.log'), '-c', conf];
  }
  if (s.image?.startsWith('prom/prometheus:')) {
    return [
      'prometheus',
      `--config.file=${mounted(s, '/etc/prometheus/prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, name, 'data')}`,
      '--web.listen-address=0.0.0.0:9090',
    ];
  }
  throw new Error(`no way to run service ${name} (${s.image ?? 'build'})`);
}

async function healthy(fnet: FaultNet, name: string, s: Service, proc: Proc): Promise<void> {
  // Compose reads `$$` in a file as a literal `$`; the Dockerfile's check is used as written.
  const test =
    s.healthcheck?.test.map((a) => a.replace(/\$\$/g, '$')) ??
    (s.build !== undefined ? ['CMD', ...dockerfileHealthcheck()] : null);
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.hasExited()) throw new Error(`${name} exited: ${proc.stderr().slice(-1500)}`);
    let ok: boolean;
    if (test) {
      if (test[0] !== 'CMD') throw new Error(`${name}: healthcheck form ${test[0]} not supported here`);
      const argv = test.slice(1).map((a) => (a === 'node' ? process.execPath : a));
      ok = (await fnet.net.exec(name, argv, { timeoutMs: 5000 })).code === 0;
    } else {
      // Prometheus has no compose healthcheck; its own readiness endpoint.
      ok = (await fnet.http(`http://${name}:9090/-/ready`, { timeoutMs: 2000 })).status === 200;
    }
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${name} not healthy in 30 s: ${proc.stderr().slice(-1500)}`);
    await sleep(200);
  }
}

async function missingTools(): Promise<string[]> {
  const missing: string[] = [];
  for (const tool of ['nginx', 'prometheus', 'curl']) {
    if ((await run(['sh', '-c', `command -v ${tool}`], { timeoutMs: 5000 })).code !== 0) missing.push(tool);
  }
  return missing;
}

const missing = await missingTools();
const fnet =
  missing.length > 0 && !STRICT
    ? (t.test(
        `compose/sim.yml in namespaces (${missing.join(', ')} not installed)`,
        { skip: true },
        () => {},
      ),
      null)
    : await faultNet(t, ['client', ...Object.keys(services)]);

if (fnet) {
  t.test('compose/sim.yml as processes in namespaces: a failover end to end', async (t) => {
    const started = Date.now();
    const procs: Record<string, Proc> = {};
    const order = startOrder();
    for (const name of order) {
      const s = services[name]!;
      t.equal(s.hostname, name, `${name} keeps its service name as host name`);
      const env = { ...process.env, MIRRORLB_ADMIN_TOKEN: TOKEN };
      const p = startProc(name, fnet.net.wrap(name, commandOf(name, s, fnet.dir)), { env });
      t.teardown(async () => {
        // nginx stops its workers on QUIT; anything left is killed with the namespace.
        p.signal('SIGQUIT');
        await Promise.race([p.exited, sleep(2000)]);
        await p.kill();
      });
      procs[name] = p;
      await healthy(fnet, name, s, p);
    }
    t.pass(`started in depends_on order, each healthy: ${order.join(', ')}`);
    const upMs = Date.now() - started;

    const lbPorts = (services.mirrorlb!.ports ?? []).map((p) => Number(p.split(':').at(-1)));
    t.same(lbPorts.slice(0, 2), [1972, 11972], 'mirrorlb publishes 1972 and 11972');
    const ap1 = await fnet.agent.connect('mirrorlb', 1972);
    t.equal(await readGreeting(ap1), 'ap1a', 'mirrorlb:1972 reaches ap1a');
    const ap2 = await fnet.agent.connect('mirrorlb', 11972);
    t.equal(await readGreeting(ap2), 'ap2a', 'mirrorlb:11972 reaches ap2a');

    // The status page through the whole web tier: nginx -> webgw1|webgw2 -> member.
    const viaNginx = await fnet.http('http://nginx/ap1a/csp/mirror_status.cxw');
    t.same(
      [viaNginx.status, viaNginx.body],
      [200, 'SUCCESS'],
      'http://nginx/ap1a/csp/mirror_status.cxw: SUCCESS',
    );
    const backupPage = await fnet.http('http://webgw2/ap1b/csp/mirror_status.cxw');
    t.same([backupPage.status, backupPage.body], [503, 'FAILED'], 'http://webgw2/ap1b/...: FAILED');

    // compose/failover.sh from the client host, its control ports pointed at the members.
    const env = {
      ...process.env,
      SIM_AP1A: 'ap1a:8080',
      SIM_AP1B: 'ap1b:8080',
      SIM_AP2A: 'ap2a:8080',
      SIM_AP2B: 'ap2b:8080',
    };
    const script = join(COMPOSE, 'failover.sh');
    const status = await run(fnet.net.wrap('client', [script, 'status']), { env, timeoutMs: 20_000 });
    t.equal(status.stdout, 'ap1a primary\nap1b backup\nap2a primary\nap2b backup\n', 'failover.sh status');

    let ap1Closed: number | null = null;
    const onClose = (): void => void (ap1Closed ??= Date.now());
    ap1.on('end', onClose).on('close', onClose);
    const tFailover = Date.now();
    const crash = await run(fnet.net.wrap('client', [script, 'ap1', 'crash']), { env, timeoutMs: 20_000 });
    t.equal(crash.code, 0, 'failover.sh ap1 crash', { output: crash.stdout + crash.stderr });
    t.equal(crash.stdout, 'ap1a -> down\nap1b -> primary\n', 'ap1a down, then ap1b primary');

    let firstOnB: number | null = null;
    for (const deadline = Date.now() + 15_000; firstOnB === null && Date.now() < deadline; await sleep(50)) {
      const s = await fnet.agent.connect('mirrorlb', 1972).catch(() => null);
      if (!s) continue;
      const who = await readGreeting(s, 10_000).catch(() => null);
      s.destroy();
      if (who === 'ap1b') firstOnB = Date.now();
      else t.equal(who, null, 'no client reaches ap1a once it is down');
    }
    t.ok(
      firstOnB !== null,
      `a new client on mirrorlb:1972 reached ap1b ${firstOnB! - tFailover} ms after failover.sh started`,
    );
    t.ok(
      ap1Closed !== null,
      `the session on ap1a was closed (${ap1Closed === null ? '-' : ap1Closed - tFailover} ms)`,
    );
    ap2.write('ap2 still there');
    t.equal(
      (await readUpTo(ap2, 15, 5000)).data.toString(),
      'ap2 still there',
      'the ap2 session was not touched',
    );

    const st = JSON.parse((await fnet.http('http://mirrorlb:9090/status')).body) as {
      mirrors: Array<{ name: string; primary: string | null }>;
    };
    t.same(
      st.mirrors.map((m) => [m.name, m.primary]),
      [
        ['ap1', 'ap1b'],
        ['ap2', 'ap2a'],
      ],
      '/status: ap1 on ap1b, ap2 on ap2a',
    );
    const metrics = (await fnet.http('http://mirrorlb:9090/metrics')).body;
    t.match(metrics, /mirrorlb_failovers_total\{mirror="ap1"\} 1\b/, 'one failover counted for ap1');

    // Prometheus scrapes mirrorlb every 5 s (compose/prometheus.yml): it sees the failover too.
    let promSaw: string | null = null;
    for (const deadline = Date.now() + 20_000; promSaw === null && Date.now() < deadline; await sleep(500)) {
      const q = await fnet.http(
        `http://prometheus:9090/api/v1/query?query=${encodeURIComponent('mirrorlb_failovers_total{mirror="ap1"}')}`,
      );
      const value = (JSON.parse(q.body || '{}') as { data?: { result?: Array<{ value: [number, string] }> } })
        .data?.result?.[0]?.value[1];
      if (value === '1') promSaw = value;
    }
    t.equal(promSaw, '1', 'Prometheus scraped mirrorlb_failovers_total{mirror="ap1"} = 1');

    const restore = await run(fnet.net.wrap('client', [script, 'restore']), { env, timeoutMs: 20_000 });
    t.equal(restore.code, 0, 'failover.sh restore', { output: restore.stdout + restore.stderr });
    let back = false;
    for (const deadline = Date.now() + 15_000; !back && Date.now() < deadline; await sleep(100)) {
      const s = await fnet.agent.connect('mirrorlb', 1972).catch(() => null);
      if (!s) continue;
      back = (await readGreeting(s, 10_000).catch(() => null)) === 'ap1a';
      s.destroy();
    }
    t.ok(back, 'after failover.sh restore, new clients reach ap1a again');
    ap1.destroy();
    ap2.destroy();

    record(newResults(t, 'stack', 'fault', { hosts: fnet.net.hosts }), {
      id: 'stack-failover',
      fault: 'compose/sim.yml: `failover.sh ap1 crash`',
      description:
        'the license-free stack as processes in namespaces under its compose host names; compose/failover.sh ap1 crash (ap1a down, 1 s later ap1b primary) from a client host',
      expected:
        "ap1a's session closed, new clients on mirrorlb:1972 reach ap1b, ap2 untouched, the failover counted in /metrics and seen by Prometheus",
      passed: t.counts.fail === 0,
      figures: {
        services: order.length,
        upMs,
        sessionClosedMs: ap1Closed === null ? null : ap1Closed - tFailover,
        firstOnNewPrimaryMs: firstOnB === null ? null : firstOnB - tFailover,
        failoverGapMs: 1000,
        totalMs: Date.now() - started,
      },
    });
  });
}
