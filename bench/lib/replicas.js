// Several mirrorlb replicas behind one L4 distributor, as in a cloud (an NLB) or on Kubernetes
// (a Service): the test/replicas.test.ts topology and the bench's "replicas" part share it.
//
// Every host is a network namespace on one bridge: two simulated members (m1, m2), three
// mirrorlb replicas (r1..r3, bin/mirrorlb.js from this tree) and the distributor (lb: haproxy
// round-robin in TCP mode, health-checking each replica's /readyz; IPVS would be the closer
// stand-in for an NLB, but this kernel has no CONFIG_IP_VS). The test process itself sits on
// the bridge through one veth, so its clients reach the distributor and each replica.
// Replicas share nothing: each checks the members on its own; the members' answers are the
// only common truth. Names start with rp15; needs root, iproute2, iptables and haproxy.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { buildBridgeNetwork, filterRestore } from './netns.js';
import { has, logTail, run, start } from './proc.js';
import { percentile, sleep } from './util.js';

export const PORTS = { client: 1972, web: 52773, control: 52774, admin: 9090 };
export const REPLICAS = ['r1', 'r2', 'r3'];
export const MEMBERS = ['m1', 'm2'];
const HOSTS = [...MEMBERS, ...REPLICAS, 'lb'];
export const TOKEN = 'rp15-replicas-token';

/** Why this machine cannot run the replica set (null: it can). */
export function replicasUnavailable() {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'not root (ip netns needs it)';
  for (const cmd of ['ip', 'iptables', 'iptables-restore', 'haproxy'])
    if (!has(cmd)) return `no ${cmd} on PATH`;
  return null;
}

async function sh(argv, opts = {}) {
  const r = await run(argv[0], argv.slice(1), { timeoutMs: 15_000, ...opts });
  if (r.code !== 0)
    throw new Error(`${argv.join(' ')}: ${(r.stderr || r.stdout).trim() || `exit ${r.code}`}`);
  return r.stdout;
}

/** A free /24 under 10.215/16 (no route of this machine in it), the last octet from the pid. */
async function pickSubnet() {
  const routes = (await run('ip', ['-4', 'route'], { timeoutMs: 5000 })).stdout;
  let octet = process.pid % 250;
  for (let i = 0; i < 250 && routes.includes(`10.215.${octet}.`); i++) octet = (octet + 1) % 250;
  return `10.215.${octet}`;
}

/**
 * The bridge and one namespace per host. Returns { tag, ip(h), ns(h), hostIp, partition(h, peer),
 * heal(h), teardown() }; removes what it made if any step fails.
 */
export async function createNet() {
  const tag = String(process.pid % 100000);
  const ns = (/** @type {string} */ h) => `rp15${tag}${h}`;
  const sw = ns('sw');
  const hostVeth = `rp15h${tag}`;
  const subnet = await pickSubnet();
  const ip = (/** @type {string} */ h) => `${subnet}.${11 + HOSTS.indexOf(h)}`;
  const hostIp = `${subnet}.1`;
  // The test process joins the bridge: its clients are the outside world.
  const teardown = await buildBridgeNetwork({
    sw,
    hosts: HOSTS,
    ns,
    ip,
    join: { veth: hostVeth, ip: hostIp },
  });
  return {
    tag,
    ns,
    ip,
    hostIp,
    /** `h` no longer reaches `peer` (every packet between them dropped, in h's namespace only). */
    partition: async (h, peer) => {
      const { argv, input } = filterRestore([
        `-A INPUT -s ${ip(peer)} -j DROP`,
        `-A OUTPUT -d ${ip(peer)} -j DROP`,
      ]);
      await sh(argv, { netns: ns(h), input });
    },
    heal: async (h) => void (await sh(['iptables', '-w', '5', '-F'], { netns: ns(h) })),
    teardown,
  };
}

/**
 * One small HTTP request (bounded); resolves { status, body }, or { status: 0, body: error } when nothing answered.
 * @param {string} host
 * @param {number} port
 * @param {string} urlPath
 * @param {{ method?: string, body?: string, timeoutMs?: number, token?: string }} [opts]
 * @returns {Promise<{ status: number, body: string }>}
 */
