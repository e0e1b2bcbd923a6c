/**
 * Static checks of the shipped stacks (compose/, cpf/, Dockerfile): what can be verified
 * without a Docker engine or an IRIS license key. Each file is checked by the tool that
 * reads it in production where that tool is installed (docker-compose, nginx, promtool,
 * mirrorlb's own config loader), and the files are cross-checked against each other: the
 * names mirrorlb dials are services of the same compose file, the ports it listens on are
 * published, each IRIS member gets the merge file of its role. compose/failover.sh runs for
 * real against four simulated members.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import YAML from 'yaml';
import { PassThrough } from 'node:stream';
import { runSim } from '../src/cli/sim.js';
import { withSim } from './helpers/sim.js';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const COMPOSE = join(ROOT, 'compose');
const STRICT = process.env.MIRRORLB_TEST_STRICT === '1';
const TOKEN = 'static-test-token-0123456789';

const read = (rel: string): string => readFileSync(join(ROOT, rel), 'utf8');

function hasTool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

/** Options for t.test: skipped with a reason when a tool is missing, failed instead under STRICT. */
function needs(...tools: string[]): { skip?: string } {
  const missing = tools.filter((x) => !hasTool(x));
  return unless(missing.length === 0, `${missing.join(', ')} not installed`);
}

/** Options for t.test: skipped with `reason` unless `ok`, failed instead under STRICT. */
function unless(ok: boolean, reason: string): { skip?: string } {
  return ok || STRICT ? {} : { skip: reason };
}

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000, ...opts });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

/** Like run(), without blocking the event loop: for commands that talk to this process. */
function runAsync(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv } = {}) {
  return new Promise<{ status: number | null; out: string }>((done) => {
    const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    child.on('close', (status) => done({ status, out }));
  });
}

// ---------------------------------------------------------------------------------------
// Compose files as plain data (YAML merge keys resolved, ${VAR} left as written).

interface Service {
  image?: string;
  build?: { context: string; dockerfile?: string };
  hostname?: string;
  command?: string[] | string;
  ports?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
}
interface ComposeFile {
  version: string;
  services: Record<string, Service>;
}

const loadCompose = (rel: string): ComposeFile => YAML.parse(read(rel), { merge: true }) as ComposeFile;
const stack = loadCompose('compose/stack.yml');
const sim = loadCompose('compose/sim.yml');

/** Container ports a service publishes ("127.0.0.1:9090:9090" → 9090). */
const publishedPorts = (s: Service): number[] => (s.ports ?? []).map((p) => Number(p.split(':').at(-1)));
/** A port entry with its host-port variables at their defaults ('${PORT_ADMIN:-9090}' → 9090). */
const withDefaults = (p: string): string => p.replace(/\$\{PORT_[A-Z0-9_]+:-(\d+)\}/g, '$1');
const healthyDeps = (s: Service): string[] =>
  Object.entries(s.depends_on ?? {})
    .filter(([, d]) => d.condition === 'service_healthy')
    .map(([name]) => name);

interface LbConfig {
  mirrors: {
    name: string;
    listen: string;
    members: { name: string; address: string; check: string | string[] }[];
  }[];
  admin: { listen: string; token: string };
}
const lbStack = YAML.parse(read('compose/mirrorlb.yml')) as LbConfig;
const lbSim = YAML.parse(read('compose/mirrorlb-sim.yml')) as LbConfig;
const checks = (m: { check: string | string[] }): string[] => (Array.isArray(m.check) ? m.check : [m.check]);
const splitHostPort = (hp: string): [string, number] => {
  const i = hp.lastIndexOf(':');
  return [hp.slice(0, i), Number(hp.slice(i + 1))];
};
const MEMBERS = ['ap1a', 'ap1b', 'ap2a', 'ap2b'];

// ---------------------------------------------------------------------------------------

