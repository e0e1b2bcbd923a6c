// Part 2: the cost of the balancer on the data path. The same backend is measured direct,
// through haproxy (one thread, mode tcp) and through mirrorlb, with the balancer alone on its
// CPU and the load generator and backend on the other. Runs alternate A/B/C, C/B/A.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, startBare, startHaproxy, startMirrorlb } from './balancers.js';
import { startIperf3Server, startNginx, startSockperfServer } from './backends.js';
import { cpuMicros, rssKiB, run } from './proc.js';
import { startSim } from './sims.js';
import { log, median, now, ratio, round, sleep } from './util.js';

export function datapathSettings(quick) {
  return {
    reps: quick ? 1 : 3,
    duration_s: quick ? 1 : 5,
    warmup_s: quick ? 0 : 1,
    connections: 50,
    idle_sessions: quick ? 2000 : 10000,
    sockperf_msg_bytes: 14,
  };
}

export const TESTS = [
  {
    id: 'rr',
    label: 'request/response, 50 keep-alive connections',
    unit: 'req/s',
    tool: 'wrk',
    backend: 'nginx',
  },
  {
    id: 'cps',
    label: 'new connections (Connection: close), 50 at a time',
    unit: 'conn/s',
    tool: 'wrk',
    backend: 'nginx',
  },
  {
    id: 'bulk',
    label: 'bulk throughput, one TCP stream (iperf3)',
    unit: 'Gbit/s',
    tool: 'iperf3',
    backend: 'iperf3',
  },
  { id: 'rtt', label: 'round trip, ping-pong (sockperf)', unit: 'µs', tool: 'sockperf', backend: 'sockperf' },
];

export function parseWrk(out) {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const total = /(\d+) requests in /.exec(out);
  return {
    value: rps ? Number(rps[1]) : null,
    count: total ? Number(total[1]) : null,
    errors: sock ? sock.slice(1).reduce((n, x) => n + Number(x), 0) : 0,
    non2xx: non2xx ? Number(non2xx[1]) : 0,
  };
}

export function parseSockperf(out) {
  const p = (q) => {
    const m = new RegExp(`percentile ${q.replace('.', '\\.')}\\s*=\\s*([\\d.]+)`).exec(out);
    return m ? Number(m[1]) : null;
  };
  const avg = /avg-rtt=([\d.]+)/.exec(out) ?? /avg-lat=([\d.]+)/.exec(out);
  return { p50: p('50.000'), p99: p('99.000'), p999: p('99.900'), avg: avg ? Number(avg[1]) : null };
}

/**
 * @typedef {object} Measurement One run of one test against one target.
 * @property {number | null} value the figure in the test's unit (null: none)
 * @property {number | null} [count] requests or connections done (wrk)
 * @property {number} [errors]
 * @property {number} [non2xx]
 * @property {string} [error] why there is no figure
 * @property {number} [cpu_us_per_op] the target's CPU per request or connection
 * @property {number | null} [p50]
 * @property {number | null} [p99]
 * @property {number | null} [p999]
 * @property {number | null} [avg]
 */

/**
 * @param {(typeof TESTS)[number]} test
 * @param {number} port
 * @param {number} seconds
 * @param {import('./util.js').BenchContext & { settings: ReturnType<typeof datapathSettings> }} ctx
 * @returns {Promise<Measurement>}
 */
