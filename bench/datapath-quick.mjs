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

import { execFile, fork, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { cpuMicros } from './lib/proc.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const mode = argv[0] && !argv[0].startsWith('--') ? argv.shift() : 'run';

function opt(name, dflt) {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : dflt;
}

const TMP = opt('tmp', '/tmp/dpq');
const BASE = Number(opt('base-port', '21000'));
const PORTS = { nginx: BASE + 80, iperf: BASE + 201, sockperf: BASE + 111 };
const SEMI = ['--min-semi-space-size=16', '--max-semi-space-size=64'];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// As the full bench: the target alone on CPU 1, load generators and backends on CPU 0
// (--pin 0 turns it off). Rates then follow the target's CPU per operation.
const PIN = opt('pin', '1') === '1' && (await import('node:os')).cpus().length >= 2;
const LOADGEN = new Set(['wrk', 'iperf3', 'sockperf', 'nginx']);

async function pinTarget(pid) {
  if (PIN) await run('taskset', ['-a', '-pc', '1', String(pid)]);
}

function run(cmd, args, timeoutMs = 120_000) {
  if (PIN && LOADGEN.has(cmd)) [cmd, args] = ['taskset', ['-c', '0', cmd, ...args]];
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      resolve({ err, out: String(stdout) + String(stderr) }),
    );
  });
}