export function httpGet(host, port, urlPath, { method = 'GET', body, timeoutMs = 2000, token } = {}) {
  return new Promise((resolve) => {
    const req = http.request(
      {
        host,
        port,
        method,
        path: urlPath,
        agent: false,
        timeout: timeoutMs,
        headers: token ? { Authorization: `Bearer ${token}` } : {},
      },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (data += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
        res.on('error', (e) => resolve({ status: 0, body: e.message }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (e) => resolve({ status: 0, body: e.message }));
    req.end(body);
  });
}

/** Polls `fn` until it returns a truthy value or `timeoutMs` passes (then throws `what`). */
export async function waitFor(fn, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

function replicaYaml(net, { graceMs, intervalMs, timeoutMs }) {
  const members = MEMBERS.flatMap((m) => [
    `      - name: ${m}`,
    `        address: ${net.ip(m)}:${PORTS.client}`,
    `        check: http://${net.ip(m)}:${PORTS.web}/csp/mirror_status.cxw`,
  ]);
  return [
    'mirrors:',
    '  - name: db',
    `    listen: 0.0.0.0:${PORTS.client}`,
    '    members:',
    ...members,
    'health:',
    `  interval: ${intervalMs}ms`,
    ...(timeoutMs ? [`  timeout: ${timeoutMs}ms`] : []),
    'proxy:',
    '  hold_timeout: 15s',
    'admin:',
    `  listen: 0.0.0.0:${PORTS.admin}`,
    `  token: ${TOKEN}`,
    'shutdown:',
    `  grace: ${graceMs === 0 ? 0 : `${graceMs}ms`}`,
    '  drain_timeout: 5s',
    '',
  ].join('\n');
}

function haproxyCfg(net, dir) {
  return [
    'global',
    `  stats socket ${dir}/haproxy.sock mode 600 level admin`,
    '  maxconn 4000',
    'defaults',
    '  mode tcp',
    '  timeout connect 2s',
    '  timeout client 60s',
    '  timeout server 60s',
    // No redispatch, no retries elsewhere: a replica that refused would show as a refused client.
    '  retries 0',
    // A slow answer on a loaded machine is not a dead replica: fall 2, a 2 s check timeout.
    '  timeout check 2s',
    'frontend fe',
    `  bind ${net.ip('lb')}:${PORTS.client}`,
    '  default_backend replicas',
    'backend replicas',
    '  balance roundrobin',
    // What an NLB target group or a Kubernetes readiness probe does: /readyz on the admin port.
    '  option httpchk GET /readyz',
    '  http-check expect status 200',
    `  default-server inter 200ms fastinter 200ms downinter 200ms fall 2 rise 2 port ${PORTS.admin}`,
    ...REPLICAS.map((r) => `  server ${r} ${net.ip(r)}:${PORTS.client} check`),
    '',
  ].join('\n');
}

/**
 * Builds the network and starts members, replicas and the distributor; resolves once every
 * replica routes to m1 and the distributor has every replica up. `graceMs` is the replicas'
 * shutdown.grace, `intervalMs` their health.interval.
 * @param {{ repoRoot: string, graceMs?: number, intervalMs?: number, timeoutMs?: number, logDir?: string }} opts
 */
export async function startReplicaSet({ repoRoot, graceMs = 2000, intervalMs = 200, timeoutMs, logDir }) {
  const dir = logDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'rp15-replicas-'));
  const netw = await createNet();
  const bin = path.join(repoRoot, 'bin', 'mirrorlb.js');
  const procs = new Map();
  const set = {
    net: netw,
    dir,
    intervalMs,
    graceMs,
    procs,
    sim: (m, role) => {
      const p = start({
        name: `sim-${m}-${Date.now()}`,
        cmd: process.execPath,
        args: [
          bin,
          'sim',
          '--name',
          m,
          '--host',
          '0.0.0.0',
          '--superserver',
          String(PORTS.client),
          '--web',
          String(PORTS.web),
          '--control',
          String(PORTS.control),
          '--role',
          role,
        ],
        netns: netw.ns(m),
        logDir: dir,
      });
      procs.set(m, p);
      return waitFor(
        async () => (await httpGet(netw.ip(m), PORTS.web, '/csp/mirror_status.cxw')).status > 0,
        30_000,
        `sim ${m} to listen (log ${p.logFile})`,
      );
    },
    setRole: async (m, role) => {
      const r = await httpGet(netw.ip(m), PORTS.control, '/sim/role', { method: 'POST', body: role });
      if (r.status !== 200) throw new Error(`sim ${m} role ${role}: ${r.status} ${r.body}`);
    },
    /** SIGKILL the member's process: both its ports refuse from now on. */
    killSim: async (m) => {
      const p = procs.get(m);
      process.kill(p.pid, 'SIGKILL');
      await p.exited;
    },
    replica: (r) => {
      const file = path.join(dir, `${r}.yml`);
      fs.writeFileSync(file, replicaYaml(netw, { graceMs, intervalMs, timeoutMs }));
      const p = start({
        name: `${r}-${Date.now()}`,
        cmd: process.execPath,
        args: [bin, '--config', file],
        netns: netw.ns(r),
        logDir: dir,
      });
      procs.set(r, p);
      return p;
    },
    admin: (r, urlPath) => httpGet(netw.ip(r), PORTS.admin, urlPath),
    status: async (r) => {
      const a = await set.admin(r, '/status');
      return a.status === 200 ? JSON.parse(a.body) : null;
    },
    events: async (r) => {
      const a = await set.admin(r, '/events');
      return a.status === 200 ? JSON.parse(a.body) : [];
    },
    /** The distributor's view: replica -> 'UP' | 'DOWN' | ... (haproxy's stats socket). */
    distributor: async () => {
      const out = await new Promise((resolve) => {
        const s = net.connect(path.join(dir, 'haproxy.sock'));
        let data = '';
        s.on('data', (c) => (data += c));
        s.on('error', () => resolve(''));
        s.on('close', () => resolve(data));
        s.end('show stat\n');
      });
      const state = {};
      for (const line of out.split('\n')) {
        const f = line.split(',');
        if (f[0] === 'replicas' && REPLICAS.includes(f[1])) state[f[1]] = f[17];
      }
      return state;
    },
    teardown: async () => {
      for (const p of procs.values()) {
        try {
          if (p.exitCode === null) process.kill(p.pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
      await Promise.all([...procs.values()].map((p) => p.exited));
      await netw.teardown();
      // A directory of its own (the test's) goes; the bench's log directory is the bench's to keep.
      if (!logDir) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await Promise.all([set.sim('m1', 'primary'), set.sim('m2', 'backup')]);
    for (const r of REPLICAS) set.replica(r);
    fs.writeFileSync(path.join(dir, 'haproxy.cfg'), haproxyCfg(netw, dir));
    procs.set(
      'lb',
      start({
        name: 'haproxy',
        cmd: 'haproxy',
        args: ['-db', '-f', path.join(dir, 'haproxy.cfg')],
        netns: netw.ns('lb'),
        logDir: dir,
      }),
    );
    await waitReplicasOn(set, REPLICAS, 'm1', 60_000);
    await waitDistributorUp(set, REPLICAS, 30_000);
  } catch (err) {
    await set.teardown();
    throw err;
  }
  return set;
}

/** Every replica in `rs` has `member` as its primary taking clients. */
export function waitReplicasOn(set, rs, member, timeoutMs) {
  return waitFor(
    async () => {
      for (const r of rs) {
        const p = set.procs.get(r);
        if (p && p.exitCode !== null) throw new Error(`${r} exited (${p.exitCode}): ${logTail(p, 5)}`);
        const st = await set.status(r);
        const m = st?.mirrors?.[0];
        if (!m || m.primary !== member || !m.accepting) return false;
      }
      return true;
    },
    timeoutMs,
    `${rs.join(', ')} to route to ${member}`,
  );
}

export function waitDistributorUp(set, rs, timeoutMs) {
  return waitFor(
    async () => {
      const st = await set.distributor();
      return rs.every((r) => st[r] === 'UP');
    },
    timeoutMs,
    `the distributor to have ${rs.join(', ')} up`,
  );
}

/**
 * One client: connects, reads the greeting line (the member's name), closes. Resolves
 * { t0, t1, member, outcome }: outcome 'ok', 'refused', 'closed' (ended with no greeting:
 * refused behind the distributor, or a hold timeout), 'error' or 'timeout'.
 */
export function oneClient(host, port, timeoutMs = 20_000) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s = net.connect({ host, port });
    let buf = '';
    let done = false;
    /** @type {(outcome: string, member?: string | null) => void} */
    const finish = (outcome, member = null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ t0, t1: Date.now(), member, outcome });
    };
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    s.on('data', (c) => {
      buf += c.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) finish('ok', buf.slice(0, nl));
    });
    s.on('error', (/** @type {NodeJS.ErrnoException} */ e) =>
      finish(e.code === 'ECONNREFUSED' ? 'refused' : 'error'),
    );
    s.on('close', () => finish('closed'));
  });
}

