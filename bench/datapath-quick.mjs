#!/usr/bin/env node
// Quick side-by-side measurement of the data path against haproxy (nbthread 1), same
// backends, same run, alternating targets each round. Not the full bench harness
// (bench/run.js): this one measures only src/proxy/{sockets,link}.ts as the router uses
// them (accept paused, connect backend, link), so a change to the data path can be judged
// in minutes.
//
//   npx tsc -p tsconfig.json --outDir /tmp/dpq-dist     # or use dist/ after `npm run build`
//   node bench/datapath-quick.mjs [--dist /tmp/dpq-dist] [--rounds 3] [--duration 5]
//        [--targets haproxy,raw,daemon,mlb,mlb-semi,mlb-plain,naive] [--pin 0|1] [--tests ka,close,iperf,sockperf]
//        [--session-log 1]   (the daemon target with log.sessions on, at level info)
//   node bench/datapath-quick.mjs idle [--sessions 10000] [--target mlb]   # RSS of idle sessions
//
// Targets: haproxy (2.6, nbthread 1, mode tcp, no splice); raw (raw path, raw.ts); mlb (fast socket path); mlb-semi (fast
// path, node --min-semi-space-size=16 --max-semi-space-size=64); mlb-plain
// (MIRRORLB_DATAPATH=plain); naive (a.pipe(b); b.pipe(a), the plain-stream baseline).
// Tests: ka (wrk, 50 keep-alive connections, small HTTP responses from nginx), close (wrk
// with Connection: close: new connections per second), iperf (iperf3 bulk, one stream),
// sockperf (TCP ping-pong round trip, percentiles).
//
// The backends, haproxy, the daemon and the load generators are started through the full
// bench's helpers (bench/lib/{backends,balancers,proc}.js), so both measure the same
// processes; only the in-process proxy variants (mlb, raw, naive) are this file's own.

import { fork } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { startIperf3Server, startNginx, startSockperfServer } from './lib/backends.js';
import { startHaproxy, startMirrorlb } from './lib/balancers.js';
import { cpuMicros, run, start, stopAll } from './lib/proc.js';
import { tcpProbe } from './lib/sims.js';
import { waitFor } from './lib/util.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const mode = argv[0] && !argv[0].startsWith('--') ? argv.shift() : 'run';

function opt(name, dflt) {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : dflt;
}

const TMP = opt('tmp', '/tmp/dpq');
const BASE = Number(opt('base-port', '21000'));
/** The backends' ports, known once they listen (bench/lib/backends.js picks free ones). */
const PORTS = { nginx: 0, iperf: 0, sockperf: 0 };
const SEMI = ['--min-semi-space-size=16', '--max-semi-space-size=64'];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// As the full bench: the target alone on CPU 1, load generators and backends on CPU 0
// (--pin 0 turns it off). Rates then follow the target's CPU per operation.
const PIN = opt('pin', '1') === '1' && os.cpus().length >= 2;
/** CPU of the load generators and backends, and of the target (null: not pinned). */
const LOAD_CPU = PIN ? 0 : null;
const TARGET_CPU = PIN ? 1 : null;

/** Pins every thread of a forked target, which cannot be started under taskset. */
async function pinTarget(pid) {
  if (PIN) await run('taskset', ['-a', '-pc', '1', String(pid)]);
}

/**
 * A load generator on the load CPU, through bench/lib/proc.js; its stdout and stderr
 * together, empty when it could not run (the figure then reads NaN).
 */
async function tool(cmd, args, timeoutMs = 120_000) {
  const r = await run(cmd, args, { cpu: LOAD_CPU, timeoutMs }).catch(() => ({ stdout: '', stderr: '' }));
  return r.stdout + r.stderr;
}

function waitPort(port, ms = 10_000) {
  return waitFor(() => tcpProbe('127.0.0.1', port, 300), ms, `port ${port}`);
}

/** utime+stime of a process in ms (bench/lib/proc.js, 10 ms ticks); NaN once it is gone. */
const cpuMs = (pid) => (cpuMicros(pid) ?? NaN) / 1000;