t.test('docker-compose (v1) accepts both compose files', needs('docker-compose'), async (t) => {
  // Run from elsewhere: compose/.env must be found beside the file, not in the working dir.
  const cwd = mkdtempSync(join(tmpdir(), 'mlb-compose-'));
  t.teardown(() => rmSync(cwd, { recursive: true, force: true }));
  const env: NodeJS.ProcessEnv = { ...process.env, MIRRORLB_ADMIN_TOKEN: TOKEN };
  delete env.IRIS_TAG;
  for (const file of ['stack.yml', 'sim.yml']) {
    const r = run('docker-compose', ['-f', join(COMPOSE, file), 'config', '-q'], { cwd, env });
    t.equal(r.status, 0, `${file}: docker-compose config -q ${r.out}`);
  }
  const envTag = /^IRIS_TAG=(\S+)$/m.exec(read('compose/.env'))?.[1];
  t.ok(envTag, 'compose/.env sets IRIS_TAG');
  const rendered = run('docker-compose', ['-f', join(COMPOSE, 'stack.yml'), 'config'], { cwd, env });
  const images = [...rendered.out.matchAll(/image: (containers\.intersystems\.com\/\S+)/g)].map((m) => m[1]);
  t.equal(images.length, 7, 'arbiter, four members, two gateways');
  t.ok(
    images.every((i) => i!.endsWith(`:${envTag}`)),
    `every InterSystems image takes the tag from compose/.env: ${images.join(' ')}`,
  );
  const overridden = run('docker-compose', ['-f', join(COMPOSE, 'stack.yml'), 'config'], {
    cwd,
    env: { ...env, IRIS_TAG: '2099.1' },
  });
  t.equal([...overridden.out.matchAll(/intersystems\/\w+:2099\.1/g)].length, 7, 'IRIS_TAG overrides it');
  // One command: nothing exported, and both files still render (no token: actions 403).
  const noToken: NodeJS.ProcessEnv = { ...env };
  delete noToken.MIRRORLB_ADMIN_TOKEN;
  for (const file of ['stack.yml', 'sim.yml']) {
    const bare = run('docker-compose', ['-f', join(COMPOSE, file), 'config'], { cwd, env: noToken });
    t.equal(bare.status, 0, `${file} renders with MIRRORLB_ADMIN_TOKEN unset ${bare.out}`);
    t.match(bare.out, /MIRRORLB_ADMIN_TOKEN: ''/, `${file}: the container gets it empty`);
    const moved = run('docker-compose', ['-f', join(COMPOSE, file), 'config'], {
      cwd,
      env: { ...noToken, PORT_AP1: '23972' },
    });
    t.match(moved.out, /published: 23972|23972:1972/, `${file}: PORT_AP1 moves the published port`);
  }
});

// Docker Compose v2 is not a Debian package (Debian ships v1, checked above), so CI cannot install
// it; where it is installed it must accept the files too. Its absence is noted, not a skip, so
// STRICT runs stay free of skips.
const composeV2 = hasTool('docker') && run('docker', ['compose', 'version']).status === 0;
if (composeV2) {
  t.test('docker compose (v2) accepts both compose files', async (t) => {
    const env: NodeJS.ProcessEnv = { ...process.env, MIRRORLB_ADMIN_TOKEN: TOKEN };
    for (const file of ['stack.yml', 'sim.yml']) {
      const r = run('docker', ['compose', '-f', join(COMPOSE, file), 'config', '-q'], { env });
      t.equal(r.status, 0, `${file}: ${r.out}`);
    }
  });
} else {
  t.comment(
    'Docker Compose v2 plugin not installed: the compose files were checked with docker-compose v1 only',
  );
}

t.test('start order: primaries, then backups, then gateways, then nginx and mirrorlb', async (t) => {
  const s = stack.services;
  t.same(s.ap1a!.depends_on, { arbiter: { condition: 'service_started' } });
  t.same(s.ap2a!.depends_on, { arbiter: { condition: 'service_started' } });
  t.same(healthyDeps(s.ap1b!), ['ap1a'], 'ap1b joins once ap1a is primary');
  t.same(healthyDeps(s.ap2b!), ['ap2a'], 'ap2b joins once ap2a is primary');
  for (const gw of ['webgw1', 'webgw2'])
    t.same(healthyDeps(s[gw]!).sort(), MEMBERS, `${gw} after every member`);
  t.same(healthyDeps(s.nginx!).sort(), ['webgw1', 'webgw2']);
  t.same(healthyDeps(s.mirrorlb!).sort(), ['webgw1', 'webgw2'], 'mirrorlb checks through both gateways');
  t.same(healthyDeps(s.prometheus ?? {}), [], 'no prometheus in the licensed stack');
  t.same(healthyDeps(sim.services.prometheus!), ['mirrorlb']);
  for (const gw of ['webgw1', 'webgw2']) t.same(healthyDeps(sim.services[gw]!).sort(), MEMBERS);

  // service_healthy on a service without a healthcheck would wait forever.
  const dockerfileHasCheck = /^HEALTHCHECK .*\/healthz/m.test(read('Dockerfile').replace(/\\\n\s*/g, ' '));
  for (const [file, compose] of [
    ['stack.yml', stack],
    ['sim.yml', sim],
  ] as const) {
    for (const [name, svc] of Object.entries(compose.services)) {
      for (const dep of healthyDeps(svc)) {
        const target = compose.services[dep]!;
        t.ok(
          target.healthcheck || (target.build && dockerfileHasCheck),
          `${file}: ${name} waits for ${dep} to be healthy, and ${dep} has a healthcheck`,
        );
      }
    }
  }
  t.ok(dockerfileHasCheck, 'the image checks /healthz');
});

