// Part 3: the reconnect storm. N clients hold sessions on the primary through the balancer;
// the primary dies (its sessions reset, connects refused) and 200 ms later the other member
// becomes primary; every client reconnects at once, as the pooled connections of every
// application server do after a failover, and retries after a failure like a pool would.
// Measured from the clients' side only, for mirrorlb and the tuned haproxy in the same run.
import net from 'node:net';
import os from 'node:os';
import { startPairBalancer } from './balancers.js';
import { createMemberNetns } from './netns.js';
import { run } from './proc.js';
import { SIM_PORTS, startSim } from './sims.js';
import { log, median, now, round, sleep, waitFor } from './util.js';

export function stormSettings(quick, clients) {
  return {
    reps: quick ? 1 : 3,
    clients: clients ?? (quick ? 200 : 2000),
    open_concurrency: 200,
    attempt_timeout_ms: 5000,
    retry_ms: 100,
    gap_ms: 200,
    cap_ms: quick ? 15_000 : 30_000,
    burst_window_ms: 10,
  };
}

const BALANCERS = [
  { id: 'mirrorlb', label: 'mirrorlb' },
  { id: 'haproxy-tuned', label: 'haproxy (tuned)', needs: ['haproxy'], cfg: 'haproxy-tuned.cfg' },
];

/**
 * One pooled client: connects, reads the member's greeting line, holds the session. When the
 * session ends it reconnects at once; a failed attempt (refused, reset, closed or no greeting
 * within the attempt timeout) is counted and retried after `retryMs`.
 */
class StormClient {
  constructor(pool, i) {
    this.pool = pool;
    this.i = i;
    /** @type {string | null} the member that greeted it */
    this.member = null;
    /** @type {net.Socket | null} */
    this.socket = null;
    /** @type {NodeJS.Timeout | undefined} */
    this.timer = undefined;
    this.waiting = false;
  }

  connect() {
    const p = this.pool;
    const s = net.connect({ host: '127.0.0.1', port: p.port, noDelay: true });
    this.socket = s;
    this.member = null;
    let buf = '';
    let greeted = false;
    let done = false;
    const fail = () => {
      if (done) return;
      done = true;
      clearTimeout(this.timer);
      if (this.waiting) p.waitingNow--;
      this.waiting = false;
      s.destroy();
      if (greeted) return p.lost(this);
      p.failed(this);
    };
    this.timer = setTimeout(fail, p.settings.attempt_timeout_ms);
    s.once('connect', () => {
      // Connected to the balancer, not yet greeted by a member: held (or being dialled).
      this.waiting = true;
      if (++p.waitingNow > p.peakWaiting) p.peakWaiting = p.waitingNow;
    });
    s.setEncoding('utf8');
    s.on('data', (d) => {
      if (greeted) return;
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      greeted = true;
      clearTimeout(this.timer);
      if (this.waiting) p.waitingNow--;
      this.waiting = false;
      this.member = buf.slice(0, nl).trim();
      p.greeted(this);
    });
    s.on('error', () => {});
    s.on('close', fail);
  }
}

class Pool {
  constructor(port, settings) {
    this.port = port;
    this.settings = settings;
    this.clients = [];
    this.waitingNow = 0;
    this.peakWaiting = 0;
    this.failures = 0;
    this.storming = false;
    /** @type {string | null} the member the storm moves every client to */
    this.target = null;
    this.onTarget = 0;
    /** @type {number[]} */
    this.greetsOnTarget = [];
    /** @type {number | null} when the last client reached the target */
    this.tLastOnTarget = null;
    this.reconnects = 0;
    /** @type {((c: StormClient) => void) | null} */
    this.onOpen = null;
    /** @type {((c: StormClient) => void) | null} */
    this.onOpenFailed = null;
  }