async function measure(test, port, seconds, ctx) {
  const load = ctx.cpus.load;
  // All three tools take whole seconds (iperf3 reads -t 0.5 as "forever").
  seconds = Math.max(1, Math.round(seconds));
  const timeoutMs = (seconds + 30) * 1000;
  switch (test.id) {
    case 'rr':
    case 'cps': {
      const args = ['-t1', `-c${ctx.settings.connections}`, `-d${seconds}s`];
      if (test.id === 'cps') args.push('-H', 'Connection: close');
      const r = await run('wrk', [...args, `http://127.0.0.1:${port}/`], { cpu: load, timeoutMs });
      return parseWrk(r.stdout);
    }
    case 'bulk': {
      // The server serves one test at a time; through a proxy it may still be closing the last one.
      for (let tries = 0; ; tries++) {
        const r = await run('iperf3', ['-c', '127.0.0.1', '-p', String(port), '-t', String(seconds), '-J'], {
          cpu: load,
          timeoutMs,
        });
        let j;
        try {
          j = JSON.parse(r.stdout);
        } catch {
          return { value: null, error: (r.stderr || r.stdout).trim().slice(0, 200) };
        }
        if (j.error && /busy/.test(j.error) && tries < 20) {
          await sleep(250);
          continue;
        }
        if (j.error) return { value: null, error: j.error };
        return { value: j.end.sum_received.bits_per_second / 1e9 };
      }
    }
    case 'rtt': {
      const r = await run(
        'sockperf',
        [
          'ping-pong',
          '--tcp',
          '-i',
          '127.0.0.1',
          '-p',
          String(port),
          '-t',
          String(seconds),
          '--full-rtt',
          '-m',
          String(ctx.settings.sockperf_msg_bytes),
        ],
        { cpu: load, timeoutMs },
      );
      const v = parseSockperf(r.stdout + r.stderr);
      return { value: v.p50, ...v };
    }
    default:
      throw new Error(`unknown test ${test.id}`);
  }
}

/** Sessions a balancer can hold within the open-files limit: two descriptors each, plus a few of its own. */
export function maxSessions(nofile) {
  return Math.max(100, Math.floor((nofile - 100) / 2));
}

/** mirrorlb mirrors for a backend: the one under test (a primary, b a backup) plus `extra` idle mirrors. */
async function mirrorsFor(backendAddr, nginx, extra = 0) {
  const mirrors = [
    {
      name: 'bench',
      listen: `127.0.0.1:${await freePort()}`,
      members: [
        { name: 'bencha', address: backendAddr, check: nginx.statusUrl('bencha', true) },
        // Never primary: its check says backup, like the other member of a real mirror. Member
        // addresses must differ; nothing is ever sent to this one.
        { name: 'benchb', address: `127.0.2.1:${nginx.port}`, check: nginx.statusUrl('benchb', false) },
      ],
    },
  ];
  for (let i = 1; i <= extra; i++) {
    mirrors.push({
      name: `idle${i}`,
      listen: `127.0.0.1:${await freePort()}`,
      members: ['a', 'b'].map((s, j) => ({
        name: `idle${i}${s}`,
        address: `127.0.2.${2 + i * 2 + j}:${nginx.port}`,
        check: nginx.statusUrl(`idle${i}${s}`, s === 'a'),
      })),
    });
  }
  return mirrors;
}

/** Starts a target in front of backendAddr; returns { port, stop }. */
async function startTarget(target, backendAddr, ctx, nginx) {
  const [host, port] = backendAddr.split(':');
  switch (target) {
    case 'direct':
      return { port: Number(port), stop: async () => {} };
    case 'haproxy': {
      const p = await freePort();
      const lb = await startHaproxy({
        benchDir: ctx.benchDir,
        label: 'datapath-haproxy',
        cfg: 'haproxy-datapath.cfg',
        port: p,
        env: { MLB_BACKEND: `${host}:${port}`, MLB_MAXCONN: String(maxSessions(ctx.nofile)) },
        cpu: ctx.cpus.balancer,
        logDir: ctx.logDir,
      });
      return { port: p, pid: lb.proc.pid, stop: () => lb.stop() };
    }
    case 'bare': {
      // The raw data path alone (bench/lib/bare-proxy.mjs), pinned like the balancers.
      const lb = await startBare({
        benchDir: ctx.benchDir,
        label: 'datapath-bare',
        backend: backendAddr,
        port: await freePort(),
        cpu: ctx.cpus.balancer,
        logDir: ctx.logDir,
      });
      return { port: lb.port, pid: lb.proc.pid, stop: () => lb.proc.stop() };
    }
    case 'mirrorlb':
    case 'mirrorlb-nometrics':
    case 'mirrorlb-7mirrors': {
      const mirrors = await mirrorsFor(backendAddr, nginx, target === 'mirrorlb-7mirrors' ? 6 : 0);
      const lb = await startMirrorlb({
        repoRoot: ctx.repoRoot,
        label: `datapath-${target}`,
        mirrors,
        cpu: ctx.cpus.balancer,
        logDir: ctx.logDir,
        extra: target === 'mirrorlb-nometrics' ? (metricsSwitch(ctx.repoRoot) ?? '') : '',
      });
      return { port: lb.port, pid: lb.proc.pid, stop: () => lb.stop() };
    }
    default:
      throw new Error(`unknown target ${target}`);
  }
}