t.test('IRIS members: image tag in one place, key, merge file of their role', async (t) => {
  const intersystems = Object.values(stack.services).filter((s) =>
    s.image?.startsWith('containers.intersystems.com/'),
  );
  t.equal(intersystems.length, 7);
  t.ok(
    intersystems.every((s) => s.image!.endsWith(':${IRIS_TAG}')),
    'every InterSystems image is tagged ${IRIS_TAG}',
  );
  t.equal(read('compose/.env').match(/^IRIS_TAG=/gm)?.length, 1, 'set once, in compose/.env');
  t.match(String(stack.services.arbiter!.command), /startISCAgent\.sh 2188/);
  for (const m of MEMBERS) {
    const svc = stack.services[m]!;
    t.match(svc.image!, /\/intersystems\/iris:/, `${m}: enterprise IRIS image`);
    t.equal(svc.hostname, m);
    t.same(svc.command, ['--key', '/iris-key/iris.key'], `${m}: key given to iris-main`);
    t.ok(svc.volumes!.includes('./iris.key:/iris-key/iris.key:ro'), `${m}: key mounted from ./iris.key`);
    t.ok(svc.volumes!.includes('../cpf:/cpf:ro'), `${m}: cpf/ mounted`);
    t.equal(svc.environment!.ISC_CPF_MERGE_FILE, `/cpf/${m}.cpf`);
    t.ok(existsSync(join(ROOT, 'cpf', `${m}.cpf`)), `cpf/${m}.cpf exists`);
    t.same(svc.healthcheck!.test, ['CMD', '/bin/sh', '/cpf/healthcheck.sh']);
  }
  t.ok(existsSync(join(ROOT, 'cpf', 'healthcheck.sh')));
  const sh = run('sh', ['-n', join(ROOT, 'cpf', 'healthcheck.sh')]);
  t.equal(sh.status, 0, `healthcheck.sh parses ${sh.out}`);
  t.match(read('compose/.gitignore'), /^iris\.key$/m, 'the key is never committed');
  t.match(read('.dockerignore'), /iris\.key/, 'nor sent to a docker build');
});