  greeted(c) {
    if (this.onOpen) this.onOpen(c);
    if (this.storming && c.member === this.target) {
      const t = now();
      this.onTarget++;
      this.greetsOnTarget.push(t);
      if (this.onTarget === this.clients.length) this.tLastOnTarget = t;
    }
  }

  lost(c) {
    if (!this.storming) return; // the bench closes them at the end
    this.reconnects++;
    c.connect();
  }

  failed(c) {
    this.failures++;
    if (this.onOpenFailed) return this.onOpenFailed(c);
    if (this.storming) setTimeout(() => this.storming && c.connect(), this.settings.retry_ms);
  }

  /** Opens every client's session, `open_concurrency` at a time; resolves with the members they reached. */
  async open(n) {
    const byMember = {};
    let next = 0;
    let pending = 0;
    await new Promise((resolve) => {
      const launch = () => {
        while (pending < this.settings.open_concurrency && next < n) {
          const c = new StormClient(this, next++);
          this.clients.push(c);
          pending++;
          c.connect();
        }
        if (pending === 0 && next >= n) resolve(undefined);
      };
      this.onOpen = (c) => {
        byMember[c.member] = (byMember[c.member] ?? 0) + 1;
        pending--;
        launch();
      };
      // A client that could not open its session before the storm takes no part in it.
      this.onOpenFailed = (c) => {
        this.clients.splice(this.clients.indexOf(c), 1);
        pending--;
        launch();
      };
      launch();
    });
    this.onOpen = null;
    this.onOpenFailed = null;
    return byMember;
  }

  close() {
    this.storming = false;
    for (const c of this.clients) {
      clearTimeout(c.timer);
      c.socket?.destroy();
    }
  }
}

/** Most greetings from the new primary within any `windowMs` (how many connects it got at once). */
export function peakBurst(times, windowMs) {
  const t = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; i < t.length; i++) {
    while (t[i] - t[j] > windowMs) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

/** TcpExt ListenOverflows + ListenDrops where the members live (their own namespace when there is one). */
async function listenDrops(netns) {
  const r = await run('cat', ['/proc/net/netstat'], { netns: netns?.ns ?? null, timeoutMs: 5000 }).catch(
    () => null,
  );
  if (!r || r.code !== 0) return null;
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('TcpExt:'));
  if (lines.length < 2) return null;
  const keys = lines[0].split(/\s+/);
  const vals = lines[1].split(/\s+/).map(Number);
  const get = (k) => vals[keys.indexOf(k)] ?? 0;
  return get('ListenOverflows') + get('ListenDrops');
}

async function stormOnce(env, st, netns) {
  const [X, Y] = env.primary === env.sims[0].name ? env.sims : [env.sims[1], env.sims[0]];
  await waitFor(
    async () => {
      const s = await env.lb.state();
      return s && s[X.name] === 'up' && s[Y.name] === 'down';
    },
    30_000,
    `${env.b.id} to route to ${X.name} only`,
    100,
  );
  const pool = new Pool(env.lb.port, st);
  try {
    const reached = await pool.open(st.clients);
    const held = reached[X.name] ?? 0;
    pool.failures = 0;
    pool.peakWaiting = 0;
    pool.target = Y.name;
    const drops0 = await listenDrops(netns);
    pool.storming = true;
    const tKill = await X.setRole('down');
    await sleep(st.gap_ms);
    const tPromote = await Y.setRole('primary');
    const deadline = tKill + st.cap_ms;
    while (pool.tLastOnTarget === null && now() < deadline) await sleep(20);
    const drops1 = await listenDrops(netns);
    const tLast = pool.tLastOnTarget;
    const all = tLast !== null;
    const r = {
      balancer: env.b.id,
      clients: st.clients,
      held_before: held,
      all_on_new: all,
      on_new_at_end: pool.onTarget,
      time_to_all_ms: all ? round(tLast - tKill, 1) : null,
      time_to_all_after_promote_ms: all ? round(tLast - tPromote, 1) : null,
      median_reconnect_ms: round(median(pool.greetsOnTarget.map((t) => t - tKill)), 1),
      failed_reconnects: pool.failures,
      peak_held: pool.peakWaiting,
      new_primary_peak_burst: peakBurst(pool.greetsOnTarget, st.burst_window_ms),
      listen_drops: drops0 === null || drops1 === null ? null : drops1 - drops0,
    };
    return r;
  } finally {
    pool.close();
    await X.setRole('backup');
    env.primary = Y.name;
    // Let the balancer see the old member as a backup again before the next run.
    await sleep(300);
  }
}