/** Runs one test against `targets`, alternating their order each repetition. */
async function runTest(test, targets, backendAddr, ctx, nginx) {
  const { reps, duration_s: d, warmup_s: w } = ctx.settings;
  const started = {};
  const samples = Object.fromEntries(targets.map((t) => [t, []]));
  try {
    for (const t of targets) {
      const ts = now();
      started[t] = await startTarget(t, backendAddr, ctx, nginx);
      if (now() - ts > 2000) log(`  (starting ${t} took ${Math.round(now() - ts)} ms)`);
      // Warm-up: JIT, connection pools and caches, not measured.
      if (w > 0) await measure(test, started[t].port, w, ctx);
    }
    for (let rep = 0; rep < reps; rep++) {
      const order = rep % 2 === 0 ? targets : [...targets].reverse();
      for (const t of order) {
        // The balancer's own CPU per request or connection: it does not depend on whether the
        // balancer or the load generator was the bottleneck, so it varies less between runs.
        const pid = started[t].pid;
        const cpu0 = pid ? cpuMicros(pid) : null;
        const m = await measure(test, started[t].port, d, ctx);
        const cpu1 = pid ? cpuMicros(pid) : null;
        if (cpu0 !== null && cpu1 !== null && m.count) m.cpu_us_per_op = (cpu1 - cpu0) / m.count;
        samples[t].push(m);
        const shown =
          m.value === null ? `failed (${m.error ?? 'no figure'})` : `${round(m.value, 2)} ${test.unit}`;
        log(`  data path ${test.id.padEnd(4)} ${t.padEnd(17)} rep ${rep + 1}/${reps}: ${shown}`);
      }
    }
  } finally {
    for (const t of Object.keys(started)) {
      const ts = now();
      await started[t].stop();
      if (now() - ts > 2000) log(`  (stopping ${t} took ${Math.round(now() - ts)} ms)`);
    }
  }
  return samples;
}

function summarizeTest(test, samples, baseline = 'haproxy') {
  const row = { test: test.id, label: test.label, unit: test.unit, targets: {} };
  for (const [t, ms] of Object.entries(samples)) {
    const s = { value: median(ms.map((m) => m.value)), samples: ms.map((m) => round(m.value, 3)) };
    if (test.id === 'rtt') {
      for (const k of ['p50', 'p99', 'p999']) s[k] = median(ms.map((m) => m[k]));
    }
    if (test.tool === 'wrk') {
      s.errors = ms.reduce((n, m) => n + m.errors + m.non2xx, 0);
      s.cpu_us_per_op = median(ms.map((m) => m.cpu_us_per_op));
    }
    row.targets[t] = s;
  }
  const base = row.targets[baseline];
  for (const [t, s] of Object.entries(row.targets)) {
    if (t === baseline || !base) continue;
    if (test.id === 'rtt') {
      s.ratio = { p50: ratio(s.p50, base.p50), p99: ratio(s.p99, base.p99), p999: ratio(s.p999, base.p999) };
    } else {
      s.ratio = ratio(s.value, base.value);
    }
    if (s.cpu_us_per_op !== undefined) s.cpu_ratio = ratio(s.cpu_us_per_op, base.cpu_us_per_op);
  }
  return row;
}