/** [Actions] lines of a merge file as { action, props }. */
function actions(cpf: string): { action: string; props: Record<string, string> }[] {
  const out: { action: string; props: Record<string, string> }[] = [];
  let inActions = false;
  for (const line of cpf.split('\n')) {
    if (/^\[/.test(line)) inActions = line.trim() === '[Actions]';
    if (!inActions || !line.includes(':')) continue;
    const i = line.indexOf(':');
    const props: Record<string, string> = {};
    // Properties are comma-separated; a quoted value may hold commas (Arg2="ap1,ap1a").
    for (const m of line.slice(i + 1).matchAll(/(\w+)=("[^"]*"|[^,]*)/g)) {
      props[m[1]!] = m[2]!.replace(/^"|"$/g, '');
    }
    out.push({ action: line.slice(0, i), props });
  }
  return out;
}

t.test('cpf/ merge files build each mirror', async (t) => {
  const roles = {
    ap1a: ['AP1', 'primary'],
    ap1b: ['AP1', 'backup'],
    ap2a: ['AP2', 'primary'],
    ap2b: ['AP2', 'backup'],
  };
  const cls = read('cpf/src/MirrorNS/API.cls');
  const className = /^Class (\S+) Extends %CSP\.REST/m.exec(cls)?.[1];
  t.equal(className, 'MirrorNS.API');
  t.match(cls, /<Route Url="\/get" Method="GET" Call="Get"\/>/);
  for (const field of ['HostName', 'UserName', 'Status', 'TimeStamp']) t.match(cls, `"${field}":`);
  for (const [member, [mirror, role]] of Object.entries(roles)) {
    const text = read(`cpf/${member}.cpf`);
    t.match(text, /^gmheap=\d+$/m, `${member}: gmheap raised`);
    // Only the newest CPF reference documents comment lines in a merge file; the working
    // merge files of the seed and of InterSystems have none (compose/README.md explains each line).
    t.same(
      text.split('\n').filter((l) => !/^(\[\w+\]|\w+=.*|\w+:.+|)$/.test(l)),
      [],
      `${member}: only sections, key=value and Action:props lines`,
    );
    const acts = actions(text);
    const one = (name: string) => acts.filter((a) => a.action === name);
    const cm = one('ConfigMirror');
    t.equal(cm.length, 1, `${member}: one ConfigMirror`);
    const props = cm[0]!.props;
    t.equal(props.Name, mirror, `${member}: mirror ${mirror}`);
    t.match(props.Name!, /^[A-Z0-9]{1,15}$/, 'mirror names: at most 15 upper-case characters');
    t.equal(props.Member, role, `${member}: ${role}`);
    t.equal(props.SystemName, member.toUpperCase());
    if (role === 'backup') {
      const primary = member.replace(/b$/, 'a');
      t.equal(props.Primary, primary, `${member} joins through ${primary}`);
      t.ok(stack.services[primary], `${primary} is a service`);
    } else {
      t.equal(props.Primary, 'localhost');
    }
    const [arbHost, arbPort] = splitHostPort(props.ArbiterURL!);
    t.ok(stack.services[arbHost], 'the arbiter is a service');
    t.match(String(stack.services[arbHost]!.command), `startISCAgent.sh ${arbPort}`);
    t.ok(
      one('ModifyService').some((a) => a.props.Name === '%Service_Mirror' && a.props.Enabled === '1'),
      `${member}: %Service_Mirror enabled`,
    );
    const mirrored = one('CreateDatabase').find((a) => a.props.MirrorSetName);
    t.same([mirrored?.props.MirrorSetName, mirrored?.props.MirrorDBName], [mirror, 'MIRRORNS']);
    const ns = one('CreateNamespace')[0]?.props;
    t.equal(ns?.Name, 'MIRRORNS');
    t.equal(ns?.Globals, mirrored?.props.Name, 'namespace data in the mirrored database');
    const app = one('CreateApplication')[0]?.props;
    t.same([app?.Name, app?.NameSpace, app?.DispatchClass], ['/csp/mirrorns/api', 'MIRRORNS', className]);
    const loads = one('Execute').filter((a) => a.props.MethodName === 'Load');
    t.same(
      loads.map((l) => [l.props.Namespace, l.props.Arg1]),
      [
        ['USER', '/cpf/src/MirrorNS/Setup.cls'],
        ['MIRRORNS', '/cpf/src/MirrorNS/API.cls'],
      ],
      'loads the class sources mounted from cpf/src: the REST class where its application runs',
    );
    // On a backup, MIRRORNS reads its data from the read-only mirrored copy: setting the
    // instance's CSPConfigName (without which its /apNx status path answers unexpectedly)
    // happens in USER, local on every member, and before anything runs in MIRRORNS.
    const execs = one('Execute');
    const setupAt = execs.findIndex((a) => a.props.MethodName === 'CSPConfigName');
    t.equal(execs[setupAt]?.props.Namespace, 'USER', `${member}: CSPConfigName set from USER`);
    t.ok(
      execs.slice(0, setupAt).every((a) => a.props.Namespace === 'USER'),
      `${member}: nothing in MIRRORNS runs before CSPConfigName is set`,
    );
    for (const l of loads) t.ok(existsSync(join(ROOT, 'cpf', l.props.Arg1!.slice('/cpf/'.length))));
    // Every Execute target must return a %Status (CPF reference, Execute): only %SYSTEM.OBJ
    // loads and the project's own class, whose method says so in its signature.
    const setup = read('cpf/src/MirrorNS/Setup.cls');
    for (const e of one('Execute')) {
      if (e.props.ClassName === '%SYSTEM.OBJ') continue;
      t.equal(e.props.ClassName, 'MirrorNS.Setup', `${member}: Execute calls the project's class`);
      t.match(
        setup,
        new RegExp(`ClassMethod ${e.props.MethodName}\\([^)]*\\) As %Status`),
        'returning %Status',
      );
    }
    const prefix = one('Execute').find((a) => a.props.MethodName === 'CSPConfigName');
    t.same(
      prefix?.props.Arg1?.split(',').sort(),
      [member.slice(0, 3), member],
      'accepts /apN and /apNx paths',
    );
    for (const user of ['SuperUser', 'CSPSystem'])
      t.ok(
        one('ModifyUser').some(
          (a) =>
            a.props.Name === user && a.props.ChangePassword === '0' && a.props.PasswordNeverExpires === '1',
        ),
        `${member}: ${user} needs no password change at first login`,
      );
  }
});

/** A Web Gateway CSP.ini as sections of key=value. */
function ini(text: string): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) out[(section = s[1]!)] = {};
    else out[section]![line.slice(0, line.indexOf('='))] = line.slice(line.indexOf('=') + 1);
  }
  return out;
}