function rssMb(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

// ---------------------------------------------------------------- the proxy child

async function proxyChild() {
  // argv: proxy <variant> listenPort:backendPort ...
  const variant = argv.shift();
  const pairs = argv.filter((a) => /^\d+:\d+$/.test(a)).map((a) => a.split(':').map(Number));
  // 10 ms, as prom-client samples it: a finer timer would itself wake the loop and cost latency.
  const elu = monitorEventLoopDelay({ resolution: 10 });
  elu.enable();
  let sessions = 0;
  if (variant === 'naive') {
    for (const [lp, bp] of pairs) {
      net
        .createServer({ allowHalfOpen: true }, (c) => {
          const b = net.connect({ host: '127.0.0.1', port: bp, allowHalfOpen: true });
          c.pipe(b);
          b.pipe(c);
          c.on('error', () => b.destroy());
          b.on('error', () => c.destroy());
        })
        .listen(lp, '127.0.0.1');
    }
  } else {
    // The last --dist wins: a target's own build overrides the run's.
    const i = argv.lastIndexOf('--dist');
    const dist = i >= 0 ? argv[i + 1] : path.join(here, '..', 'dist');
    if (variant === 'raw') {
      // raw: the bare data path of the full bench (bench/lib/bare-proxy.mjs), every handle taken at accept.
      const { serveBare } = await import('./lib/bare-proxy.mjs');
      for (const [lp, bp] of pairs) {
        await serveBare({
          dist,
          listenPort: lp,
          backendHost: '127.0.0.1',
          backendPort: bp,
          onOpen: () => sessions++,
          onClose: () => sessions--,
        });
      }
    } else {
      const { createProxyServer, connectBackend } = await import(
        pathToFileURL(path.join(dist, 'proxy/sockets.js')).href
      );
      const { link } = await import(pathToFileURL(path.join(dist, 'proxy/link.js')).href);
      for (const [lp, bp] of pairs) {
        const addr = { host: '127.0.0.1', port: bp };
        const server = createProxyServer((client) => {
          client.on('error', () => undefined);
          connectBackend(addr, 5000).then(
            (backend) => {
              if (client.destroyed) return void backend.destroy();
              sessions++;
              link(client, backend, { onClose: () => sessions-- });
            },
            () => client.destroy(),
          );
        });
        server.on('error', () => undefined);
        server.listen({ port: lp, host: '127.0.0.1', backlog: 4096 });
      }
    }
  }
  process.on('message', (m) => {
    if (m === 'snapshot') {
      import('node:v8').then((v8) =>
        process.send?.({ snapshot: v8.writeHeapSnapshot(`${TMP}/proxy.heapsnapshot`) }),
      );
    }
    if (m === 'mem' || m === 'mem-gc') {
      if (m === 'mem-gc') globalThis.gc?.();
      process.send?.({ mem: process.memoryUsage() });
    }
    if (m === 'eld') {
      process.send?.({
        eld: { p50: elu.percentile(50) / 1e6, p99: elu.percentile(99) / 1e6, max: elu.max / 1e6 },
        sessions,
      });
      elu.reset();
    }
  });
  // A normal exit, so --cpu-prof and friends write their files.
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
  process.send?.({ ready: true });
}

// ---------------------------------------------------------------- backends and targets

/**
 * @typedef {object} Target A proxy under test.
 * @property {string} [name]
 * @property {number | undefined} pid
 * @property {import('node:child_process').ChildProcess} [proc] our own proxy child (IPC)
 * @property {() => Promise<void>} stop
 * @property {{ ka: number, close: number, iperf: number, sockperf: number }} [ports]
 */

/**
 * Resolves when a forked proxy child says it listens.
 * @param {import('node:child_process').ChildProcess} child
 * @returns {Promise<void>}
 */
function ready(child) {
  return new Promise((resolve) =>
    child.on('message', (m) => {
      if (/** @type {{ ready?: boolean }} */ (m).ready) resolve();
    }),
  );
}

/** nginx, iperf3 and sockperf servers as the full bench starts them, on the load CPU. */
async function startBackends() {
  mkdirSync(TMP, { recursive: true });
  const opts = { dir: TMP, cpu: LOAD_CPU, logDir: TMP };
  const [nginx, iperf, sockperf] = await Promise.all([
    startNginx(opts),
    startIperf3Server(opts),
    startSockperfServer(opts),
  ]);
  Object.assign(PORTS, { nginx: nginx.port, iperf: iperf.port, sockperf: sockperf.port });
  return { nginx, procs: [nginx.proc, iperf.proc, sockperf.proc] };
}

function listenPorts(i) {
  const b = BASE + 500 + i * 10; // every port within BASE..BASE+999
  return { ka: b, close: b, iperf: b + 1, sockperf: b + 2 };
}

async function startTarget(name, i, nginx) {
  const lp = listenPorts(i);
  const pairs = [`${lp.ka}:${PORTS.nginx}`, `${lp.iperf}:${PORTS.iperf}`, `${lp.sockperf}:${PORTS.sockperf}`];
  if (name === 'haproxy') {
    const lb = await startHaproxy({
      benchDir: here,
      label: 'dpq-haproxy',
      cfg: 'haproxy-datapath-quick.cfg',
      port: lp.ka,
      env: {
        MLB_HTTP_BACKEND: `127.0.0.1:${PORTS.nginx}`,
        MLB_IPERF_LISTEN: `127.0.0.1:${lp.iperf}`,
        MLB_IPERF_BACKEND: `127.0.0.1:${PORTS.iperf}`,
        MLB_SOCKPERF_LISTEN: `127.0.0.1:${lp.sockperf}`,
        MLB_SOCKPERF_BACKEND: `127.0.0.1:${PORTS.sockperf}`,
      },
      cpu: TARGET_CPU,
      logDir: TMP,
    });
    return { name, pid: lb.proc.pid, stop: () => lb.stop(), ports: lp };
  }
  // `mlb@/some/dist` runs another build of the data path (A/B of two versions in one run).
  const [kind, distDir] = name.split('@');
  if (kind === 'daemon' || kind === 'daemon-semi') return startDaemon(name, lp, distDir, nginx);
  const variant = kind === 'naive' ? 'naive' : kind === 'raw' ? 'raw' : 'mlb';
  const execArgv = kind === 'mlb-semi' ? [...SEMI] : [];
  const env = { ...process.env, ...(kind === 'mlb-plain' ? { MIRRORLB_DATAPATH: 'plain' } : {}) };
  const extra = opt('node-flags', '');
  if (extra) execArgv.push(...extra.split(' ').filter(Boolean));
  const childArgv = ['proxy', variant, ...pairs, ...argv];
  if (distDir) childArgv.push('--dist', distDir);
  const child = fork(fileURLToPath(import.meta.url), childArgv, {
    execArgv,
    env,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  await ready(child);
  await waitPort(lp.ka);
  await pinTarget(child.pid);
  return { name, pid: child.pid, proc: child, stop: async () => void child.kill(), ports: lp };
}

/**
 * The whole daemon (bin/mirrorlb.js, or `daemon@/build/dist` with schema/ beside dist/),
 * started by bench/lib/balancers.js: three mirrors in front of the three backends, each with
 * a primary whose check nginx answers SUCCESS and a backup whose check says FAILED, plus 4
 * more mirrors of 2 members checked at the default interval (the health checks and metrics
 * of a realistic config must not show in the figures). With `waitForRouting`, resolves once
 * every mirror has a primary taking clients.
 */
async function startDaemon(name, lp, distDir, nginx, waitForRouting = true) {
  // Member addresses must be unique: backups and idle mirrors use other loopback addresses.
  const mirror = (n, port, primary, backup) => ({
    name: n,
    listen: `127.0.0.1:${port}`,
    members: [
      { name: `${n}a`, address: primary, check: nginx.statusUrl(`${n}a`, true) },
      { name: `${n}b`, address: backup, check: nginx.statusUrl(`${n}b`, false) },
    ],
  });
  const mirrors = [
    mirror('http', lp.ka, `127.0.0.1:${PORTS.nginx}`, `127.0.2.1:${PORTS.nginx}`),
    mirror('iperf', lp.iperf, `127.0.0.1:${PORTS.iperf}`, `127.0.2.1:${PORTS.iperf}`),
    mirror('sockperf', lp.sockperf, `127.0.0.1:${PORTS.sockperf}`, `127.0.2.1:${PORTS.sockperf}`),
  ];
  for (let i = 0; i < 4; i++)
    mirrors.push(mirror(`idle${i}`, lp.ka + 5 + i, `127.0.3.${i + 1}:1972`, `127.0.4.${i + 1}:1972`));
  const nodeArgs = opt('node-flags', '').split(' ').filter(Boolean);
  if (name.startsWith('daemon-semi')) nodeArgs.push(...SEMI);
  const lb = await startMirrorlb({
    repoRoot: path.join(here, '..'),
    label: `dpq-${name.split('@')[0]}-${lp.ka}`,
    mirrors,
    adminPort: lp.ka + 9,
    cpu: TARGET_CPU,
    logDir: TMP,
    waitReady: waitForRouting,
    nodeArgs,
    // --session-log 1: one 'session' record per connection (log.sessions), written to the log file.
    sessionLog: opt('session-log', '0') === '1',
    ...(distDir ? { main: path.join(distDir, 'cli/main.js') } : {}),
  });
  return { name, pid: lb.proc.pid, stop: () => lb.stop(), ports: lp };
}

function eld(target) {
  if (!target.proc?.send) return Promise.resolve(null);
  return new Promise((resolve) => {
    const on = (m) => {
      if (m.eld) {
        target.proc.off('message', on);
        resolve(m.eld);
      }
    };
    target.proc.on('message', on);
    target.proc.send('eld');
  });
}

// ---------------------------------------------------------------- tests

const DURATION = Number(opt('duration', '5'));

const tests = {
  async ka(t) {
    const out = await tool('wrk', ['-t1', '-c50', `-d${DURATION}s`, `http://127.0.0.1:${t.ports.ka}/`]);
    const m = /Requests\/sec:\s+([\d.]+)/.exec(out);
    const n = /(\d+) requests in/.exec(out);
    return { value: m ? Number(m[1]) : NaN, unit: 'req/s', ops: n ? Number(n[1]) : NaN };
  },
  async close(t) {
    const out = await tool('wrk', [
      '-t1',
      '-c50',
      `-d${DURATION}s`,
      '-H',
      'Connection: close',
      `http://127.0.0.1:${t.ports.close}/`,
    ]);
    const m = /Requests\/sec:\s+([\d.]+)/.exec(out);
    const n = /(\d+) requests in/.exec(out);
    const e = /Socket errors: (.*)/.exec(out);
    return {
      value: m ? Number(m[1]) : NaN,
      unit: 'conn/s',
      ops: n ? Number(n[1]) : NaN,
      note: e ? e[1] : '',
    };
  },
  async iperf(t) {
    const out = await tool('iperf3', [
      '-c',
      '127.0.0.1',
      '-p',
      String(t.ports.iperf),
      '-t',
      String(DURATION),
      '-J',
    ]);
    try {
      const j = JSON.parse(out.slice(out.indexOf('{')));
      return { value: j.end.sum_received.bits_per_second / 1e9, unit: 'Gbit/s' };
    } catch {
      return { value: NaN, unit: 'Gbit/s', note: out.slice(0, 200) };
    }
  },
  async sockperf(t) {
    const out = await tool('sockperf', [
      'pp',
      '--tcp',
      '-i',
      '127.0.0.1',
      '-p',
      String(t.ports.sockperf),
      '-t',
      String(DURATION),
      '--full-rtt',
    ]);
    // eslint-disable-next-line no-control-regex
    const clean = out.replace(/\x1b\[[0-9;]*m/g, '');
    const pct = (p) => {
      const m = new RegExp(`percentile ${p} =\\s+([\\d.]+)`).exec(clean);
      return m ? Number(m[1]) : NaN;
    };
    const n = /ReceivedMessages=(\d+)/.exec(clean.split('Valid Duration')[1] ?? '');
    return {
      value: pct('50.000'),
      unit: 'us p50',
      p99: pct('99.000'),
      p999: pct('99.900'),
      ops: n ? Number(n[1]) : NaN,
    };
  },
};

async function runBench() {
  const targetNames = opt('targets', 'haproxy,mlb,mlb-plain').split(',');
  const testNames = opt('tests', 'ka,close,iperf,sockperf').split(',');
  const rounds = Number(opt('rounds', '3'));
  const backends = await startBackends();
  const targets = [];
  try {
    for (const [i, n] of targetNames.entries()) targets.push(await startTarget(n, i, backends.nginx));
    const results = {}; // test -> target -> [runs]
    for (let round = 0; round < rounds; round++) {
      for (const test of testNames) {
        // Alternate the order every round so drift on the busy machine hits every target alike.
        const order = round % 2 ? [...targets].reverse() : targets;
        for (const t of order) {
          await eld(t);
          const c0 = cpuMs(t.pid);
          const r = await tests[test](t);
          r.cpuMs = cpuMs(t.pid) - c0;
          r.eld = await eld(t);
          ((results[test] ??= {})[t.name] ??= []).push(r);
          const extra = r.p99 !== undefined ? ` p99 ${r.p99} p99.9 ${r.p999}` : '';
          const cpu = r.ops ? ` cpu ${((r.cpuMs * 1000) / r.ops).toFixed(1)} us/op` : ` cpu ${r.cpuMs} ms`;
          const e = r.eld ? ` eld p99 ${r.eld.p99.toFixed(2)} ms max ${r.eld.max.toFixed(1)} ms` : '';
          console.log(
            `round ${round + 1} ${test.padEnd(8)} ${t.name.padEnd(10)} ${r.value.toFixed(2)} ${r.unit}${extra}${cpu}${e}${r.note ? ' ' + r.note : ''}`,
          );
          await sleep(500);
        }
      }
    }
    console.log('\nmedians (ratio vs haproxy; for latency lower is better):');
    for (const test of testNames) {
      const base = results[test].haproxy;
      for (const t of targets) {
        const runs = results[test][t.name];
        const v = median(runs.map((r) => r.value));
        const spread = `${Math.min(...runs.map((r) => r.value)).toFixed(1)}-${Math.max(...runs.map((r) => r.value)).toFixed(1)}`;
        let line = `${test.padEnd(8)} ${t.name.padEnd(10)} ${v.toFixed(2)} ${runs[0].unit} [${spread}]`;
        if (base) line += ` ratio ${(v / median(base.map((r) => r.value))).toFixed(2)}`;
        if (runs[0].p99 !== undefined) {
          const p99 = median(runs.map((r) => r.p99));
          const p999 = median(runs.map((r) => r.p999));
          line += ` p99 ${p99.toFixed(1)} p99.9 ${p999.toFixed(1)}`;
          if (base) {
            line += ` ratios p99 ${(p99 / median(base.map((r) => r.p99))).toFixed(2)} p99.9 ${(p999 / median(base.map((r) => r.p999))).toFixed(2)}`;
          }
        }
        if (runs[0].ops) line += ` cpu ${median(runs.map((r) => (r.cpuMs * 1000) / r.ops)).toFixed(1)} us/op`;
        console.log(line);
        // Paired: each round's ratio to haproxy measured next to it, then the median of those
        // (drift on a busy machine hits both runs of a pair alike).
        if (base && t.name !== 'haproxy') {
          const paired = (f) => median(runs.map((r, i) => f(r) / f(base[i]))).toFixed(2);
          let p = `         ${''.padEnd(10)} paired ratio ${paired((r) => r.value)}`;
          if (runs[0].p99 !== undefined) p += ` p99 ${paired((r) => r.p99)} p99.9 ${paired((r) => r.p999)}`;
          if (runs[0].ops) p += ` cpu/op ${paired((r) => r.cpuMs / r.ops)}`;
          console.log(p);
        }
      }
    }
  } finally {
    await Promise.all(targets.map((t) => t.stop()));
    await stopAll();
  }
}

// ---------------------------------------------------------------- idle sessions and RSS

async function idleChild() {
  // Opens n connections to port, sends one byte on each, waits for it to come back (the
  // session is linked), then holds them all until told to stop.
  const [port, n] = [Number(argv[0]), Number(argv[1])];
  const socks = [];
  let done = 0;
  let failed = 0;
  const batch = 200;
  for (let i = 0; i < n; i += batch) {
    await Promise.all(
      Array.from({ length: Math.min(batch, n - i) }, () => {
        return new Promise((/** @type {(v?: undefined) => void} */ resolve) => {
          const s = net.connect(port, '127.0.0.1');
          s.on('error', () => {
            failed++;
            resolve();
          });
          s.once('connect', () => s.write('x'));
          s.once('data', () => {
            done++;
            socks.push(s);
            resolve();
          });
        });
      }),
    );
  }
  process.send?.({ done, failed });
  process.on('message', () => process.exit(0));
}

async function runIdle() {
  const n = Number(opt('sessions', '10000'));
  const name = opt('target', 'mlb');
  const [kind, distDir] = name.split('@');
  mkdirSync(TMP, { recursive: true });
  // The echo backend and the clients live in their own processes (each side holds n fds).
  const backendPort = BASE + 333;
  start({
    name: 'dpq-echo',
    cmd: process.execPath,
    args: [
      '-e',
      `require('net').createServer((s) => { s.on('error', () => {}); s.pipe(s); }).listen(${backendPort}, '127.0.0.1')`,
    ],
    logDir: TMP,
  });
  await waitPort(backendPort);
  const lp = BASE + 334;
  /**
   * The proxy under test: its pid, and the IPC channel of our own proxy child (the daemon has none).
   * @type {Target}
   */
  let proxy;
  if (kind === 'daemon' || kind === 'daemon-semi') {
    const ports = { ka: lp, iperf: lp + 1, sockperf: lp + 2 };
    // nginx answers the daemon's checks only; its "http" mirror fronts the echo backend,
    // the other two mirrors ports where nothing listens (their members only need addresses).
    const nginx = await startNginx({ dir: TMP, cpu: LOAD_CPU, logDir: TMP });
    Object.assign(PORTS, { nginx: backendPort, iperf: BASE + 201, sockperf: BASE + 111 });
    proxy = await startDaemon(name, ports, distDir, nginx, false);
  } else {
    const execArgv = [...(kind === 'mlb-semi' ? SEMI : []), '--expose-gc'];
    const env = { ...process.env, ...(kind === 'mlb-plain' ? { MIRRORLB_DATAPATH: 'plain' } : {}) };
    const variant = kind === 'naive' ? 'naive' : kind === 'raw' ? 'raw' : 'mlb';
    const childArgv = ['proxy', variant, `${lp}:${backendPort}`, ...argv];
    if (distDir) childArgv.push('--dist', distDir);
    const child = fork(fileURLToPath(import.meta.url), childArgv, {
      execArgv,
      env,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    await ready(child);
    proxy = { pid: child.pid, proc: child, stop: async () => void child.kill() };
  }
  const ipc = proxy.proc;
  // Heap figures come from our own proxy child only (the daemon has no IPC channel).
  const mem = (gc) =>
    ipc
      ? new Promise((resolve) => {
          const on = (m) => {
            if (m.mem) {
              ipc.off('message', on);
              resolve(m.mem);
            }
          };
          ipc.on('message', on);
          ipc.send(gc ? 'mem-gc' : 'mem');
        })
      : Promise.resolve(null);
  try {
    await waitPort(lp);
    // Warm up (code compiled, pools and young generation grown) so "idle" is a daemon that
    // has carried traffic: 2 s of connection churn and echo traffic.
    await tool('wrk', ['-t1', '-c20', '-d2s', `http://127.0.0.1:${lp}/`]);
    await sleep(2000);
    const heap0 = await mem(false);
    const before = rssMb(proxy.pid);
    const clients = fork(fileURLToPath(import.meta.url), ['idle-clients', String(lp), String(n)], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const r = await new Promise((resolve) => clients.on('message', resolve));
    await sleep(3000);
    const heap1 = await mem(false);
    const after = rssMb(proxy.pid);
    const heap2 = await mem(true);
    const afterGc = rssMb(proxy.pid);
    console.log(
      `${name}: ${r.done} sessions linked (${r.failed} failed); RSS idle ${before.toFixed(1)} MB, with sessions ${after.toFixed(1)} MB: +${(after - before).toFixed(1)} MB (${(((after - before) * 1024) / Math.max(1, r.done)).toFixed(2)} KiB/session, ${(((after - before) * 10000) / Math.max(1, r.done)).toFixed(1)} MB per 10,000)` +
        (heap2 ? `; after a forced GC ${afterGc.toFixed(1)} MB` : ''),
    );
    if (heap0 && heap1 && heap2) {
      const mb = (x) => (x / 1048576).toFixed(1);
      console.log(
        `  heapUsed ${mb(heap0.heapUsed)} -> ${mb(heap1.heapUsed)} MB (${mb(heap2.heapUsed)} after GC), heapTotal ${mb(heap0.heapTotal)} -> ${mb(heap1.heapTotal)} MB, external ${mb(heap0.external)} -> ${mb(heap1.external)} MB`,
      );
    }
    if (opt('snapshot', '') === '1' && ipc) {
      await new Promise((resolve) => {
        ipc.on('message', (m) => {
          const { snapshot } = /** @type {{ snapshot?: string }} */ (m);
          if (snapshot) resolve(console.log(`  heap snapshot: ${snapshot}`));
        });
        ipc.send('snapshot');
      });
    }
    clients.send('stop');
  } finally {
    await proxy.stop();
    await stopAll();
  }
}

switch (mode) {
  case 'proxy':
    await proxyChild();
    break;
  case 'idle-clients':
    await idleChild();
    break;
  case 'idle':
    await runIdle();
    break;
  default:
    await runBench();
}
