/**
 * `npm run test:containers`: the compose stacks in a real container engine (podman, with
 * Debian's docker-compose on podman's Docker-compatible API), checked as a user would.
 * Not part of `npm test` (it builds images and takes minutes); CI runs it after.
 *
 * Published ports are the compose defaults unless PORT_* is set (compose/README.md), so
 * a developer can run it beside other jobs: PORT_AP1=23972 ... npm run test:containers.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { parse, stringify } from 'yaml';
import { eventually, readGreeting } from '../helpers/sim.js';
import {
  ApiService,
  HealthDriver,
  ROOT,
  missingTools,
  prefix,
  projectContainers,
  run,
  runAsync,
} from './engine.js';

const STRICT = process.env.MIRRORLB_TEST_STRICT === '1';
const IMAGE = 'localhost/mirrorlb:local';

/** Host ports: the compose files' defaults, or PORT_* from the environment. */
const PORTS = {
  PORT_AP1: 1972,
  PORT_AP2: 11972,
  PORT_ADMIN: 9090,
  PORT_PROMETHEUS: 9091,
  PORT_NGINX: 80,
  PORT_WEBGW1: 8080,
  PORT_WEBGW2: 8081,
  PORT_SIM_AP1A: 9201,
  PORT_SIM_AP1B: 9202,
  PORT_SIM_AP2A: 9203,
  PORT_SIM_AP2B: 9204,
};
const port = (name: keyof typeof PORTS): number => Number(process.env[name] ?? PORTS[name]);

const missing = missingTools();
if (process.getuid?.() !== 0) missing.push('(root: podman runs rootful here)');
if (missing.length > 0) {
  const why = `the container suite needs: ${missing.join(', ')}`;
  if (STRICT) t.fail(`${why} (MIRRORLB_TEST_STRICT=1)`);
  else t.skip(why);
} else {
  t.test('the compose stacks in podman', { timeout: 900_000 }, main);
}

/** A client of a simulated SuperServer through mirrorlb: the member's name, socket open. */
async function greet(hostPort: number, timeoutMs = 3000): Promise<{ name: string; socket: net.Socket }> {
  const socket = net.connect({ host: '127.0.0.1', port: hostPort });
  socket.on('error', () => undefined);
  try {
    const name = await readGreeting(socket, timeoutMs);
    return { name, socket };
  } catch (err) {
    socket.destroy();
    throw err;
  }
}

async function greetsAs(hostPort: number, name: string): Promise<boolean> {
  try {
    const g = await greet(hostPort, 2000);
    g.socket.destroy();
    return g.name === name;
  } catch {
    return false;
  }
}

async function httpGet(url: string, init: RequestInit = {}): Promise<{ status: number; body: string }> {
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(5000) });
    return { status: res.status, body: await res.text() };
  } catch {
    return { status: 0, body: '' };
  }
}

/** Every service_healthy / service_started dependency of the rendered compose file. */
function dependencies(rendered: string): Array<{ service: string; on: string; condition: string }> {
  const doc = parse(rendered) as {
    services: Record<string, { depends_on?: Record<string, { condition?: string }> | string[] }>;
  };
  const out: Array<{ service: string; on: string; condition: string }> = [];
  for (const [service, def] of Object.entries(doc.services)) {
    const deps = def.depends_on ?? {};
    if (Array.isArray(deps)) for (const on of deps) out.push({ service, on, condition: 'service_started' });
    else
      for (const [on, d] of Object.entries(deps))
        out.push({ service, on, condition: d.condition ?? 'service_started' });
  }
  return out;
}

/** Asserts the start order the compose file's depends_on asks for. */
async function checkOrder(t: Tap.Test, project: string, rendered: string, driver: HealthDriver) {
  const states = new Map((await projectContainers(project)).map((c) => [c.service, c]));
  const deps = dependencies(rendered);
  t.ok(deps.length > 0, 'the file has dependencies to honour');
  for (const { service, on, condition } of deps) {
    const s = states.get(service);
    const d = states.get(on);
    if (!s || !d) {
      t.fail(`${service} or ${on} has no container`);
      continue;
    }
    if (condition === 'service_healthy') {
      const healthy = driver.needed ? driver.healthySince.get(on) : undefined;
      if (driver.needed) {
        t.ok(
          healthy !== undefined && s.startedAt >= healthy,
          `${service} started after ${on}'s first passing healthcheck began`,
          { started: s.startedAt, healthy },
        );
      } else t.ok(s.startedAt >= d.startedAt, `${service} started after ${on}`);
    } else t.ok(s.startedAt >= d.startedAt, `${service} started after ${on} started`);
  }
}