t.test('Web Gateways: a mirror-aware profile per mirror, a direct profile per member', async (t) => {
  const csp = ini(read('compose/webgateway/CSP.ini'));
  t.equal(
    csp.SYSTEM!.IRISCONNECT_LIBRARY_PATH,
    '/opt/webgateway/bin',
    'connector library path as InterSystems sets it',
  );
  t.not(csp.SYSTEM!.REGISTRY_METHODS, 'Disabled', 'registry methods left enabled');
  for (const mirror of ['ap1', 'ap2']) {
    t.equal(csp[mirror]?.Mirror_Aware, '1', `${mirror} is mirror-aware`);
    t.ok(stack.services[csp[mirror]!.Ip_Address!], `${mirror} starts from a member that is a service`);
    t.equal(csp.APP_PATH_INDEX![`/${mirror}`], 'Enabled');
    t.equal(csp[`APP_PATH:/${mirror}`]?.Default_Server, mirror);
  }
  for (const m of MEMBERS) {
    t.notOk(csp[m]?.Mirror_Aware, `${m} is a direct profile`);
    t.equal(csp[m]?.Ip_Address, m);
    t.equal(csp[m]?.TCP_Port, '1972');
    t.equal(csp.SYSTEM_INDEX![m], 'Enabled');
    t.equal(csp.APP_PATH_INDEX![`/${m}`], 'Enabled');
    t.equal(csp[`APP_PATH:/${m}`]?.Default_Server, m, `/${m} goes to ${m} only`);
  }
  for (const gw of ['webgw1', 'webgw2']) {
    const svc = stack.services[gw]!;
    t.match(svc.image!, /\/intersystems\/webgateway:/);
    t.equal(svc.environment!.ISC_CSP_INI_FILE, '/webgateway-shared/CSP.ini');
    t.equal(svc.environment!.ISC_CSP_CONF_FILE, '/webgateway-shared/CSP.conf');
    t.ok(svc.volumes!.includes('./webgateway:/webgateway-shared'));
  }
  t.match(read('compose/webgateway/CSP.conf'), /CSP On/);
});

