// The balancers under test, started as child processes pinned to the balancer CPU:
// mirrorlb from bin/mirrorlb.js with a generated config, haproxy from the configs in bench/.
// Each answers state() -> { member: 'up' | 'down' | 'between' } from its own admin interface.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { start, waitStarted } from './proc.js';
import { httpCall, tcpProbe } from './sims.js';
import { BenchError } from './util.js';

/**
 * @typedef {{ name: string, listen: string, members: { name: string, address: string, check: string }[] }} MirrorSpec
 * A mirror of the generated config: `listen` and `address` are host:port.
 */

/** @typedef {'up' | 'down' | 'between'} MemberView A member as the balancer routes to it. */

/**
 * @typedef {object} Balancer A balancer under test, as every part drives it.
 * @property {'mirrorlb' | 'haproxy'} kind
 * @property {string} label
 * @property {import('./proc.js').BenchProc} proc
 * @property {number} port where clients connect
 * @property {() => Promise<Record<string, MemberView> | null>} state its own view of the
 *   members (null: it did not answer)
 * @property {() => Promise<void>} stop
 * @property {() => Promise<Record<string, MemberView> | null>} [routing] haproxy: each server
 *   'up' while it takes new clients (one going down, "UP 1/3", still does), else 'down'
 */

/**
 * A free TCP port on 127.0.0.1 (bound and released; good enough for a bench on one machine).
 * @returns {Promise<number>}
 */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {net.AddressInfo} */ (srv.address());
      srv.close(() => resolve(port));
    });
  });
}

/**
 * YAML for mirrorlb, with its admin API on 127.0.0.1:adminPort and `extra` appended.
 * @param {readonly MirrorSpec[]} mirrors
 * @param {number} adminPort
 * @param {string} [extra]
 */
export function mirrorlbYaml(mirrors, adminPort, extra = '', sessionLog = false) {
  const lines = ['mirrors:'];
  for (const m of mirrors) {
    lines.push(`  - name: ${m.name}`, `    listen: "${m.listen}"`, '    members:');
    for (const mem of m.members) {
      lines.push(
        `      - name: ${mem.name}`,
        `        address: "${mem.address}"`,
        `        check: "${mem.check}"`,
      );
    }
  }
  lines.push(
    'admin:',
    `  listen: "127.0.0.1:${adminPort}"`,
    'log:',
    ...(sessionLog ? ['  level: info', '  sessions: true'] : ['  level: warn']),
    'shutdown:',
    '  grace: 0',
  );
  if (extra) lines.push(extra);
  return `${lines.join('\n')}\n`;
}

/**
 * @typedef {object} MirrorlbOptions
 * @property {string} repoRoot
 * @property {string} [label] names its config and log files
 * @property {readonly MirrorSpec[]} mirrors the first is the one under test
 * @property {number | null} [cpu]
 * @property {string} logDir
 * @property {boolean} [waitReady] wait until every mirror has a primary (default), or only
 *   until the admin API answers
 * @property {string} [extra] YAML appended to the config
 * @property {number} [adminPort] default: a free one
 * @property {readonly string[]} [nodeArgs] node flags before the entry point
 * @property {string} [main] another build's dist/cli/main.js instead of bin/mirrorlb.js
 * @property {boolean} [sessionLog] log.sessions on (level info): the session log's cost
 */

/**
 * Starts mirrorlb. Resolves when its admin API says every mirror has a primary (or, with
 * waitReady false, once it answers).
 * @param {MirrorlbOptions} opts
 * @returns {Promise<Balancer & { configFile: string, adminPort: number }>}
 */
export async function startMirrorlb({
  repoRoot,
  label = 'mirrorlb',
  mirrors,
  cpu,
  logDir,
  waitReady = true,
  extra,
  adminPort,
  nodeArgs = [],
  main,
  sessionLog = false,
}) {
  adminPort ??= await freePort();
  const file = path.join(logDir, `${label}.yml`);
  fs.writeFileSync(file, mirrorlbYaml(mirrors, adminPort, extra, sessionLog));
  // Another build's dist/cli/main.js is run as bin/mirrorlb.js runs this one's.
  const entry = main
    ? [
        '--input-type=module',
        '-e',
        `import(${JSON.stringify(pathToFileURL(main).href)}).then((m) => m.main(['--config', ${JSON.stringify(file)}]))`,
      ]
    : [path.join(repoRoot, 'bin', 'mirrorlb.js'), '--config', file];
  const proc = start({
    name: label,
    cmd: process.execPath,
    args: [...nodeArgs, ...entry],
    cpu,
    logDir,
  });
  const port = adminPort;
  /** @param {string} p */
  const admin = (p) =>
    httpCall('127.0.0.1', port, 'GET', p, undefined, 2000).catch(() => ({ status: 0, body: '' }));
  await waitStarted(
    proc,
    // /readyz is replica readiness; waitReady means every mirror has a primary taking clients.
    async () =>
      waitReady
        ? (await Promise.all(mirrors.map((m) => admin(`/readyz?mirror=${m.name}`)))).every(
            (r) => r.status === 200,
          )
        : (await admin('/healthz')).status === 200,
    `${label} (config ${file})`,
  );
  const mirror = mirrors[0].name;
  return {
    kind: 'mirrorlb',
    label,
    proc,
    configFile: file,
    port: Number(mirrors[0].listen.split(':').pop()),
    adminPort,
    async state() {
      const r = await admin('/status');
      if (r.status !== 200) return null;
      /** @type {{ mirrors: { name: string, primary: string | null, accepting: boolean, members: { name: string, state: string }[] }[] }} */
      const status = JSON.parse(r.body);
      const m = status.mirrors.find((x) => x.name === mirror);
      if (!m) return null;
      /** @type {Record<string, MemberView>} */
      const out = {};
      for (const mem of m.members) {
        out[mem.name] =
          mem.name === m.primary && m.accepting
            ? 'up'
            : mem.state === 'primary' || mem.state === 'suspect'
              ? 'between'
              : 'down';
      }
      return out;
    },
    stop: () => proc.stop(5000),
  };
}