async function main(t: Tap.Test): Promise<void> {
  const suiteStart = Date.now();
  const work = mkdtempSync(path.join(tmpdir(), `${prefix()}-compose-`));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));

  // --- images ---------------------------------------------------------------------------
  let started = Date.now();
  const base = run(path.join(ROOT, 'scripts/containers/base-images.sh'), [], { timeoutMs: 900_000 });
  t.equal(base.status, 0, 'base images built (or cached)', { output: base.stdout + base.stderr });
  if (base.status !== 0) return;
  t.comment(`base images: ${((Date.now() - started) / 1000).toFixed(0)}s`);

  started = Date.now();
  const build = run(path.join(ROOT, 'scripts/containers/build-image.sh'), [IMAGE], { timeoutMs: 900_000 });
  t.equal(build.status, 0, 'mirrorlb image built from the Dockerfile', { output: build.stderr.slice(-4000) });
  if (build.status !== 0) return;
  const size = Number(run('podman', ['image', 'inspect', '--format', '{{.Size}}', IMAGE]).stdout.trim());
  t.comment(
    `image ${IMAGE}: ${(size / 1e6).toFixed(0)} MB, built in ${((Date.now() - started) / 1000).toFixed(0)}s`,
  );
  const image = (
    JSON.parse(run('podman', ['image', 'inspect', IMAGE]).stdout) as Array<{
      Config: { User?: string };
      Healthcheck?: { Test?: string[] } | null;
    }>
  )[0]!;
  t.equal(image.Config.User, 'node', 'the image runs as user node');
  t.match(image.Healthcheck?.Test?.join(' ') ?? '', /\/healthz/, 'the image keeps its HEALTHCHECK');
  t.not(run('podman', ['run', '--rm', '--entrypoint', 'id', IMAGE, '-u']).stdout.trim(), '0', 'uid is not 0');

  // --- the compose client on podman's Docker API ----------------------------------------
  const api = new ApiService();
  await api.start();
  t.teardown(() => api.stop());
  const composeEnv: Record<string, string | undefined> = {
    PATH: process.env.PATH,
    DOCKER_HOST: `unix://${api.socket}`,
  };
  for (const k of Object.keys(PORTS)) if (process.env[k]) composeEnv[k] = process.env[k];
  const compose = (project: string, files: string[], args: string[], projectDir?: string) =>
    runAsync(
      'docker-compose',
      [
        '-p',
        project,
        ...(projectDir ? ['--project-directory', projectDir] : []),
        ...files.flatMap((f) => ['-f', f]),
        ...args,
      ],
      composeEnv,
    );

  // Nothing exported (only the engine socket and port moves): both files render.
  for (const file of ['compose/stack.yml', 'compose/sim.yml']) {
    const r = await runAsync('docker-compose', ['-f', file, 'config', '-q'], {
      PATH: process.env.PATH,
    });
    t.equal(r.status, 0, `${file} renders with no variable set`, { stderr: r.stderr });
  }

  await t.test('sim.yml: up, route, fail over, scrape, down', (t) => simStack(t, compose, composeEnv));
  await t.test('stack.yml with simulators for IRIS and the gateways: start order, routing', (t) =>
    stackVariant(t, compose, work, composeEnv),
  );
  t.comment(`container suite: ${((Date.now() - suiteStart) / 1000).toFixed(0)}s in all`);
}

type Compose = (
  project: string,
  files: string[],
  args: string[],
  projectDir?: string,
) => Promise<{ status: number; stdout: string; stderr: string }>;

/** Brings a project up (watching for the first routed client), returns when `up` did. */
async function up(t: Tap.Test, compose: Compose, project: string, files: string[], projectDir?: string) {
  const driver = new HealthDriver(project);
  if (driver.needed) t.comment('no systemd here: the suite runs each healthcheck on its interval');
  driver.start();
  let down = false;
  const tearDown = async () => {
    if (down) return;
    down = true;
    driver.stop();
    await compose(project, files, ['down', '--timeout', '5'], projectDir);
  };
  t.teardown(tearDown);
  const rendered = (await compose(project, files, ['config'], projectDir)).stdout;
  const t0 = Date.now();
  let firstRouted: number | null = null;
  const upDone = compose(project, files, ['up', '-d', '--no-build'], projectDir);
  let finished = false;
  void upDone.then(() => (finished = true));
  // The first client that gets through: polled while `up` is still starting services.
  const routed = eventually(
    async () => {
      if (await greetsAs(port('PORT_AP1'), 'ap1a')) firstRouted ??= Date.now();
      return firstRouted !== null;
    },
    240_000,
    100,
  );
  const result = await upDone;
  t.equal(result.status, 0, `${project}: up succeeded`, { stderr: result.stderr.slice(-3000) });
  t.ok(finished);
  t.ok(await routed, 'a client gets routed to ap1a');
  if (firstRouted !== null)
    t.comment(`${project}: up -> first routed client ${((firstRouted - t0) / 1000).toFixed(1)}s`);
  return { driver, rendered, tearDown };
}