/** Checks that a mirrorlb config names only what its compose file provides. */
function crossCheck(
  t: Test,
  label: string,
  lb: LbConfig,
  compose: ComposeFile,
  gatewayPaths: (gw: string) => string[],
) {
  const lbSvc = compose.services.mirrorlb!;
  const published = publishedPorts(lbSvc);
  for (const mirror of lb.mirrors) {
    const [host, port] = splitHostPort(mirror.listen);
    t.equal(host, '0.0.0.0', `${label}: ${mirror.name} listens on every interface of the container`);
    t.ok(published.includes(port), `${label}: ${mirror.name}'s port ${port} is published`);
    for (const member of mirror.members) {
      const [mHost, mPort] = splitHostPort(member.address);
      t.ok(compose.services[mHost], `${label}: ${member.name} address ${mHost} is a service`);
      t.equal(mHost, member.name);
      t.equal(compose.services[mHost]?.hostname, mHost);
      t.equal(mPort, 1972, 'the SuperServer port inside the container');
      for (const url of checks(member)) {
        const u = new URL(url);
        t.ok(compose.services[u.hostname], `${label}: check host ${u.hostname} is a service`);
        t.notMatch(u.pathname, /^\/ap[12]\//, `${label}: ${url} is never a mirror-aware path`);
        if (u.hostname.startsWith('webgw')) {
          t.equal(
            u.pathname,
            `/${member.name}/csp/mirror_status.cxw`,
            `${url}: ${member.name}'s direct path`,
          );
          t.ok(gatewayPaths(u.hostname).includes(`/${member.name}`), `${u.hostname} routes /${member.name}`);
        }
      }
      t.ok(
        ['webgw1', 'webgw2'].every((gw) => checks(member).some((c) => new URL(c).hostname === gw)),
        `${label}: ${member.name} is checked through both gateways`,
      );
    }
  }
  const [adminHost, adminPort] = splitHostPort(lb.admin.listen);
  t.equal(adminHost, '0.0.0.0', `${label}: admin reachable from outside the container`);
  t.ok(
    lbSvc.ports!.map(withDefaults).includes(`127.0.0.1:${adminPort}:${adminPort}`),
    `${label}: admin published on loopback`,
  );
  t.equal(lb.admin.token, '${MIRRORLB_ADMIN_TOKEN:-}', `${label}: token from the environment, if any`);
  t.equal(
    lbSvc.environment!.MIRRORLB_ADMIN_TOKEN!,
    '${MIRRORLB_ADMIN_TOKEN:-}',
    'compose passes it on, unset ok',
  );
  t.equal(lbSvc.build?.context, '..', `${label}: mirrorlb built from the repository's Dockerfile`);
  t.same(
    publishedPorts(lbSvc).sort(),
    [...lb.mirrors.map((m) => splitHostPort(m.listen)[1]), adminPort].sort(),
  );
}

t.test('mirrorlb configs name services of their compose file; its ports are published', async (t) => {
  const csp = ini(read('compose/webgateway/CSP.ini'));
  const realPaths = Object.keys(csp.APP_PATH_INDEX!).filter((p) => csp.APP_PATH_INDEX![p] === 'Enabled');
  crossCheck(t, 'stack', lbStack, stack, () => realPaths);
  t.ok(stack.services.mirrorlb!.volumes!.includes('./mirrorlb.yml:/etc/mirrorlb/mirrorlb.yml:ro'));

  const simConf = read('compose/nginx/webgw-sim.conf');
  const simPaths = [...simConf.matchAll(/location (\/ap\w+)\/ \{ proxy_pass http:\/\/(\w+):(\d+); \}/g)];
  t.same(
    simPaths.map((m) => [m[1], m[2]]),
    MEMBERS.map((m) => [`/${m}`, m]),
    'each stand-in path goes to its own member',
  );
  crossCheck(t, 'sim', lbSim, sim, () => simPaths.map((m) => m[1]!));
  t.ok(sim.services.mirrorlb!.volumes!.includes('./mirrorlb-sim.yml:/etc/mirrorlb/mirrorlb.yml:ro'));
  for (const m of MEMBERS) {
    const cmd = String(sim.services[m]!.command).split(' ');
    const flag = (f: string) => cmd[cmd.indexOf(f) + 1];
    t.equal(cmd[0], 'sim');
    t.equal(flag('--name'), m);
    t.equal(flag('--host'), '0.0.0.0');
    t.equal(flag('--superserver'), '1972', `${m}: SuperServer where mirrorlb dials`);
    t.equal(flag('--web'), simPaths.find((p) => p[2] === m)?.[3], `${m}: web port where the gateways proxy`);
    t.equal(flag('--role'), m.endsWith('a') ? 'primary' : 'backup');
    // The same arguments start a real sim (on free loopback ports here), stopped at once.
    const local = cmd.slice(1).map((a, i, all) => {
      const prev = all[i - 1] ?? '';
      if (['--superserver', '--web', '--control'].includes(prev)) return '0';
      return prev === '--host' ? '127.0.0.1' : a;
    });
    const out = new PassThrough();
    let printed = '';
    out.on('data', (c: Buffer) => (printed += c.toString()));
    const stopped = new AbortController();
    stopped.abort();
    t.equal(
      await runSim(local, { stdout: out, stderr: out, signal: stopped.signal }),
      0,
      `${m}: mirrorlb sim runs`,
    );
    t.match(printed, `"name":"${m}"`);
    const direct = lbSim.mirrors.flatMap((x) => x.members).find((x) => x.name === m)!;
    t.ok(checks(direct).includes(`http://${m}:${flag('--web')}/csp/mirror_status.cxw`), `${m}: direct check`);
    t.ok(
      sim.services[m]!.ports!.map(withDefaults).includes(
        `127.0.0.1:${9200 + MEMBERS.indexOf(m) + 1}:${flag('--control')}`,
      ),
    );
  }
  t.same(
    [lbSim.mirrors.map((m) => [m.name, m.listen]), lbSim.mirrors.map((m) => m.members.map((x) => x.address))],
    [
      lbStack.mirrors.map((m) => [m.name, m.listen]),
      lbStack.mirrors.map((m) => m.members.map((x) => x.address)),
    ],
    'both stacks offer the same mirrors at the same addresses',
  );
});

t.test("the mirrorlb configs pass mirrorlb's own config loader", async (t) => {
  const { parseConfig } = await import('../src/config/load.js');
  for (const [file, lb] of [
    ['compose/mirrorlb.yml', lbStack],
    ['compose/mirrorlb-sim.yml', lbSim],
  ] as const) {
    const cfg = parseConfig(read(file), file, { MIRRORLB_ADMIN_TOKEN: TOKEN });
    t.equal(cfg.admin.token, TOKEN, `${file}: token substituted`);
    t.same(
      cfg.mirrors.map((m) => [
        m.name,
        m.listen.port,
        m.members.map((x) => [x.name, x.address.host, x.check.length]),
      ]),
      lb.mirrors.map((m) => [
        m.name,
        splitHostPort(m.listen)[1],
        m.members.map((x) => [x.name, x.name, checks(x).length]),
      ]),
      `${file}: mirrors and members as written`,
    );
    t.equal(parseConfig(read(file), file, {}).admin.token, null, `${file}: no token when unset`);
    t.equal(cfg.mirrors[0]!.kind, 'iris', `${file}: the IRIS answer classes`);
  }
});

t.test(
  'mirrorlb check accepts both configs',
  unless(existsSync(join(ROOT, 'dist', 'cli', 'check.js')), 'dist/ not built (npm ci builds it)'),
  async (t) => {
    const bin = join(ROOT, 'bin', 'mirrorlb.js');
    const env: NodeJS.ProcessEnv = { ...process.env, MIRRORLB_ADMIN_TOKEN: TOKEN };
    for (const file of ['compose/mirrorlb.yml', 'compose/mirrorlb-sim.yml']) {
      const ok = run(process.execPath, [bin, 'check', '--config', file], { cwd: ROOT, env });
      t.equal(ok.status, 0, `${file}: ${ok.out}`);
      t.match(ok.out, /ap1/);
      const noToken: NodeJS.ProcessEnv = { ...env };
      delete noToken.MIRRORLB_ADMIN_TOKEN;
      const bare = run(process.execPath, [bin, 'check', '--config', file], { cwd: ROOT, env: noToken });
      t.equal(bare.status, 0, `${file}: accepted without MIRRORLB_ADMIN_TOKEN ${bare.out}`);
      t.match(bare.out, /no token/);
    }
  },
);

t.test('prometheus scrapes mirrorlb', needs('promtool'), async (t) => {
  const r = run('promtool', ['check', 'config', join(COMPOSE, 'prometheus.yml')]);
  t.equal(r.status, 0, r.out);
  const prom = YAML.parse(read('compose/prometheus.yml')) as {
    scrape_configs: { metrics_path: string; static_configs: { targets: string[] }[] }[];
  };
  const [host, port] = splitHostPort(prom.scrape_configs[0]!.static_configs[0]!.targets[0]!);
  t.equal(host, 'mirrorlb');
  t.equal(port, splitHostPort(lbSim.admin.listen)[1], 'at the admin port');
  t.equal(prom.scrape_configs[0]!.metrics_path, '/metrics');
});

/**
 * nginx resolves upstream host names when it loads its config, so `nginx -t` needs the
 * compose service names to resolve. Rather than edit the file under test, the check runs
 * in a private mount namespace where a generated /etc/hosts maps those names to 127.0.0.1
 * (as Docker's DNS maps them to containers); the host's /etc/hosts is untouched. A run
 * without that mapping must fail on the names, which shows the mapping is what made it pass.
 */
const isRoot = process.getuid?.() === 0;
t.test(
  'nginx -t accepts both nginx configs',
  { ...unless(isRoot, 'needs root for a private mount namespace'), ...needs('nginx', 'unshare') },
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'mlb-nginx-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const hosts = join(dir, 'hosts');
    writeFileSync(hosts, `127.0.0.1 localhost ${['webgw1', 'webgw2', ...MEMBERS].join(' ')}\n`);
    for (const conf of ['default.conf', 'webgw-sim.conf']) {
      // The official image includes conf.d/*.conf inside its http block; so does this wrapper.
      const main = join(dir, `${conf}.nginx.conf`);
      writeFileSync(
        main,
        [
          `pid ${dir}/nginx.pid;`,
          `error_log ${dir}/error.log;`,
          'events {}',
          'http {',
          `  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi;`,
          `  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi; access_log off;`,
          `  include ${join(COMPOSE, 'nginx', conf)};`,
          '}',
          '',
        ].join('\n'),
      );
      const nginxT = `nginx -t -q -p ${dir} -c ${main}`;
      const ok = run('unshare', ['-m', 'sh', '-c', `mount --bind ${hosts} /etc/hosts && ${nginxT}`]);
      t.equal(ok.status, 0, `${conf}: nginx -t ${ok.out}`);
      const bare = run('sh', ['-c', nginxT]);
      t.not(bare.status, 0, `${conf}: without the names it fails`);
      t.match(bare.out, /host not found in upstream/);
    }
  },
);