/**
 * One command on haproxy's stats socket; resolves with its whole answer.
 * @param {string} socketPath
 * @param {string} command
 * @returns {Promise<string>}
 */
function haproxyCommand(socketPath, command) {
  return new Promise((resolve, reject) => {
    const s = net.connect(socketPath);
    let data = '';
    const timer = setTimeout(
      () => s.destroy(new BenchError('MLB_ERR_BENCH_HAPROXY', 'stats socket timed out')),
      2000,
    );
    s.setEncoding('utf8');
    s.on('data', (c) => (data += c));
    s.on('end', () => {
      clearTimeout(timer);
      resolve(data);
    });
    s.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    s.end(`${command}\n`);
  });
}

/**
 * The bare data path (bench/lib/bare-proxy.mjs: mirrorlb's raw path alone) in front of `backend`.
 * @param {{ benchDir: string, label?: string, backend: string, port: number, cpu?: number | null, logDir: string }} opts
 */
export async function startBare({ benchDir, label = 'bare', backend, port, cpu, logDir }) {
  const proc = start({
    name: label,
    cmd: process.execPath,
    args: [path.join(benchDir, 'lib', 'bare-proxy.mjs'), String(port), backend],
    cpu,
    logDir,
  });
  await waitStarted(proc, () => tcpProbe('127.0.0.1', port, 300), `${label} (bench/lib/bare-proxy.mjs)`);
  return { kind: 'bare', label, proc, port };
}

/**
 * Starts haproxy with one of the configs in bench/ and `env` for its "${MLB_...}" values.
 * Servers are named as in the config (ap1a, ap1b); state() reads them from the stats socket.
 * @param {{ benchDir: string, label: string, cfg: string, env: Record<string, string>, port: number, cpu?: number | null, logDir: string }} opts
 * @returns {Promise<Balancer>}
 */
export async function startHaproxy({ benchDir, label, cfg, env, port, cpu, logDir }) {
  const sock = path.join(logDir, `${label}.sock`);
  const proc = start({
    name: label,
    cmd: 'haproxy',
    args: ['-f', path.join(benchDir, cfg), '-db'],
    env: { MLB_STATS_SOCK: sock, MLB_LISTEN: `127.0.0.1:${port}`, ...env },
    cpu,
    logDir,
  });
  await waitStarted(proc, () => tcpProbe('127.0.0.1', port, 300), `${label} (haproxy -f bench/${cfg})`);
  return {
    kind: 'haproxy',
    label,
    proc,
    port,
    state: () => view(false),
    /** Whether each server takes new clients now (a server going down still does). */
    routing: () => view(true),
    stop: () => proc.stop(3000),
  };

  /** @param {boolean} raw */
  async function view(raw) {
    const csv = await haproxyCommand(sock, 'show stat').catch(() => null);
    if (!csv) return null;
    const [header, ...rows] = csv.trim().split('\n');
    const cols = header.replace(/^# /, '').split(',');
    const iName = cols.indexOf('svname');
    const iStatus = cols.indexOf('status');
    /** @type {Record<string, MemberView>} */
    const out = {};
    for (const row of rows) {
      const f = row.split(',');
      const name = f[iName];
      if (!name || name === 'FRONTEND' || name === 'BACKEND') continue;
      const st = f[iStatus];
      // "UP 1/3" (going down) still takes new clients, "DOWN 1/2" (going up) does not.
      out[name] = raw
        ? st.startsWith('UP')
          ? 'up'
          : 'down'
        : st === 'UP'
          ? 'up'
          : st === 'DOWN'
            ? 'down'
            : 'between';
    }
    return out;
  }
}

/**
 * One balancer in front of a pair of simulated members, as the failover and storm parts
 * use it: mirrorlb at its defaults with one mirror `ap1` over both members, or haproxy with
 * `b.cfg` and the members' addresses (and the seed set-up's check script) in its env.
 * @param {import('./util.js').BenchContext} ctx
 * @param {{ id: string, cfg?: string }} b
 * @param {{ name: string, address: string, checkUrl: string }[]} sims
 * @param {string} part
 * @returns {Promise<Balancer>}
 */
export async function startPairBalancer(ctx, b, sims, part) {
  const port = await freePort();
  if (b.id === 'mirrorlb') {
    return startMirrorlb({
      repoRoot: ctx.repoRoot,
      label: `${part}-mirrorlb`,
      mirrors: [
        {
          name: 'ap1',
          listen: `127.0.0.1:${port}`,
          members: sims.map((s) => ({ name: s.name, address: s.address, check: s.checkUrl })),
        },
      ],
      cpu: ctx.cpus.balancer,
      logDir: ctx.logDir,
    });
  }
  if (!b.cfg) throw new BenchError('MLB_ERR_BENCH_HAPROXY', `${b.id}: no haproxy config to start it with`);
  return startHaproxy({
    benchDir: ctx.benchDir,
    label: `${part}-${b.id}`,
    cfg: b.cfg,
    port,
    env: {
      MLB_A_ADDR: sims[0].address,
      MLB_B_ADDR: sims[1].address,
      MLB_CHECK_SCRIPT: `${ctx.benchDir}/haproxy-seed-check.sh`,
    },
    cpu: ctx.cpus.balancer,
    logDir: ctx.logDir,
  });
}