async function simStack(t: Tap.Test, compose: Compose, _env: Record<string, string | undefined>) {
  const project = `${prefix()}sim`;
  const files = ['compose/sim.yml'];
  const { driver, rendered, tearDown } = await up(t, compose, project, files);
  await checkOrder(t, project, rendered, driver);

  // Clients on both published mirror ports.
  const one = await greet(port('PORT_AP1'));
  t.equal(one.name, 'ap1a', `a client on ${port('PORT_AP1')} is greeted by ap1a`);
  const two = await greet(port('PORT_AP2'));
  t.equal(two.name, 'ap2a', `a client on ${port('PORT_AP2')} is greeted by ap2a`);
  two.socket.destroy();
  // Read on (the echo is discarded), so the socket sees the balancer's FIN when it comes.
  const closed = new Promise<void>((resolve) => one.socket.once('close', () => resolve()));
  one.socket.resume();
  one.socket.write('ping\n');

  // compose/failover.sh, pointed at the published control ports.
  const sims: Record<string, string> = {
    SIM_AP1A: `127.0.0.1:${port('PORT_SIM_AP1A')}`,
    SIM_AP1B: `127.0.0.1:${port('PORT_SIM_AP1B')}`,
    SIM_AP2A: `127.0.0.1:${port('PORT_SIM_AP2A')}`,
    SIM_AP2B: `127.0.0.1:${port('PORT_SIM_AP2B')}`,
  };
  const fo = run('compose/failover.sh', ['ap1'], { env: { ...process.env, ...sims } });
  t.equal(fo.status, 0, 'compose/failover.sh ap1 ran', { output: fo.stdout + fo.stderr });
  t.ok(await eventually(() => greetsAs(port('PORT_AP1'), 'ap1b'), 60_000, 200), 'new clients reach ap1b');
  const wasClosed = await Promise.race([
    closed.then(() => true),
    new Promise((r) => setTimeout(r, 30_000, false)),
  ]);
  t.ok(wasClosed, 'the session opened on ap1a was closed');
  one.socket.destroy();

  // Admin: reads open, actions refused (no token exported: contract's admin section).
  const admin = `http://127.0.0.1:${port('PORT_ADMIN')}`;
  t.equal((await httpGet(`${admin}/status`)).status, 200, 'admin /status answers');
  const act = await httpGet(`${admin}/mirrors/ap1/members/ap1a/drain`, { method: 'POST' });
  t.equal(act.status, 403, 'a maintenance action without a token is refused');
  t.match(act.body, /admin\.token/, 'and the answer says to set admin.token');

  // Prometheus scrapes mirrorlb.
  const prom = `http://127.0.0.1:${port('PORT_PROMETHEUS')}`;
  let health = '';
  const scraped = await eventually(
    async () => {
      const r = await httpGet(`${prom}/api/v1/targets`);
      if (r.status !== 200) return false;
      const doc = JSON.parse(r.body) as {
        data: { activeTargets: Array<{ health: string; labels: { job: string } }> };
      };
      health = doc.data.activeTargets.find((x) => x.labels.job === 'mirrorlb')?.health ?? '';
      return health === 'up';
    },
    90_000,
    1000,
  );
  t.ok(scraped, `Prometheus' mirrorlb target is up (last seen: ${health || 'none'})`);
  const q = await httpGet(
    `${prom}/api/v1/query?query=${encodeURIComponent('mirrorlb_member_primary{member="ap1b"}')}`,
  );
  t.match(q.body, /"value":\[[\d.]+,"1"\]/, 'and has mirrorlb_member_primary{member="ap1b"} = 1');

  // The image's own HEALTHCHECK on the balancer, and who it runs as.
  const lb = (await projectContainers(project)).find((c) => c.service === 'mirrorlb');
  t.ok(
    await eventually(
      async () =>
        (await projectContainers(project)).find((c) => c.service === 'mirrorlb')?.health === 'healthy',
      60_000,
      500,
    ),
    'the mirrorlb container turns healthy (the image HEALTHCHECK)',
  );
  const uid = run('podman', ['exec', lb!.id, 'id', '-u']);
  t.equal(uid.stdout.trim(), '1000', 'mirrorlb runs as uid 1000 (node) in the container');

  // down leaves nothing behind.
  await tearDown();
  await leavesNothing(t, project);
}