/**
 * A stream of clients to host:port, one started every `everyMs` (each runs to its end in
 * parallel), until stop(); stop() resolves every record once the last client finished.
 */
export function clientStream(host, port, everyMs = 25) {
  const pending = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      pending.push(oneClient(host, port));
      await sleep(everyMs);
    }
  })();
  return {
    count: () => pending.length,
    stop: async () => {
      stopped = true;
      await loop;
      return Promise.all(pending);
    },
  };
}

/** Wall-clock ms of an event's ISO time. */
const at = (e) => Date.parse(e.time);

/**
 * For each replica, from its own /events after `since`: when it started routing to `to` (its
 * `failover` event) and when `from` first answered "not primary" to it (a role event from
 * primary/suspect to backup). The disagreement window is the spread of the switch times.
 */
export async function switchTimes(set, rs, { since, to, from }) {
  const per = {};
  for (const r of rs) {
    const ev = (await set.events(r)).filter((e) => at(e) >= since - 5);
    const sw = ev.find((e) => e.kind === 'failover' && e.to === to);
    const np = ev.find(
      (e) =>
        e.kind === 'role' && e.member === from && e.to === 'backup' && /^not_primary/.test(e.detail ?? ''),
    );
    per[r] = { switchAt: sw ? at(sw) : null, notPrimaryAt: np ? at(np) : null };
  }
  const times = Object.values(per).map((p) => p.switchAt);
  const windowMs = times.every((x) => x !== null) ? Math.max(...times) - Math.min(...times) : null;
  return { per, windowMs };
}