/** Opens `n` sessions through port, each confirmed by the backend's greeting line. */
async function openIdle(port, n, concurrency = 256) {
  const sockets = [];
  let failed = 0;
  let next = 0;
  const one = () =>
    new Promise((/** @type {(v?: undefined) => void} */ resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      const timer = setTimeout(() => {
        failed++;
        s.destroy();
        resolve();
      }, 10_000);
      s.once('data', () => {
        clearTimeout(timer);
        sockets.push(s);
        resolve();
      });
      s.on('error', () => {
        clearTimeout(timer);
        failed++;
        resolve();
      });
    });
  const worker = async () => {
    while (next < n) {
      next++;
      await one();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return {
    open: sockets.length,
    failed,
    close: () => {
      for (const s of sockets) s.destroy();
    },
  };
}

async function sampleRss(pid, times, everyMs) {
  const v = [];
  for (let i = 0; i < times; i++) {
    await sleep(everyMs);
    v.push(rssKiB(pid));
  }
  return Math.max(...v.filter((x) => x !== null));
}

/** RSS of each balancer idle, then holding `n` idle proxied sessions to a simulated member. */
async function idleRss(targets, ctx, sim, nginx) {
  const out = {};
  for (const t of targets) {
    const target = await startTarget(
      t === 'mirrorlb' ? 'mirrorlb' : t,
      sim.address,
      { ...ctx },
      {
        ...nginx,
        // The member under test is the sim; its own status page decides.
        statusUrl: (member, up) => (up ? sim.checkUrl : nginx.statusUrl(member, up)),
      },
    );
    try {
      const [times, every] = ctx.quick ? [2, 200] : [3, 400];
      await sleep(ctx.quick ? 300 : 1000);
      const idle = await sampleRss(target.pid, times, every);
      const t0 = now();
      const sessions = await openIdle(target.port, ctx.settings.idle_sessions);
      const openMs = now() - t0;
      await sleep(ctx.quick ? 300 : 1000);
      const busy = await sampleRss(target.pid, times, every);
      sessions.close();
      out[t] = {
        sessions: sessions.open,
        failed: sessions.failed,
        rss_idle_mib: round(idle / 1024, 1),
        rss_sessions_mib: round(busy / 1024, 1),
        delta_mib: round((busy - idle) / 1024, 1),
        per_session_kib: sessions.open ? round((busy - idle) / sessions.open, 2) : null,
        open_ms: round(openMs, 0),
      };
      log(
        `  data path rss  ${t.padEnd(17)}: idle ${out[t].rss_idle_mib} MiB, with ${sessions.open} sessions ` +
          `${out[t].rss_sessions_mib} MiB (+${out[t].delta_mib} MiB)${sessions.failed ? `, ${sessions.failed} failed` : ''}`,
      );
    } finally {
      await target.stop();
    }
  }
  return out;
}

/** Whether this mirrorlb build has a switch to turn metrics off (a top-level `metrics` key with `enabled`). */
function metricsSwitch(repoRoot) {
  try {
    const schema = JSON.parse(fs.readFileSync(path.join(repoRoot, 'schema', 'mirrorlb.schema.json'), 'utf8'));
    const m = schema.properties?.metrics;
    const props =
      m?.properties ?? (m?.$ref ? schema.definitions?.[m.$ref.split('/').pop()]?.properties : null);
    return props && 'enabled' in props ? 'metrics:\n  enabled: false' : null;
  } catch {
    return null;
  }
}

/**
 * Runs the data-path part. ctx: { repoRoot, benchDir, logDir, quick, cpus, tools, reps? }.
 */
export async function runDatapath(ctx) {
  /** @type {ReturnType<typeof datapathSettings> & { idle_sessions_wanted?: number, idle_sessions_note?: string }} */
  const settings = { ...datapathSettings(ctx.quick), ...(ctx.reps ? { reps: ctx.reps } : {}) };
  // Without CAP_SYS_RESOURCE the hard limit may be below the 20,000+ descriptors 10,000 sessions need.
  if (maxSessions(ctx.nofile) < settings.idle_sessions) {
    settings.idle_sessions_wanted = settings.idle_sessions;
    settings.idle_sessions = maxSessions(ctx.nofile) - 50;
    settings.idle_sessions_note = `open-files limit here is ${ctx.nofile} (cannot be raised), so ${settings.idle_sessions} sessions; per-session figures scale`;
  }
  ctx = { ...ctx, settings };
  const skipped = [];
  /** @typedef {ReturnType<typeof summarizeTest>} TestSummary */
  /**
   * @type {{ settings: typeof settings, tests: TestSummary[], rss: Awaited<ReturnType<typeof idleRss>> | null,
   *   health_checks: { note: string, tests: TestSummary[] } | null,
   *   metrics: { note: string, tests: TestSummary[] } | { skipped: string } | null,
   *   skipped: { what: string, reason: string | undefined }[], loadavg_at_end?: (number | null)[] }}
   */
  const results = { settings, tests: [], rss: null, health_checks: null, metrics: null, skipped };
  const haveHaproxy = ctx.tools.available.haproxy;
  if (!haveHaproxy) skipped.push({ what: 'haproxy columns', reason: ctx.tools.missing.haproxy });
  const targets = ['direct', ...(haveHaproxy ? ['haproxy'] : []), 'mirrorlb'];
  const dir = fs.mkdtempSync(path.join(ctx.logDir, 'datapath-'));

  const backends = {};
  const need = (tool, why) => {
    if (ctx.tools.available[tool]) return true;
    skipped.push({ what: why, reason: ctx.tools.missing[tool] });
    return false;
  };
  try {
    if (!need('nginx', 'all data-path tests (nginx is the backend and serves the status pages)'))
      return results;
    backends.nginx = await startNginx({ dir, cpu: ctx.cpus.load, logDir: ctx.logDir, nofile: ctx.nofile });
    const nginxAddr = `127.0.0.1:${backends.nginx.port}`;
    for (const test of TESTS) {
      if (!need(test.tool, test.label)) continue;
      let addr = nginxAddr;
      if (test.backend === 'iperf3') {
        backends.iperf3 ??= await startIperf3Server({ cpu: ctx.cpus.load, logDir: ctx.logDir });
        addr = `127.0.0.1:${backends.iperf3.port}`;
      } else if (test.backend === 'sockperf') {
        backends.sockperf ??= await startSockperfServer({ cpu: ctx.cpus.load, logDir: ctx.logDir });
        addr = `127.0.0.1:${backends.sockperf.port}`;
      }
      const samples = await runTest(test, targets, addr, ctx, backends.nginx);
      results.tests.push(summarizeTest(test, samples));
    }

    // What the daemon adds to its own data path: the raw path alone (no checks, no metrics,
    // no session table) vs the daemon with 1 mirror and with 7 mirrors of 2 members checked
    // at the default interval.
    const hcTests = TESTS.filter(
      (t) => t.id === 'cps' || t.id === 'rr' || (t.id === 'rtt' && !ctx.quick),
    ).filter((t) => ctx.tools.available[t.tool]);
    const healthChecks = {
      note: 'the bare data path (bench/lib/bare-proxy.mjs) vs the daemon with 1 mirror and with 7 mirrors of 2 members, default check interval',
      /** @type {TestSummary[]} */
      tests: [],
    };
    results.health_checks = healthChecks;
    for (const test of hcTests) {
      const addr = test.id === 'rtt' ? `127.0.0.1:${backends.sockperf.port}` : nginxAddr;
      const samples = await runTest(
        test,
        ['bare', 'mirrorlb', 'mirrorlb-7mirrors'],
        addr,
        ctx,
        backends.nginx,
      );
      healthChecks.tests.push(summarizeTest(test, samples, 'bare'));
    }

    const off = metricsSwitch(ctx.repoRoot);
    if (off) {
      // The same daemon with per-connection metrics off: what counting costs the data path.
      /** @type {{ note: string, tests: TestSummary[] }} */
      const metrics = { note: 'metrics.enabled true vs false, 1 mirror of 2 members', tests: [] };
      results.metrics = metrics;
      for (const test of hcTests) {
        const addr = test.id === 'rtt' ? `127.0.0.1:${backends.sockperf.port}` : nginxAddr;
        const samples = await runTest(test, ['mirrorlb', 'mirrorlb-nometrics'], addr, ctx, backends.nginx);
        metrics.tests.push(summarizeTest(test, samples, 'mirrorlb'));
      }
    } else {
      const reason =
        'mirrorlb has no switch to turn metrics off (no metrics.enabled in schema/mirrorlb.schema.json)';
      results.metrics = { skipped: reason };
      skipped.push({ what: 'metrics on vs off', reason });
    }

    // Memory with idle sessions: the backend is a simulated member (it greets, so every session is known to be through).
    const sim = await startSim({
      repoRoot: ctx.repoRoot,
      name: 'idle',
      host: '127.0.0.1',
      role: 'primary',
      cpu: ctx.cpus.load,
      logDir: ctx.logDir,
      ports: { superserver: await freePort(), web: await freePort(), control: await freePort() },
    });
    try {
      results.rss = await idleRss(
        targets.filter((t) => t !== 'direct'),
        ctx,
        sim,
        backends.nginx,
      );
    } finally {
      await sim.proc.stop();
    }
  } finally {
    for (const b of Object.values(backends)) await b.proc.stop();
  }
  results.loadavg_at_end = os.loadavg().map((x) => round(x, 2));
  return results;
}
