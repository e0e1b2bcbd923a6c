// The bench harness's own pieces: its clients over real loopback sockets, the way it boils
// runs down to medians, the table and the picture it writes, and the shape of the committed
// result file. The bench itself (balancers, tools, namespaces) runs in CI as
// `npm run bench -- --quick`; this file needs none of that.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parseSockperf, parseWrk } from '../bench/lib/datapath.js';
import { cpuMicros } from '../bench/lib/proc.js';
import { summarize } from '../bench/lib/failover.js';
import { openHolders, startFleet } from '../bench/lib/fleet.js';
import { markdown } from '../bench/lib/report.js';
import { peakBurst, stormMarkdown, summarizeStorm } from '../bench/lib/storm.js';
import { switchoverSvg } from '../bench/lib/svg.js';
import { median, percentile } from '../bench/lib/util.js';

type Test = typeof t;
type Rec = { c: number; t0: number; t1: number; member: string | null; outcome: string };
type Holder = { member: string | null; tClose: number | null };

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** A TCP server on port 0 whose connection handler is `onConn`; closed (with its sockets) in teardown. */
async function server(
  t: Test,
  onConn: (s: net.Socket) => void,
): Promise<{ port: number; sockets: Set<net.Socket> }> {
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    onConn(s);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.teardown(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        srv.close(() => r());
      }),
  );
  return { port: (srv.address() as net.AddressInfo).port, sockets };
}

async function fleetFor(port: number, ms: number, timeoutMs = 1000): Promise<Rec[]> {
  const fleet = startFleet({ port, clients: 2, pauseMs: 5, timeoutMs });
  await new Promise((r) => setTimeout(r, ms));
  return (await fleet.stop()) as Rec[];
}

t.test('fleet: each attempt records the member that greeted it', async (t) => {
  const { port } = await server(t, (s) => s.write('ap1a\n'));
  const recs = await fleetFor(port, 200);
  t.ok(recs.length >= 4, `several attempts (${recs.length})`);
  t.same([...new Set(recs.map((r) => `${r.outcome}:${r.member}`))], ['ok:ap1a']);
  t.same([...new Set(recs.map((r) => r.c))].sort(), [0, 1], 'both clients ran');
  t.ok(
    recs.every((r) => r.t1 >= r.t0),
    'answer never before the connect',
  );
});