async function leavesNothing(t: Tap.Test, project: string) {
  const label = `label=com.docker.compose.project=${project}`;
  t.equal(run('podman', ['ps', '-a', '-q', '--filter', label]).stdout.trim(), '', 'down: no container left');
  t.equal(
    run('podman', ['network', 'ls', '-q', '--filter', label]).stdout.trim(),
    '',
    'down: no network left',
  );
  const vols = run('podman', ['volume', 'ls', '--format', '{{.Name}}']).stdout;
  t.equal(
    run('podman', ['volume', 'ls', '-q', '--filter', label]).stdout.trim(),
    '',
    'down: no project volume left',
  );
  t.notMatch(vols, new RegExp(`^${project}_`, 'm'), 'down: no volume named after the project');
  const dangling = run('podman', ['volume', 'ls', '-q', '--filter', 'dangling=true']).stdout.trim();
  t.equal(dangling, '', 'down: no anonymous volume left');
}

/**
 * stack.yml as written (depends_on, conditions, ports, mounts of mirrorlb), with each
 * InterSystems image swapped for what stands in for it in sim.yml: `mirrorlb sim` for the
 * members, the nginx stand-in for the gateways, an idle container for the arbiter. The
 * stand-ins' healthchecks run every 2s instead of the IRIS intervals: the order is what is
 * proven, not the IRIS timings.
 */
async function stackVariant(
  t: Tap.Test,
  compose: Compose,
  work: string,
  env: Record<string, string | undefined>,
) {
  const project = `${prefix()}stack`;
  // Rendered with the PORT_* moves in force: they are baked into the variant's ports.
  const doc = parse(
    (await runAsync('docker-compose', ['-f', 'compose/stack.yml', 'config'], env)).stdout,
  ) as { services: Record<string, Record<string, unknown>> };
  const simDoc = parse(
    (await runAsync('docker-compose', ['-f', 'compose/sim.yml', 'config'], { PATH: process.env.PATH }))
      .stdout,
  ) as { services: Record<string, { healthcheck: object }> };
  const sim = (name: string) => ({
    image: IMAGE,
    command: `sim --name ${name} --role ${name.endsWith('a') ? 'primary' : 'backup'} --host 0.0.0.0 --superserver 1972 --web 52773 --control 8080`,
    // sim.yml's check of a simulated member, every 2s.
    healthcheck: simDoc.services.ap1a!.healthcheck,
    volumes: [],
    environment: {},
  });
  const s = doc.services;
  for (const m of ['ap1a', 'ap1b', 'ap2a', 'ap2b']) Object.assign(s[m]!, sim(m));
  // An idle container, like the arbiter as far as compose is concerned (no healthcheck).
  Object.assign(s.arbiter!, {
    image: IMAGE,
    entrypoint: ['sleep', 'infinity'],
    command: [],
    healthcheck: { disable: true },
  });
  for (const g of ['webgw1', 'webgw2'])
    Object.assign(s[g]!, {
      image: 'docker.io/library/nginx:1.27',
      environment: {},
      volumes: [`${path.join(ROOT, 'compose/nginx/webgw-sim.conf')}:/etc/nginx/conf.d/default.conf:ro`],
      healthcheck: { ...(s[g]!.healthcheck as object), interval: '2s' },
    });
  // The variant keeps the stack's own mirrorlb config (compose/mirrorlb.yml), mounted as is.
  const file = path.join(work, 'stack-sim.yml');
  writeFileSync(file, stringify(doc));
  const { driver, rendered, tearDown } = await up(t, compose, project, [file], path.join(ROOT, 'compose'));
  await checkOrder(t, project, rendered, driver);
  const order = [...driver.healthySince.entries()].sort((a, b) => a[1] - b[1]).map(([n]) => n);
  t.comment(`healthy in this order: ${order.join(', ')}`);
  t.ok(await eventually(() => greetsAs(port('PORT_AP2'), 'ap2a'), 30_000, 200), 'ap2 routes to ap2a');
  await tearDown();
  await leavesNothing(t, project);
}