/**
 * Runs the storm part. ctx as for the other parts, plus ctx.stormClients (--storm-clients).
 * Resolves with { settings, balancers, runs, summary, skipped, loadavg_at_end }.
 */
export async function runStorm(ctx) {
  /** @type {ReturnType<typeof stormSettings> & { clients_wanted?: number, clients_note?: string, members_network?: string }} */
  const settings = {
    ...stormSettings(ctx.quick, ctx.stormClients),
    ...(ctx.reps ? { reps: ctx.reps } : {}),
  };
  const skipped = [];
  // N sessions cost the bench N descriptors, each balancer 2N, the members N.
  const fit = Math.floor((ctx.nofile - 200) / 2);
  if (settings.clients > fit) {
    settings.clients_wanted = settings.clients;
    settings.clients = fit;
    settings.clients_note = `open-files limit here is ${ctx.nofile}, so ${fit} clients`;
  }
  const balancers = BALANCERS.filter((b) => {
    const missing = (b.needs ?? []).filter((t) => !ctx.tools.available[t]);
    if (missing.length) skipped.push({ what: `storm: ${b.label}`, reason: ctx.tools.missing[missing[0]] });
    return missing.length === 0;
  });
  const netns = await createMemberNetns(balancers.length * 2);
  settings.members_network =
    netns.skipped !== undefined
      ? 'loopback: each member on its own 127.0.1.x address (listen drops counted machine-wide)'
      : `network namespace ${netns.ns}: each member on its own address behind a veth pair`;
  const addr = (i) => (netns.skipped !== undefined ? `127.0.1.${61 + i}` : netns.ips[i]);
  const envs = [];
  const runs = [];
  try {
    for (const [i, b] of balancers.entries()) {
      const sims = [];
      for (const [j, [name, role]] of [
        ['ap1a', 'primary'],
        ['ap1b', 'backup'],
      ].entries()) {
        sims.push(
          await startSim({
            repoRoot: ctx.repoRoot,
            name,
            host: addr(i * 2 + j),
            role,
            netns: netns.skipped !== undefined ? null : netns.ns,
            cpu: ctx.cpus.load,
            logDir: ctx.logDir,
            ports: SIM_PORTS,
          }),
        );
      }
      const lb = await startPairBalancer(ctx, b, sims, 'storm');
      envs.push({ b, lb, sims, primary: 'ap1a' });
    }
    for (let rep = 0; rep < settings.reps; rep++) {
      const order = rep % 2 === 0 ? envs : [...envs].reverse();
      for (const env of order) {
        const r = await stormOnce(env, settings, netns);
        r.rep = rep;
        runs.push(r);
        log(
          `  storm ${env.b.id.padEnd(13)} rep ${rep + 1}/${settings.reps}: ${r.held_before}/${r.clients} held, ` +
            `all on new primary ${r.time_to_all_ms === null ? `never (${r.on_new_at_end})` : `after ${Math.round(r.time_to_all_ms)} ms`}, ` +
            `failed ${r.failed_reconnects}, peak held ${r.peak_held}, burst ${r.new_primary_peak_burst}/${settings.burst_window_ms} ms` +
            `${r.listen_drops === null ? '' : `, listen drops ${r.listen_drops}`}`,
        );
      }
    }
  } finally {
    for (const e of envs) await e.lb.stop();
    for (const e of envs) for (const s of e.sims) await s.proc.stop();
    if (netns.skipped === undefined) await netns.teardown();
  }
  return {
    settings,
    balancers: balancers.map(({ id, label, cfg }) => ({
      id,
      label,
      config: cfg ? `bench/${cfg}` : 'defaults',
    })),
    runs,
    summary: summarizeStorm(runs, balancers),
    skipped,
    loadavg_at_end: os.loadavg().map((x) => round(x, 2)),
  };
}