/** Waits until every replica in `rs` logged its switch to `to` after `since`. */
export function waitSwitched(set, rs, { since, to, from }, timeoutMs) {
  return waitFor(
    async () => {
      const s = await switchTimes(set, rs, { since, to, from });
      return s.windowMs !== null ? s : null;
    },
    timeoutMs,
    `every replica to switch to ${to}`,
  );
}

/** Clients of `records` that reached `member` although they connected after `afterMs`. */
export function routedAfter(records, member, afterMs) {
  return records.filter((c) => c.member === member && c.t0 > afterMs);
}

/**
 * One failover scenario measured across the replicas: direct client streams to every
 * replica, and one through the distributor, while `act()` changes the members; resolves
 * { windowMs, per, late: {replica: clients routed to `from` after it said not primary},
 * through: records via the distributor }.
 */
export async function measureFailover(set, { from, to, act, timeoutMs = 30_000 }) {
  const direct = Object.fromEntries(REPLICAS.map((r) => [r, clientStream(set.net.ip(r), PORTS.client, 40)]));
  const through = clientStream(set.net.ip('lb'), PORTS.client, 40);
  const since = Date.now();
  let result;
  try {
    await act();
    result = await waitSwitched(set, REPLICAS, { since, to, from }, timeoutMs);
    // Keep the streams a little past the last switch, so a late stray route would show.
    const after = Math.max(...Object.values(result.per).map((p) => p.switchAt));
    await waitFor(
      () => Date.now() > after + 4 * set.intervalMs,
      10_000,
      'the streams to run past the switch',
    );
  } finally {
    const records = {};
    for (const r of REPLICAS) records[r] = await direct[r].stop();
    result = { ...(result ?? { windowMs: null, per: {} }), direct: records, through: await through.stop() };
  }
  const late = {};
  for (const r of REPLICAS) {
    const np = result.per[r]?.notPrimaryAt;
    late[r] = np === null || np === undefined ? [] : routedAfter(result.direct[r], from, np);
  }
  return { ...result, late };
}

/** Every replica sees `member` as a backup again (after it was restarted or woken up). */
export function waitBackup(set, member, timeoutMs = 30_000) {
  return waitFor(
    async () => {
      for (const r of REPLICAS) {
        const m = (await set.status(r))?.mirrors?.[0]?.members?.find((x) => x.name === member);
        if (m?.state !== 'backup') return false;
      }
      return true;
    },
    timeoutMs,
    `every replica to see ${member} as a backup`,
  );
}

/** The failover scenarios of the bench: how the old primary goes, then the other is promoted. */
const SCENARIOS = {
  switchover: {
    label: 'switchover (old primary answers "not primary")',
    act: async (set, old, next) => {
      await set.setRole(old, 'backup');
      await set.setRole(next, 'primary');
    },
    after: async () => undefined,
  },
  killed: {
    label: 'primary killed (SIGKILL: both ports refuse)',
    act: async (set, old, next) => {
      await set.killSim(old);
      await set.setRole(next, 'primary');
    },
    after: async (set, old) => {
      await set.sim(old, 'backup');
      await waitBackup(set, old);
    },
  },
  hung: {
    label: 'primary hung (accepts, never answers)',
    act: async (set, old, next) => {
      await set.setRole(old, 'hang');
      await set.setRole(next, 'primary');
    },
    after: async (set, old) => {
      await set.setRole(old, 'backup');
      await waitBackup(set, old);
    },
  },
};