t.test('Dockerfile: production dependencies, unprivileged, config path, health', async (t) => {
  const df = read('Dockerfile').replace(/\\\n\s*/g, ' ');
  t.match(df, /^FROM node:26-slim AS build$/m);
  t.match(df, /npm ci --omit=dev/, 'production dependencies only');
  t.match(df, /^USER node$/m, 'not root');
  t.match(df, /^ENTRYPOINT \["node", "\/app\/bin\/mirrorlb\.js"\]$/m);
  t.match(df, /^CMD \["--config", "\/etc\/mirrorlb\/mirrorlb\.yml"\]$/m);
  t.match(df, /^EXPOSE 1972 11972 9090$/m);
  const ignore = read('.dockerignore');
  for (const p of ['node_modules', 'dist', '.git'])
    t.match(ignore, new RegExp(`^${p.replace('.', '\\.')}$`, 'm'));
});

const built = existsSync(join(ROOT, 'dist', 'cli', 'main.js'));
t.test(
  'the image gets what npm pack publishes, which is enough to run',
  { ...unless(built, 'dist/ not built (npm ci builds it)'), ...needs('npm') },
  async (t) => {
    const r = run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT });
    t.equal(r.status, 0, r.out.slice(0, 500));
    const files = (
      JSON.parse(r.out.slice(r.out.indexOf('['))) as { files: { path: string }[] }[]
    )[0]!.files.map((f) => f.path);
    for (const f of [
      'bin/mirrorlb.js',
      'dist/cli/main.js',
      'dist/cli/sim.js',
      'dist/sim/member.js',
      'package.json',
    ]) {
      t.ok(files.includes(f), `packs ${f}`);
    }
    t.notOk(
      files.some((f) => f.startsWith('test/') || f.startsWith('compose/') || f.endsWith('iris.key')),
      'no tests, no stack files, no key',
    );
  },
);