export function summarizeStorm(runs, balancers) {
  const out = balancers.map((b) => {
    const rs = runs.filter((r) => r.balancer === b.id);
    const m = (k) => median(rs.map((r) => r[k]));
    return {
      balancer: b.id,
      label: b.label,
      runs: rs.length,
      incomplete_runs: rs.filter((r) => !r.all_on_new).length,
      time_to_all_ms: m('time_to_all_ms'),
      median_reconnect_ms: m('median_reconnect_ms'),
      failed_reconnects: m('failed_reconnects'),
      peak_held: m('peak_held'),
      new_primary_peak_burst: m('new_primary_peak_burst'),
      listen_drops: m('listen_drops'),
    };
  });
  const h = out.find((x) => x.balancer === 'haproxy-tuned');
  for (const row of out) {
    if (row.balancer === 'mirrorlb' && h?.time_to_all_ms && row.time_to_all_ms !== null)
      row.time_ratio = round(row.time_to_all_ms / h.time_to_all_ms, 3);
  }
  return out;
}

const ms = (x) => (x === null || x === undefined ? '–' : `${Math.round(x).toLocaleString('en-US')} ms`);
const num = (x) => (x === null || x === undefined ? '–' : Math.round(x).toLocaleString('en-US'));

/** The storm section of the report (markdown lines). */
export function stormMarkdown(s) {
  const st = s.settings;
  const out = ['## Reconnect storm', ''];
  out.push(
    `${num(st.clients)} clients hold a session each on the primary through the balancer (${st.members_network}${st.clients_note ? `; ${st.clients_note}` : ''}). The primary is killed (its sessions reset, connects refused) and ${st.gap_ms} ms later the other member is set primary; every client reconnects at once and, after a failed attempt (refused, reset, closed before the greeting or none within ${st.attempt_timeout_ms / 1000} s), retries ${st.retry_ms} ms later. "All on new primary" runs from the kill to the last client greeted by the new primary; "held" counts clients connected to the balancer and not yet greeted; the burst is the most greetings from the new primary within ${st.burst_window_ms} ms; listen drops are the members' TcpExt ListenOverflows + ListenDrops during the storm. Medians of ${st.reps} run(s), balancers alternating.`,
    '',
    '| balancer | all on new primary | mirrorlb ÷ this | median reconnect | failed reconnects | peak held | new primary burst | listen drops | runs |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  const m = s.summary.find((r) => r.balancer === 'mirrorlb');
  for (const r of s.summary) {
    const ratio =
      r.balancer !== 'mirrorlb' && m?.time_to_all_ms && r.time_to_all_ms
        ? `${(m.time_to_all_ms / r.time_to_all_ms).toFixed(2)}x`
        : '';
    const all =
      r.time_to_all_ms === null
        ? 'never'
        : `${ms(r.time_to_all_ms)}${r.incomplete_runs ? ` (${r.incomplete_runs} runs never)` : ''}`;
    out.push(
      `| ${r.label} | ${all} | ${ratio} | ${ms(r.median_reconnect_ms)} | ${num(r.failed_reconnects)} | ${num(r.peak_held)} | ${num(r.new_primary_peak_burst)} | ${num(r.listen_drops)} | ${r.runs} |`,
    );
  }
  out.push(
    '',
    'Configs: mirrorlb with its defaults; haproxy tuned as in the failover part (`bench/haproxy-tuned.cfg`).',
    '',
  );
  return out;
}
