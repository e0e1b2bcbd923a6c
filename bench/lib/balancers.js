// The balancers under test, started as child processes pinned to the balancer CPU:
// mirrorlb from bin/mirrorlb.js with a generated config, haproxy from the configs in bench/.
// Each answers state() -> { member: 'up' | 'down' | 'between' } from its own admin interface.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { logTail, start } from './proc.js';
import { httpCall, tcpProbe } from './sims.js';
import { BenchError, waitFor } from './util.js';

/** A free TCP port on 127.0.0.1 (bound and released; good enough for a bench on one machine). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function waitStarted(proc, probe, what, timeoutMs = 15_000) {
  try {
    await waitFor(
      async () => {
        if (proc.exitCode !== null) {
          throw new BenchError('MLB_ERR_BENCH_START', `${what} exited (${proc.exitCode}): ${logTail(proc)}`);
        }
        return probe();
      },
      timeoutMs,
      what,
    );
  } catch (err) {
    await proc.stop();
    throw err;
  }
}

/** YAML for mirrorlb: `mirrors` is [{ name, listen, members: [{ name, address, check }] }]. */
export function mirrorlbYaml(mirrors, adminPort, extra = '') {
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
    '  level: warn',
    'shutdown:',
    '  grace: 0',
  );
  if (extra) lines.push(extra);
  return `${lines.join('\n')}\n`;
}

/**
 * Starts mirrorlb. `mirrors` as for mirrorlbYaml; the first mirror is the one under test.
 * Resolves when its admin API says every mirror has a primary (or, with waitReady false, once it answers).
 */
export async function startMirrorlb({
  repoRoot,
  label = 'mirrorlb',
  mirrors,
  cpu,
  logDir,
  waitReady = true,
  extra,
}) {
  const adminPort = await freePort();
  const file = path.join(logDir, `${label}.yml`);
  fs.writeFileSync(file, mirrorlbYaml(mirrors, adminPort, extra));
  const proc = start({
    name: label,
    cmd: process.execPath,
    args: [path.join(repoRoot, 'bin', 'mirrorlb.js'), '--config', file],
    cpu,
    logDir,
  });
  const admin = (p) =>
    httpCall('127.0.0.1', adminPort, 'GET', p, undefined, 2000).catch(() => ({ status: 0 }));
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
      const m = JSON.parse(r.body).mirrors.find((x) => x.name === mirror);
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

/** The bare data path (bench/lib/bare-proxy.mjs: mirrorlb's raw path alone) in front of `backend`. */
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
    async state() {
      const csv = await haproxyCommand(sock, 'show stat').catch(() => null);
      if (!csv) return null;
      const [header, ...rows] = csv.trim().split('\n');
      const cols = header.replace(/^# /, '').split(',');
      const iName = cols.indexOf('svname');
      const iStatus = cols.indexOf('status');
      const out = {};
      for (const row of rows) {
        const f = row.split(',');
        const name = f[iName];
        if (!name || name === 'FRONTEND' || name === 'BACKEND') continue;
        const st = f[iStatus];
        out[name] = st === 'UP' ? 'up' : st === 'DOWN' ? 'down' : 'between';
      }
      return out;
    },
    stop: () => proc.stop(3000),
  };
}

/**
 * One balancer in front of a pair of simulated members, as the failover and storm parts
 * use it: mirrorlb at its defaults with one mirror `ap1` over both members, or haproxy with
 * `b.cfg` and the members' addresses (and the seed set-up's check script) in its env.
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