t.test('compose/failover.sh fails over real simulated members', needs('bash', 'curl'), async (t) => {
  const sims = Object.fromEntries(
    await Promise.all(
      MEMBERS.map(
        async (m) =>
          [
            m,
            await withSim(t, { name: m, role: m.endsWith('a') ? 'primary' : 'backup', controlPort: 0 }),
          ] as const,
      ),
    ),
  );
  const env = {
    ...process.env,
    FAILOVER_GAP: '0',
    ...Object.fromEntries(
      MEMBERS.map((m) => [`SIM_${m.toUpperCase()}`, `127.0.0.1:${sims[m]!.controlPort}`]),
    ),
  };
  const script = join(COMPOSE, 'failover.sh');
  const sh = (...args: string[]) => runAsync('bash', [script, ...args], { env });
  const roles = () => MEMBERS.map((m) => sims[m]!.role);
  const settle = () => Promise.all(MEMBERS.map((m) => sims[m]!.settled()));

  t.equal((await sh('status')).out, 'ap1a primary\nap1b backup\nap2a primary\nap2b backup\n');
  const crash = await sh('ap1', 'crash');
  t.equal(crash.status, 0, crash.out);
  await settle();
  t.same(roles(), ['down', 'primary', 'primary', 'backup'], 'ap1a down, ap1b primary, ap2 untouched');
  t.equal((await sh('ap2', 'hang')).status, 0);
  await settle();
  t.same(roles(), ['down', 'primary', 'hang', 'primary']);
  t.equal((await sh('ap1')).status, 0, 'a planned switch back');
  await settle();
  t.same(roles(), ['primary', 'backup', 'hang', 'primary'], 'ap1a, down, comes back as primary');
  sims.ap2b!.setStatusMode('dead');
  t.equal((await sh('restore')).status, 0);
  await settle();
  t.same(roles(), ['primary', 'backup', 'primary', 'backup']);
  t.equal(sims.ap2b!.statusMode, 'normal', 'status pages back to normal');
  const bad = await sh('set', 'ap9z', 'down');
  t.equal(bad.status, 2);
  t.match(bad.out, /unknown member ap9z/);
});