t.test(
  'fleet: a refused connect, a silent member and a close before the greeting are failures',
  async (t) => {
    const gone = await server(t, () => undefined);
    const refusedPort = gone.port;
    // Free the port again so connects to it are refused.
    await new Promise<void>((r) => {
      const probe = net.connect(refusedPort, '127.0.0.1', () => {
        probe.destroy();
        r();
      });
    });
    const closedPort = await new Promise<number>((resolve) => {
      const s = net.createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const refused = await fleetFor(closedPort, 60);
    t.ok(refused.length > 0 && refused.every((r) => r.outcome === 'refused' && r.member === null), 'refused');

    const silent = await server(t, () => undefined);
    const timedOut = await fleetFor(silent.port, 60, 80);
    t.ok(timedOut.length > 0 && timedOut.every((r) => r.outcome === 'timeout'), 'timeout');
    t.ok(
      timedOut.every((r) => r.t1 - r.t0 >= 70),
      'a timeout is recorded only after the client timeout',
    );

    const rude = await server(t, (s) => s.end());
    const closed = await fleetFor(rude.port, 60);
    t.ok(closed.length > 0 && closed.every((r) => r.outcome === 'closed' || r.outcome === 'reset'), 'closed');
  },
);

t.test(
  'holders: sessions closed by the far side get a close time, the bench closing them does not',
  async (t) => {
    const srv = await server(t, (s) => s.write('ap1b\n'));
    const a = await openHolders({ port: srv.port, n: 3, timeoutMs: 2000 });
    t.same(
      a.holders.map((h: Holder) => h.member),
      ['ap1b', 'ap1b', 'ap1b'],
    );
    for (const s of srv.sockets) s.destroy();
    const deadline = Date.now() + 5000;
    while (a.holders.some((h: Holder) => h.tClose === null) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    t.ok(
      a.holders.every((h: Holder) => h.tClose !== null),
      'all three saw the close',
    );
    const b = await openHolders({ port: srv.port, n: 2, timeoutMs: 2000 });
    b.close();
    b.close();
    await new Promise((r) => setTimeout(r, 50));
    t.ok(
      b.holders.every((h: Holder) => h.tClose === null),
      'closing them ourselves is not counted as the balancer closing them',
    );
  },
);

t.test('order statistics', async (t) => {
  t.equal(median([5, 1, 3]), 3);
  t.equal(median([4, 1, 3, 2]), 2, 'nearest rank, lower middle');
  t.equal(median([null, 2, Number.NaN, 4, Infinity]), 2, 'non-numbers are ignored');
  t.equal(median([]), null);
  t.equal(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90), 9);
});

const run = (
  balancer: string,
  scenario: string,
  failover: number | null,
  extra: Record<string, unknown> = {},
) => ({
  balancer,
  scenario,
  failover_ms: failover,
  misrouted: 10,
  failures: { total: 2, refused: 0, reset: 0, closed: 2, timeout: 0, other: 0 },
  old_sessions: { n: 8, open_at_end: 0, max_ms: 100, median_ms: 50 },
  window_ms: 4000,
  ...extra,
});

t.test('summarize: medians over repetitions, sessions left open, ratio to mirrorlb', async (t) => {
  const runs = [
    run('mirrorlb', 'switchover', 40),
    run('mirrorlb', 'switchover', 20),
    run('mirrorlb', 'switchover', 30),
    run('haproxy-tuned', 'switchover', 900),
    run('haproxy-tuned', 'switchover', null),
    run('haproxy-tuned', 'switchover', 300, {
      old_sessions: { n: 8, open_at_end: 8, max_ms: null, median_ms: null },
    }),
  ];
  const rows = summarize(
    runs,
    [{ id: 'mirrorlb' }, { id: 'haproxy-tuned' }],
    [{ id: 'switchover' }, { id: 'hung' }],
  );
  t.equal(rows.length, 2, 'one row per balancer and scenario that ran');
  const [m, h] = rows;
  t.equal(m.failover_ms, 30);
  t.equal(m.old_sessions_closed_ms, 100);
  t.equal(h.failover_ms, 300, 'median of the runs that reached the new primary');
  t.equal(h.never_reached_new, 1);
  t.equal(h.old_sessions_left_open_runs, 1);
  t.equal(h.old_sessions_closed_ms, 100, 'one open run of three: the median is still a closed one');
  t.equal(h.mirrorlb_ratio, 0.1);
  t.equal(h.failures_by_kind.closed, 6, 'failure kinds are totals over runs');
});

const timeline = (oldName: string, newName: string, promote: number, fail = false) => ({
  promote_ms: promote,
  end_ms: 2000,
  old: oldName,
  new: newName,
  records: [
    [-300, -299, 0, oldName],
    [-100, -99, 1, oldName],
    [10, 11, 0, oldName],
    ...(fail ? [[50, 250, 1, 'timeout']] : []),
    [promote + 5, promote + 6, 0, newName],
    [promote + 30, promote + 31, 1, newName],
  ],
  old_sessions_closed_ms: [promote + 10, null],
});

t.test('svg: one lane per balancer, failures drawn, no NaN', async (t) => {
  const svg = switchoverSvg(
    { mirrorlb: timeline('ap1a', 'ap1b', 200), 'haproxy-seed': timeline('ap1a', 'ap1b', 200, true) },
    { mirrorlb: 'mirrorlb', 'haproxy-seed': 'haproxy (seed)' },
  );
  t.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  t.match(svg, /<\/svg>\n$/);
  t.notMatch(svg, /NaN|undefined|Infinity/);
  t.match(svg, />mirrorlb</);
  t.match(svg, />haproxy \(seed\)</);
  t.match(svg, /first client on new primary 6 ms after it became primary/);
  t.match(svg, /1 sessions on the old primary still open at the end/);
  t.equal(svg.match(/fill="#e15759"/g)?.length, 3, "legend swatch, the failed connect's wait and its end");
  t.equal(svg.match(/fill="#e15759" fill-opacity="0.25"/g)?.length, 1, 'its 200 ms wait is drawn pale');
});

const dpTest = (id: string, unit: string, targets: Record<string, Record<string, unknown>>) => ({
  test: id,
  label: id,
  unit,
  targets,
});

t.test('markdown: machine, tables and skipped parts', async (t) => {
  const md = markdown({
    date: '2026-01-01T00:00:00.000Z',
    mode: 'full',
    command: 'npm run bench',
    pinning: 'balancer on CPU 1',
    machine: {
      cpu: 'Test CPU',
      cores: 2,
      memory_gib: 4,
      kernel: 'Linux 6',
      node: 'v20',
      haproxy: 'HAProxy version 2.6',
      nginx: '1.22',
      wrk: 'wrk 4',
      iperf3: 'iperf 3',
      sockperf: 'sockperf 3',
      mirrorlb: '0.1.0',
      commit: 'abc',
      loadavg_at_start: [1, 2, 3],
    },
    failover: {
      settings: {
        members_network: 'loopback',
        clients: 4,
        pause_ms: 8,
        client_timeout_ms: 2000,
        holders: 8,
        gap_ms: 200,
        reps: 3,
        tail_ms: 1000,
        cap_ms: 12000,
      },
      scenarios: [{ id: 'switchover', label: 'switchover' }],
      summary: summarize(
        [run('mirrorlb', 'switchover', 30), run('haproxy-seed', 'switchover', 3000)],
        [{ id: 'mirrorlb' }, { id: 'haproxy-seed' }],
        [{ id: 'switchover' }],
      ),
      skipped: [{ what: 'primary blackholed', reason: 'not root' }],
    },
    datapath: {
      settings: { reps: 3, duration_s: 5, warmup_s: 1, idle_sessions: 10000 },
      tests: [
        dpTest('rr', 'req/s', {
          direct: { value: 100000 },
          haproxy: { value: 30000, cpu_us_per_op: 30 },
          mirrorlb: { value: 27000, ratio: 0.9, cpu_us_per_op: 36, cpu_ratio: 1.2 },
        }),
        dpTest('rtt', 'µs', {
          direct: { p50: 10, p99: 20, p999: 30 },
          haproxy: { p50: 40, p99: 60, p999: 90 },
          mirrorlb: { p50: 44, p99: 66, p999: 99, ratio: { p50: 1.1, p99: 1.1, p999: 1.1 } },
        }),
      ],
      rss: {
        mirrorlb: {
          sessions: 10000,
          rss_idle_mib: 60,
          rss_sessions_mib: 100,
          delta_mib: 40,
          per_session_kib: 4.1,
        },
      },
      metrics: { skipped: 'no switch' },
      skipped: [],
    },
  });
  t.match(md, /Test CPU, 2 cores/);
  t.match(md, /\| switchover \| mirrorlb \| 30 ms \|/);
  t.match(md, /\| switchover \| haproxy \(seed\) \| 3,000 ms \| 0\.01x \|/);
  t.match(md, /\| rr \(req\/s\) \| 100,000 \| 30,000 \| 27,000 \| 0\.90x \|/);
  // The CPU row follows its rate row; direct has no balancer process.
  t.match(
    md,
    /\| 0\.90x \|\n\| … the balancer's CPU per request \(µs, lower is better\) \| – \| 30\.0 \| 36\.0 \| 1\.20x \|/,
  );
  t.match(md, /\| round trip p99\.9 \(µs, lower is better\) \| 30\.0 \| 90\.0 \| 99\.0 \| 1\.10x \|/);
  t.match(md, /\| mirrorlb \| 60\.0 MiB \| 100\.0 MiB \| 40\.0 MiB \| 4\.10 KiB \|/);
  t.match(md, /- primary blackholed: not root/);
  t.notMatch(md, /undefined|NaN/);
});

t.test('tool output parsers', async (t) => {
  const wrk = `Running 5s test @ http://127.0.0.1:1/
  1 threads and 50 connections
  156172 requests in 5.00s, 12.90MB read
  Socket errors: connect 0, read 3, write 1, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:  31234.56
Transfer/sec:      2.58MB`;
  t.same(parseWrk(wrk), { value: 31234.56, count: 156172, errors: 6, non2xx: 4 });
  t.same(parseWrk('garbage'), { value: null, count: null, errors: 0, non2xx: 0 });
  const sp = `sockperf: ====> avg-rtt=16.627 (std-dev=49.572)
sockperf: ---> percentile 99.999 = 8316.677
sockperf: ---> percentile 99.990 = 1826.453
sockperf: ---> percentile 99.900 =   80.077
sockperf: ---> percentile 99.000 =   35.184
sockperf: ---> percentile 50.000 =   17.000`;
  t.same(parseSockperf(sp), { p50: 17, p99: 35.184, p999: 80.077, avg: 16.627 });
});

t.test('storm: burst window, medians, ratio to haproxy and the table', async (t) => {
  t.equal(peakBurst([50, 0, 1, 9, 51, 100], 10), 3, 'three greetings within 10 ms');
  t.equal(peakBurst([], 10), 0);
  const run = (balancer: string, ms: number | null, failed: number) => ({
    balancer,
    all_on_new: ms !== null,
    time_to_all_ms: ms,
    median_reconnect_ms: ms === null ? null : ms / 2,
    failed_reconnects: failed,
    peak_held: 10,
    new_primary_peak_burst: 4,
    listen_drops: 0,
  });
  const balancers = [
    { id: 'mirrorlb', label: 'mirrorlb' },
    { id: 'haproxy-tuned', label: 'haproxy (tuned)' },
  ];
  const runs = [
    run('mirrorlb', 100, 0),
    run('mirrorlb', 300, 0),
    run('mirrorlb', 200, 0),
    run('haproxy-tuned', 1000, 7),
    run('haproxy-tuned', null, 9),
    run('haproxy-tuned', 800, 5),
  ];
  const summary = summarizeStorm(runs, balancers);
  const m = summary.find((r: { balancer: string }) => r.balancer === 'mirrorlb');
  const h = summary.find((r: { balancer: string }) => r.balancer === 'haproxy-tuned');
  t.equal(m.time_to_all_ms, 200);
  t.equal(h.time_to_all_ms, 800, 'a run that never finished has no time');
  t.equal(h.incomplete_runs, 1);
  t.equal(h.failed_reconnects, 7);
  t.equal(m.time_ratio, 0.25);
  const md = stormMarkdown({
    settings: {
      clients: 2000,
      members_network: 'loopback',
      gap_ms: 200,
      attempt_timeout_ms: 5000,
      retry_ms: 100,
      burst_window_ms: 10,
      reps: 3,
    },
    summary,
  }).join('\n');
  t.match(md, /## Reconnect storm/);
  t.match(md, /\| haproxy \(tuned\) \| 800 ms \(1 runs never\) \| 0\.25x \|/);
  t.notMatch(md, /NaN|undefined/);
});

t.test('committed full-run results have the documented shape', async (t) => {
  const dir = path.join(root, 'bench', 'results');
  const files = fs.existsSync(dir)
    ? fs.readdirSync(dir).filter((f) => /^\d{4}-\d\d-\d\d-\d{4}\.json$/.test(f))
    : [];
  if (files.length === 0) {
    t.skip('no full-run results committed yet');
    return;
  }
  const r = JSON.parse(fs.readFileSync(path.join(dir, files.sort().at(-1)!), 'utf8'));
  t.equal(r.mode, 'full');
  for (const k of ['cpu', 'cores', 'kernel', 'node', 'haproxy']) t.ok(r.machine[k], `machine.${k}`);
  t.ok(r.pinning, 'pinning is stated');
  t.ok(Array.isArray(r.failover.summary) && r.failover.summary.length > 0, 'failover summary');
  for (const row of r.failover.summary) {
    t.ok(['mirrorlb', 'haproxy-seed', 'haproxy-tuned'].includes(row.balancer), `balancer ${row.balancer}`);
    t.ok(
      row.runs >= 1 && 'failover_ms' in row && 'misrouted' in row && 'failures' in row,
      `${row.balancer}/${row.scenario} fields`,
    );
  }
  t.ok(Array.isArray(r.datapath.tests) && r.datapath.tests.length > 0, 'data-path tests');
  for (const test of r.datapath.tests) t.ok(test.targets.mirrorlb, `${test.test} has a mirrorlb figure`);
  t.ok(fs.existsSync(path.join(dir, 'latest.md')), 'latest.md');
  t.ok(fs.existsSync(path.join(dir, 'switchover.svg')), 'switchover.svg');
});

t.test('cpuMicros reads a process CPU time from /proc, null once it is gone', async (t) => {
  const before = cpuMicros(process.pid);
  t.type(before, 'number');
  // Spin until the kernel has counted at least two more ticks (10 ms each), bounded in wall time.
  const until = Date.now() + 10_000;
  let now = before!;
  while ((now = cpuMicros(process.pid)!) < before! + 20_000 && Date.now() < until) {
    for (let i = 0; i < 1e5; i++) Math.sqrt(i);
  }
  t.ok(now >= before! + 20_000, `CPU time grew by ${now - before!} µs`);
  const gone = spawnSync('true');
  t.equal(cpuMicros(gone.pid!), null);
});