function waitPort(port, ms = 10_000) {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve();
      });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > deadline) reject(new Error(`port ${port} never opened`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
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
        pathToFileURL(path.join(dist, 'proxy/sockets.js'))
      );
      const { link } = await import(pathToFileURL(path.join(dist, 'proxy/link.js')));
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
        process.send({ snapshot: v8.writeHeapSnapshot(`${TMP}/proxy.heapsnapshot`) }),
      );
    }
    if (m === 'mem' || m === 'mem-gc') {
      if (m === 'mem-gc') globalThis.gc?.();
      process.send({ mem: process.memoryUsage() });
    }
    if (m === 'eld') {
      process.send({
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

async function startBackends() {
  mkdirSync(TMP, { recursive: true });
  writeFileSync(
    `${TMP}/nginx.conf`,
    `worker_processes 1; daemon off; pid ${TMP}/nginx.pid; error_log ${TMP}/nginx.err; user root;
events { worker_connections 30000; use epoll; multi_accept on; }
http { access_log off; keepalive_requests 100000000; client_body_temp_path ${TMP}; proxy_temp_path ${TMP};
  fastcgi_temp_path ${TMP}; uwsgi_temp_path ${TMP}; scgi_temp_path ${TMP};
  server { listen 127.0.0.1:${PORTS.nginx} backlog=4096; location / { return 200 "ok\\n"; } } }
`,
  );
  const pin0 = (cmd, args, o) => (PIN ? spawn('taskset', ['-c', '0', cmd, ...args], o) : spawn(cmd, args, o));
  const procs = [
    pin0('nginx', ['-c', `${TMP}/nginx.conf`], { stdio: 'ignore' }),
    pin0('iperf3', ['-s', '-B', '127.0.0.1', '-p', String(PORTS.iperf)], { stdio: 'ignore' }),
    pin0('sockperf', ['sr', '--tcp', '-i', '127.0.0.1', '-p', String(PORTS.sockperf)], { stdio: 'ignore' }),
  ];
  await Promise.all(Object.values(PORTS).map((p) => waitPort(p)));
  return procs;
}

function listenPorts(i) {
  const b = BASE + 500 + i * 10; // every port within BASE..BASE+999
  return { ka: b, close: b, iperf: b + 1, sockperf: b + 2 };
}

async function startTarget(name, i) {
  const lp = listenPorts(i);
  const pairs = [`${lp.ka}:${PORTS.nginx}`, `${lp.iperf}:${PORTS.iperf}`, `${lp.sockperf}:${PORTS.sockperf}`];
  if (name === 'haproxy') {
    const fe = (n, port, be) =>
      `frontend f_${n}\n  bind 127.0.0.1:${port}\n  default_backend b_${n}\nbackend b_${n}\n  server s 127.0.0.1:${be}\n`;
    writeFileSync(
      `${TMP}/haproxy.cfg`,
      `global\n  nbthread 1\n  maxconn 9000\n\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 5m\n  timeout server 5m\n\n` +
        fe('http', lp.ka, PORTS.nginx) +
        fe('iperf', lp.iperf, PORTS.iperf) +
        fe('sockperf', lp.sockperf, PORTS.sockperf),
    );
    const p = spawn('haproxy', ['-f', `${TMP}/haproxy.cfg`, '-db'], { stdio: 'ignore' });
    await waitPort(lp.ka);
    await pinTarget(p.pid);
    return { name, pid: p.pid, proc: p, ports: lp };
  }
  // `mlb@/some/dist` runs another build of the data path (A/B of two versions in one run).
  const [kind, distDir] = name.split('@');
  if (kind === 'daemon' || kind === 'daemon-semi') return startDaemon(name, lp, distDir);
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
  await new Promise((resolve) => child.on('message', (m) => m.ready && resolve()));
  await waitPort(lp.ka);
  await pinTarget(child.pid);
  return { name, pid: child.pid, proc: child, ports: lp };
}

/**
 * The whole daemon (bin/mirrorlb.js, or `daemon@/build/dist` with schema/ beside dist/):
 * three mirrors in front of the three backends, each with a primary whose check answers
 * from a small HTTP server here and a backup whose check says FAILED, plus 4 more mirrors
 * of 2 members checked at the default interval (the health checks and metrics of
 * a realistic config must not show in the figures).
 */
let checkServer = null;
async function startDaemon(name, lp, distDir, waitForRouting = true) {
  const http = await import('node:http');
  if (!checkServer) {
    checkServer = http.createServer((req, res) => {
      const up = req.url.includes('/up/');
      res.writeHead(up ? 200 : 503, { 'Content-Type': 'text/plain' });
      res.end(up ? 'SUCCESS' : 'FAILED');
    });
    await new Promise((r) => checkServer.listen(BASE + 90, '127.0.0.1', r));
  }
  const check = (m, state) => `http://127.0.0.1:${BASE + 90}/${m}/${state}/csp/mirror_status.cxw`;
  // Member addresses must be unique: backups and idle mirrors use other loopback addresses.
  const mirror = (n, port, primary, backup) =>
    `  - name: ${n}\n    listen: "127.0.0.1:${port}"\n    members:\n` +
    `      - name: ${n}a\n        address: "${primary}"\n        check: "${check(n + 'a', 'up')}"\n` +
    `      - name: ${n}b\n        address: "${backup}"\n        check: "${check(n + 'b', 'down')}"\n`;
  let yml = 'mirrors:\n' + mirror('http', lp.ka, `127.0.0.1:${PORTS.nginx}`, `127.0.2.1:${PORTS.nginx}`);
  yml += mirror('iperf', lp.iperf, `127.0.0.1:${PORTS.iperf}`, `127.0.2.1:${PORTS.iperf}`);
  yml += mirror('sockperf', lp.sockperf, `127.0.0.1:${PORTS.sockperf}`, `127.0.2.1:${PORTS.sockperf}`);
  for (let i = 0; i < 4; i++)
    yml += mirror(`idle${i}`, lp.ka + 5 + i, `127.0.3.${i + 1}:1972`, `127.0.4.${i + 1}:1972`);
  // --session-log 1: one 'session' record per connection (log.sessions), written to /dev/null.
  const log =
    opt('session-log', '0') === '1' ? 'log:\n  level: info\n  sessions: true\n' : 'log:\n  level: warn\n';
  yml += `admin:\n  listen: "127.0.0.1:${lp.ka + 9}"\n${log}shutdown:\n  grace: 0\n`;
  const file = `${TMP}/daemon-${lp.ka}.yml`;
  writeFileSync(file, yml);
  const main = distDir ? path.join(distDir, 'cli/main.js') : path.join(here, '..', 'dist/cli/main.js');
  const extra = opt('node-flags', '').split(' ').filter(Boolean);
  if (name.startsWith('daemon-semi')) extra.push(...SEMI);
  const p = spawn(
    process.execPath,
    [
      ...extra,
      '--input-type=module',
      '-e',
      `import(${JSON.stringify(pathToFileURL(main).href)}).then((m) => m.main(['--config', ${JSON.stringify(file)}]))`,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  await waitPort(lp.ka);
  // Routing starts once the first check answered: wait until a request goes through.
  for (let i = 0; i < 100 && waitForRouting; i++) {
    const r = await run('curl', ['-s', '-m', '1', `http://127.0.0.1:${lp.ka}/`]);
    if (r.out.includes('ok')) break;
    await sleep(100);
  }
  await pinTarget(p.pid);
  return { name, pid: p.pid, proc: p, ports: lp };
}

function eld(target) {
  if (!target.proc.send) return Promise.resolve(null);
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
    const r = await run('wrk', ['-t1', '-c50', `-d${DURATION}s`, `http://127.0.0.1:${t.ports.ka}/`]);
    const m = /Requests\/sec:\s+([\d.]+)/.exec(r.out);
    const n = /(\d+) requests in/.exec(r.out);
    return { value: m ? Number(m[1]) : NaN, unit: 'req/s', ops: n ? Number(n[1]) : NaN };
  },
  async close(t) {
    const r = await run('wrk', [
      '-t1',
      '-c50',
      `-d${DURATION}s`,
      '-H',
      'Connection: close',
      `http://127.0.0.1:${t.ports.close}/`,
    ]);
    const m = /Requests\/sec:\s+([\d.]+)/.exec(r.out);
    const n = /(\d+) requests in/.exec(r.out);
    const e = /Socket errors: (.*)/.exec(r.out);
    return {
      value: m ? Number(m[1]) : NaN,
      unit: 'conn/s',
      ops: n ? Number(n[1]) : NaN,
      note: e ? e[1] : '',
    };
  },
  async iperf(t) {
    const r = await run('iperf3', [
      '-c',
      '127.0.0.1',
      '-p',
      String(t.ports.iperf),
      '-t',
      String(DURATION),
      '-J',
    ]);
    try {
      const j = JSON.parse(r.out.slice(r.out.indexOf('{')));
      return { value: j.end.sum_received.bits_per_second / 1e9, unit: 'Gbit/s' };
    } catch {
      return { value: NaN, unit: 'Gbit/s', note: r.out.slice(0, 200) };
    }
  },
  async sockperf(t) {
    const r = await run('sockperf', [
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
    const out = r.out.replace(/\x1b\[[0-9;]*m/g, '');
    const pct = (p) => {
      const m = new RegExp(`percentile ${p} =\\s+([\\d.]+)`).exec(out);
      return m ? Number(m[1]) : NaN;
    };
    const n = /ReceivedMessages=(\d+)/.exec(out.split('Valid Duration')[1] ?? '');
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
    for (const [i, n] of targetNames.entries()) targets.push(await startTarget(n, i));
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
    for (const t of targets) t.proc.kill();
    for (const p of backends) p.kill();
    checkServer?.close();
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
        return new Promise((resolve) => {
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
  process.send({ done, failed });
  process.on('message', () => process.exit(0));
}

async function runIdle() {
  const n = Number(opt('sessions', '10000'));
  const name = opt('target', 'mlb');
  const [kind, distDir] = name.split('@');
  mkdirSync(TMP, { recursive: true });
  // The echo backend and the clients live in their own processes (each side holds n fds).
  const backendPort = BASE + 333;
  const backend = spawn(
    process.execPath,
    [
      '-e',
      `require('net').createServer((s) => { s.on('error', () => {}); s.pipe(s); }).listen(${backendPort}, '127.0.0.1')`,
    ],
    { stdio: 'inherit' },
  );
  await waitPort(backendPort);
  const lp = BASE + 334;
  let proxy;
  if (kind === 'daemon' || kind === 'daemon-semi') {
    const ports = { ka: lp, iperf: lp + 1, sockperf: lp + 2 };
    PORTS.nginx = backendPort; // the daemon's "http" mirror fronts the echo backend
    proxy = (await startDaemon(name, ports, distDir, false)).proc;
  } else {
    const execArgv = [...(kind === 'mlb-semi' ? SEMI : []), '--expose-gc'];
    const env = { ...process.env, ...(kind === 'mlb-plain' ? { MIRRORLB_DATAPATH: 'plain' } : {}) };
    const variant = kind === 'naive' ? 'naive' : kind === 'raw' ? 'raw' : 'mlb';
    const childArgv = ['proxy', variant, `${lp}:${backendPort}`, ...argv];
    if (distDir) childArgv.push('--dist', distDir);
    proxy = fork(fileURLToPath(import.meta.url), childArgv, {
      execArgv,
      env,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    await new Promise((resolve) => proxy.on('message', (m) => m.ready && resolve()));
  }
  // Heap figures come from our own proxy child only (the daemon has no IPC channel).
  const mem = (gc) =>
    proxy.send
      ? new Promise((resolve) => {
          const on = (m) => {
            if (m.mem) {
              proxy.off('message', on);
              resolve(m.mem);
            }
          };
          proxy.on('message', on);
          proxy.send(gc ? 'mem-gc' : 'mem');
        })
      : Promise.resolve(null);
  try {
    await waitPort(lp);
    // Warm up (code compiled, pools and young generation grown) so "idle" is a daemon that
    // has carried traffic: 2 s of connection churn and echo traffic.
    await run('wrk', ['-t1', '-c20', '-d2s', `http://127.0.0.1:${lp}/`]).catch(() => undefined);
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
    if (opt('snapshot', '') === '1' && proxy.send) {
      await new Promise((resolve) => {
        proxy.on('message', (m) => m.snapshot && resolve(console.log(`  heap snapshot: ${m.snapshot}`)));
        proxy.send('snapshot');
      });
    }
    clients.send('stop');
  } finally {
    proxy.kill();
    backend.kill();
    checkServer?.close();
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