/**
 * The bench's "replicas" part: for each failover scenario, how far apart the three replicas
 * switched to the new primary (the disagreement window, from each replica's own /events),
 * and what the clients saw meanwhile. Quick: one switchover.
 */
export async function runReplicas(ctx) {
  const why = replicasUnavailable();
  if (why) return { skipped: [{ what: 'replicas', reason: why }] };
  const reps = ctx.reps ?? (ctx.quick ? 1 : 5);
  let names = ctx.quick ? ['switchover'] : Object.keys(SCENARIOS);
  if (ctx.only?.length) names = names.filter((n) => ctx.only.includes(n));
  const intervalMs = 200;
  const set = await startReplicaSet({ repoRoot: ctx.repoRoot, intervalMs, logDir: ctx.logDir });
  const runs = [];
  let primary = 'm1';
  try {
    for (let rep = 0; rep < reps; rep++) {
      for (const name of names) {
        const sc = SCENARIOS[name];
        const old = primary;
        const next = old === 'm1' ? 'm2' : 'm1';
        const t0 = Date.now();
        const m = await measureFailover(set, { from: old, to: next, act: () => sc.act(set, old, next) });
        const switches = REPLICAS.map((r) => m.per[r].switchAt);
        const through = m.through;
        runs.push({
          scenario: name,
          rep,
          window_ms: m.windowMs,
          last_switch_ms: Math.max(...switches) - t0,
          per_replica_ms: Object.fromEntries(
            REPLICAS.map((r, i) => [r, switches[i] - Math.min(...switches)]),
          ),
          late_to_old: REPLICAS.reduce((n, r) => n + m.late[r].length, 0),
          through_clients: through.length,
          through_failed: through.filter((c) => c.outcome !== 'ok').length,
        });
        primary = next;
        await sc.after(set, old);
      }
    }
  } finally {
    await set.teardown();
  }
  const summary = names.map((name) => {
    const rs = runs.filter((r) => r.scenario === name);
    const w = rs.map((r) => r.window_ms);
    return {
      scenario: name,
      label: SCENARIOS[name].label,
      runs: rs.length,
      window_ms: { median: percentile(w, 50), max: Math.max(...w) },
      last_switch_ms_median: percentile(
        rs.map((r) => r.last_switch_ms),
        50,
      ),
      late_to_old: rs.reduce((n, r) => n + r.late_to_old, 0),
      through_failed: rs.reduce((n, r) => n + r.through_failed, 0),
      through_clients: rs.reduce((n, r) => n + r.through_clients, 0),
    };
  });
  return {
    settings: {
      replicas: REPLICAS.length,
      interval_ms: intervalMs,
      distributor: 'haproxy 2.x, mode tcp, balance roundrobin, httpchk GET /readyz every 200 ms',
      reps,
    },
    summary,
    runs,
    loadavg_at_end: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

/** The report's section for the replicas part. */
export function replicasMarkdown(r) {
  if (!r) return [];
  if (r.error) return ['## Several replicas', '', `Failed: ${r.error}`, ''];
  if (!r.summary) return [];
  const s = r.settings;
  return [
    '## Several replicas',
    '',
    `${s.replicas} mirrorlb replicas, each in its own network namespace with its own checks (health.interval ${s.interval_ms} ms), behind one distributor (${s.distributor}); two simulated members. The disagreement window is the spread between the first and the last replica's switch to the new primary, each from its own /events; "to old after not primary" counts clients a replica sent to the old primary after it had answered "not primary" to that replica. ${s.reps} run(s) per scenario; load average after the part: ${r.loadavg_at_end.join(' / ')}.`,
    '',
    '| scenario | runs | disagreement window, median | max | last replica switched (median, from the event) | to old after "not primary" | clients via the distributor failed |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...r.summary.map(
      (x) =>
        `| ${x.label} | ${x.runs} | ${x.window_ms.median} ms | ${x.window_ms.max} ms | ${x.last_switch_ms_median} ms | ${x.late_to_old} | ${x.through_failed} of ${x.through_clients} |`,
    ),
    '',
  ];
}
