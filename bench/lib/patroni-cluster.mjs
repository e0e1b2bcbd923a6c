// A real PostgreSQL 15 + Patroni 3.0.2 cluster for the end-to-end test and the bench: one
// etcd 3.4 node, two Patroni nodes (or more: a leader and its replicas), mirrorlb (bin/mirrorlb.js from this tree) in front.
// Plain JavaScript so that both `npm test` (TypeScript through tap) and `npm run bench`
// (plain node) can use it.
//
// Why etcd's v2 API (`etcd:` in Patroni's config, etcd started with --enable-v2) and not
// `etcd3:`: Patroni 3.0.2's etcd3 client writes an expired leader key unconditionally
// (fixed upstream in 3.0.3), so an old leader that resumes after a SIGSTOP can take the
// lock back from the node that was promoted meanwhile, and the new leader's writes are lost
// whatever a balancer does. The v2 client updates the key with prevValue, which fails once
// another node holds it.
//
// Everything runs as root except PostgreSQL and Patroni, which run as `postgres` with their
// data in a temp dir `/tmp/<prefix>-XXXXXX` owned by postgres. Every process is started in
// its own process group; `destroy()` kills each group (SIGCONT first, for a stopped one) and
// removes the dir. A detached watchdog (sh) does the same if the process that started the
// cluster dies without calling `destroy()` (a test killed at its timeout, a SIGKILL).
//
// With `restapiTls`, Patroni's REST API is served over HTTPS (its `restapi.certfile`,
// `keyfile`, `cafile`, `verify_client`), and every REST call of the harness (readiness
// waits, `rest()`, `pollRest`) goes over HTTPS verified against `cafile`, presenting
// `certfile` as its client certificate: what Patroni itself does for its calls to other
// nodes and for `patronictl` when `restapi.certfile` is set (patroni/request.py), so that
// certificate needs both serverAuth and clientAuth uses.
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { exitOf } from './proc.js';

/** @typedef {import('node:child_process').ChildProcess & { exitedP: Promise<import('./proc.js').Exit> }} LoggedChild */

export const PG_BIN = '/usr/lib/postgresql/15/bin';
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const MIRRORLB_BIN = path.join(ROOT, 'bin', 'mirrorlb.js');
export const EXAMPLE = path.join(ROOT, 'examples', 'patroni.yml');
/** Patroni's DCS timing the docs are derived from (bootstrap.dcs). */
export const TTL_S = 10;
export const LOOP_WAIT_S = 1;
export const RETRY_TIMEOUT_S = 4; // Patroni wants loop_wait + 2 * retry_timeout <= ttl

const PYTHON = '/usr/bin/python3'; // Patroni's interpreter (not a pyenv shim on PATH)

function execOut(cmd, args, opts = {}) {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 30_000, ...opts }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** Why a real cluster cannot run here (one line), or null. */
export async function patroniMissing() {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'needs root';
  for (const f of [path.join(PG_BIN, 'postgres'), path.join(PG_BIN, 'initdb')])
    if (!fs.existsSync(f)) return `${f} missing (apt-get install postgresql-15)`;
  for (const [bin, pkg] of [
    ['patroni', 'patroni'],
    ['patronictl', 'patroni'],
    ['etcd', 'etcd-server'],
  ]) {
    const r = await execOut('sh', ['-c', `command -v ${bin}`]);
    if (r.code !== 0) return `${bin} missing (apt-get install ${pkg})`;
  }
  const py = await execOut(PYTHON, ['-c', 'import psycopg2, etcd']);
  if (py.code !== 0)
    return 'python3-psycopg2 / python3-etcd missing (apt-get install python3-psycopg2 patroni)';
  const id = await execOut('id', ['-u', 'postgres']);
  if (id.code !== 0) return 'no postgres user (apt-get install postgresql-15)';
  return null;
}

/**
 * One GET with a hard deadline; never rejects (status 0 on any failure). An https URL is
 * verified against `tls.ca` and presents `tls.cert`/`tls.key` (PEM text) when given.
 * @param {string} url
 * @param {number} [timeoutMs]
 * @param {{ ca?: string, cert?: string, key?: string }} [tls]
 */
export function httpGet(url, timeoutMs = 500, tls = {}) {
  return new Promise((resolve) => {
    const get = url.startsWith('https:') ? https.get : http.get;
    const req = get(url, { timeout: timeoutMs, ...tls }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', (e) => resolve({ status: 0, body: String(e.message) }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ status: 0, body: String(e.message) }));
  });
}

/** The `"role"` of a Patroni status body, or null. */
export function roleOf(body) {
  try {
    return JSON.parse(body).role ?? null;
  } catch {
    return null;
  }
}

/** Polls `cond` (async, truthy = done) every `everyMs` until `timeoutMs`; returns its value or throws. */
export async function waitFor(what, cond, timeoutMs, everyMs = 50) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await cond();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`no ${what} within ${timeoutMs} ms${last instanceof Error ? `: ${last.message}` : ''}`);
    await sleep(everyMs);
  }
}

// sh is dash on Debian: its kill takes no `--`, and `kill -SIG -PGID` signals a group.
const WATCHDOG = `
parent=$1; dir=$2
while kill -0 "$parent" 2>/dev/null && [ ! -e "$dir/.done" ]; do sleep 1; done
[ -e "$dir/.done" ] && exit 0
for f in "$dir"/*/data/postmaster.pid; do
  [ -f "$f" ] || continue
  pm=$(head -1 "$f"); g=$(ps -o pgid= -p "$pm" 2>/dev/null | tr -d ' ')
  [ -n "$g" ] && kill -CONT "-$g" 2>/dev/null; [ -n "$g" ] && kill -KILL "-$g" 2>/dev/null
done
if [ -f "$dir/pgids" ]; then
  for g in $(cat "$dir/pgids"); do kill -CONT "-$g" 2>/dev/null; kill -KILL "-$g" 2>/dev/null; done
fi
sleep 1; rm -rf "$dir"
`;

function pgid(pid) {
  try {
    // /proc/PID/stat: "pid (comm) state ppid pgrp ..."; comm may hold spaces, so split after ')'.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
  } catch {
    return null;
  }
}

function signalGroup(g, sig) {
  try {
    process.kill(-g, sig);
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts etcd and `nodes` Patroni nodes (default 2); resolves once node 1 is the leader (its
 * REST says `"role": "master"`) and every other node streams from it. Node i listens on
 * base + 10 i + 1 (PostgreSQL) and base + 10 i + 2 (REST): `base` is the first of
 * 10 (nodes + 1) fixed ports (all below 32768, inside the caller's range). `restapiTls`: REST
 * over HTTPS (see the top of this file); its files are copied into the cluster's dir, readable by postgres only.
 * @param {{ prefix: string, base: number, nodes?: number, log?: (msg: string) => void, restapiTls?: RestapiTls }} opts
 */
export async function startCluster({ prefix, base, nodes: count = 2, log = () => undefined, restapiTls }) {
  if (!Number.isInteger(count) || count < 2) throw new Error(`nodes must be 2 or more, not ${count}`);
  const dir = fs.mkdtempSync(path.join('/tmp', `${prefix}-`));
  const pgUser = await execOut('id', ['-u', 'postgres']);
  const pgGroup = await execOut('id', ['-g', 'postgres']);
  const uid = Number(pgUser.stdout.trim());
  const gid = Number(pgGroup.stdout.trim());
  fs.chownSync(dir, uid, gid);
  fs.chmodSync(dir, 0o755);
  const groups = new Set();
  const remember = (pid) => {
    if (!pid) return;
    groups.add(pid);
    fs.writeFileSync(path.join(dir, 'pgids'), `${[...groups].join('\n')}\n`);
  };
  const watchdog = spawn('sh', ['-c', WATCHDOG, 'watchdog', String(process.pid), dir], {
    detached: true,
    stdio: 'ignore',
  });
  watchdog.unref();

  const scope = `${prefix}-${process.pid}`;
  const restapi = restapiTls ? copyRestapiTls(restapiTls, path.join(dir, 'tls'), uid, gid) : null;
  const restScheme = restapi ? 'https' : 'http';
  const restClientTls = restapiTls
    ? {
        ca: fs.readFileSync(restapiTls.cafile, 'utf8'),
        cert: fs.readFileSync(restapiTls.certfile, 'utf8'),
        key: fs.readFileSync(restapiTls.keyfile, 'utf8'),
      }
    : {};
  const etcdClient = base + 1;
  const etcdPeer = base + 2;
  /** @type {(name: string, cmd: string, args: string[], opts?: import('node:child_process').SpawnOptions) => LoggedChild} */
  const spawnLogged = (name, cmd, args, opts = {}) => {
    const fd = fs.openSync(path.join(dir, `${name}.log`), 'a');
    const child = spawn(cmd, args, { detached: true, stdio: ['ignore', fd, fd], ...opts });
    fs.closeSync(fd);
    remember(child.pid);
    return Object.assign(child, { exitedP: exitOf(child) });
  };

  const etcdDir = path.join(dir, 'etcd');
  const etcd = spawnLogged('etcd', 'etcd', [
    `--name=${prefix}`,
    `--data-dir=${etcdDir}`,
    `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
    `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
    `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
    `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
    `--initial-cluster=${prefix}=http://127.0.0.1:${etcdPeer}`,
    `--initial-cluster-token=${scope}`,
    '--enable-v2=true',
    '--log-level=warn',
  ]);

  const nodes = Array.from({ length: count }, (_, k) => k + 1).map((i) => ({
    name: `pg${i}`,
    pgPort: base + 10 * i + 1,
    restPort: base + 10 * i + 2,
    home: path.join(dir, `n${i}`),
    dataDir: path.join(dir, `n${i}`, 'data'),
    configFile: path.join(dir, `n${i}`, 'patroni.yml'),
    patroni: null,
  }));
  for (const n of nodes) {
    fs.mkdirSync(n.home, { mode: 0o700 });
    fs.chownSync(n.home, uid, gid);
    fs.writeFileSync(n.configFile, patroniConfig({ scope, prefix, node: n, etcdClient, restapi }));
    fs.chownSync(n.configFile, uid, gid);
  }

  const startNode = (n) => {
    n.patroni = spawnLogged(n.name, 'patroni', [n.configFile], {
      uid,
      gid,
      cwd: n.home,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: n.home, LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8' },
    });
    return n.patroni;
  };

  const restUrl = (n, p = '/primary') => `${restScheme}://127.0.0.1:${n.restPort}${p}`;
  const rest = async (n, p = '/primary', timeoutMs = 500) => {
    const r = await httpGet(restUrl(n, p), timeoutMs, restClientTls);
    return { ...r, role: roleOf(r.body) };
  };
  const postmasterPid = (n) => {
    try {
      return Number(fs.readFileSync(path.join(n.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    } catch {
      return null;
    }
  };
  /** @type {(n: { pgPort: number }, text: string, params?: unknown[]) => Promise<any[]>} */
  const sql = async (n, text, params = []) => {
    const c = new pg.Client({
      host: '127.0.0.1',
      port: n.pgPort,
      user: 'postgres',
      database: 'postgres',
      connectionTimeoutMillis: 3000,
    });
    c.on('error', () => undefined);
    await c.connect();
    try {
      return (await c.query(text, params)).rows;
    } finally {
      await c.end().catch(() => undefined);
    }
  };
  const tail = (name, chars = 3000) => {
    try {
      return fs.readFileSync(path.join(dir, `${name}.log`), 'utf8').slice(-chars);
    } catch {
      return '';
    }
  };

  let destroyed = null;
  const cluster = {
    dir,
    scope,
    nodes,
    etcdUrl: `http://127.0.0.1:${etcdClient}`,
    restUrl,
    rest,
    sql,
    postmasterPid,
    tail,
    /** The node whose REST says 200 on /primary and `"role": "master"` (writable), or null. */
    async writableLeader() {
      for (const n of nodes) {
        const r = await rest(n);
        if (r.status === 200 && (r.role === 'master' || r.role === 'primary')) return n;
      }
      return null;
    },
    /** Waits until `n` is a replica streaming from the leader (pg_stat_replication on the leader). */
    async waitStreaming(n, leader, timeoutMs = 60_000) {
      await waitFor(
        `${n.name} streaming from ${leader.name}`,
        async () => {
          const r = await rest(n, '/replica');
          if (r.status !== 200) return false;
          // Patroni names each replica's walsender after the node (application_name).
          const rows = await sql(
            leader,
            "select count(*)::int n from pg_stat_replication where state = 'streaming' and application_name = $1",
            [n.name],
          );
          return rows[0].n >= 1;
        },
        timeoutMs,
        200,
      );
    },
    startNode,
    /**
     * SIGKILL of the node's Patroni and postmaster (as the issue's fault: a crash of both);
     * its backends exit on their own when they see the postmaster gone. Resolves once every
     * process of the node is gone.
     */
    async kill(n) {
      const pm = postmasterPid(n);
      const g = pm ? pgid(pm) : null;
      process.kill(n.patroni.pid, 'SIGKILL');
      if (pm) process.kill(pm, 'SIGKILL');
      await n.patroni.exitedP;
      if (g) await waitFor(`${n.name}'s backends gone`, async () => !signalGroup(g, 0), 10_000);
    },
    /** SIGSTOP of the node's Patroni and postmaster only: backends, walsender, walwriter keep running. */
    stop(n) {
      const pm = postmasterPid(n);
      process.kill(n.patroni.pid, 'SIGSTOP');
      if (pm) process.kill(pm, 'SIGSTOP');
      n.stoppedPostmaster = pm;
    },
    cont(n) {
      if (n.stoppedPostmaster) process.kill(n.stoppedPostmaster, 'SIGCONT');
      process.kill(n.patroni.pid, 'SIGCONT');
      n.stoppedPostmaster = null;
    },
    /** Restarts a killed node's Patroni from an empty data dir (it clones the leader again). */
    async rejoin(n, leader) {
      fs.rmSync(n.dataDir, { recursive: true, force: true });
      startNode(n);
      await cluster.waitStreaming(n, leader);
    },
    /** Restarts a killed node's Patroni on its own data dir (crash recovery, then it follows the leader). */
    async restart(n, leader) {
      startNode(n);
      await cluster.waitStreaming(n, leader);
    },
    /** `patronictl ARGS` as postgres with `n`'s config; resolves with its exit and output. */
    patronictl(n, args) {
      return execOut('patronictl', ['-c', n.configFile, ...args], {
        uid,
        gid,
        env: { PATH: process.env.PATH, HOME: n.home, LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8' },
      });
    },
    /** `patronictl switchover` from `from` to `to`; resolves with its exit and output. */
    switchover(from, to) {
      return cluster.patronictl(from, [
        'switchover',
        scope,
        '--leader',
        from.name,
        '--candidate',
        to.name,
        '--force',
      ]);
    },
    /**
     * `patronictl pause --wait`: maintenance mode. Patroni 3.0.2 resumes a paused WAL replay
     * on PostgreSQL 14+ within a loop unless the cluster is paused, so a replica is held
     * behind only while this holds.
     */
    pause() {
      return cluster.patronictl(nodes[0], ['pause', scope, '--wait']);
    },
    resume() {
      return cluster.patronictl(nodes[0], ['resume', scope, '--wait']);
    },
    /** Starts `node bin/mirrorlb.js --config FILE` in its own group (killed by destroy()). */
    startMirrorlb(configFile, env, name = 'mirrorlb') {
      const clean = {};
      for (const [k, v] of Object.entries(process.env)) {
        // Not tap's instrumentation: the balancer runs at its real speed.
        if (
          k === 'NODE_OPTIONS' ||
          k === 'NODE_V8_COVERAGE' ||
          k.startsWith('_TAPJS_') ||
          k.startsWith('TAP_')
        )
          continue;
        clean[k] = v;
      }
      return spawnLogged(name, process.execPath, [MIRRORLB_BIN, '--config', configFile], {
        env: { ...clean, ...env },
      });
    },
    spawnLogged,
    remember,
    /** Kills every process group this cluster started and removes its dir. Idempotent. */
    destroy() {
      destroyed ??= (async () => {
        for (const n of nodes) {
          const pm = postmasterPid(n);
          const g = pm ? pgid(pm) : null;
          if (g) {
            signalGroup(g, 'SIGCONT');
            signalGroup(g, 'SIGKILL');
          }
        }
        for (const g of groups) {
          signalGroup(g, 'SIGCONT');
          signalGroup(g, 'SIGKILL');
        }
        await sleep(300);
        // Backends that outlived a killed postmaster exit on their own; make sure.
        for (const n of nodes) {
          const pm = postmasterPid(n);
          const g = pm ? pgid(pm) : null;
          if (g) signalGroup(g, 'SIGKILL');
        }
        fs.writeFileSync(path.join(dir, '.done'), '');
        fs.rmSync(dir, { recursive: true, force: true });
        try {
          if (watchdog.pid !== undefined) process.kill(watchdog.pid, 'SIGKILL');
        } catch {
          // gone
        }
      })();
      return destroyed;
    },
  };

  try {
    await waitFor(
      'etcd',
      async () => {
        if (etcd.exitCode !== null) throw new Error(`etcd exited: ${tail('etcd')}`);
        return (await httpGet(`${cluster.etcdUrl}/v2/keys/`)).status === 200;
      },
      20_000,
    );
    log('etcd up');
    const pg1 = startNode(nodes[0]);
    await waitFor(
      'pg1 as writable leader',
      async () => {
        if (pg1.exitCode !== null) throw new Error(`patroni pg1 exited: ${tail('pg1')}`);
        const r = await rest(nodes[0]);
        return r.status === 200 && r.role === 'master';
      },
      90_000,
      200,
    );
    log('pg1 leader');
    // One at a time: each clones the leader with pg_basebackup (a 2-core machine).
    for (const n of nodes.slice(1)) {
      startNode(n);
      await cluster.waitStreaming(n, nodes[0], 90_000);
      log(`${n.name} streaming`);
    }
  } catch (err) {
    const logs = ['etcd', ...nodes.map((n) => n.name)].map((n) => `--- ${n}\n${tail(n)}`).join('\n');
    await cluster.destroy();
    throw new Error(`${/** @type {Error} */ (err).message}\n${logs}`);
  }
  return cluster;
}

/**
 * @typedef {{ certfile: string, keyfile: string, cafile: string, verify_client?: 'none' | 'optional' | 'required' }} RestapiTls
 */

/** Copies the REST API's TLS files into `into` (owned by postgres) and returns restapi's TLS keys. */
function copyRestapiTls(tls, into, uid, gid) {
  fs.mkdirSync(into, { mode: 0o700 });
  fs.chownSync(into, uid, gid);
  /** @type {Record<string, string>} */
  const keys = {};
  for (const k of /** @type {const} */ (['certfile', 'keyfile', 'cafile'])) {
    const to = path.join(into, `${k}.pem`);
    fs.copyFileSync(tls[k], to);
    fs.chownSync(to, uid, gid);
    fs.chmodSync(to, 0o600);
    keys[k] = to;
  }
  if (tls.verify_client) keys.verify_client = tls.verify_client;
  return keys;
}

function patroniConfig({ scope, prefix, node, etcdClient, restapi }) {
  // JSON is YAML: no quoting surprises.
  const hba = [
    'local all all trust',
    'host all all 127.0.0.1/32 trust',
    'host replication replicator 127.0.0.1/32 trust',
  ];
  return `${JSON.stringify(
    {
      scope,
      namespace: `/${prefix}/`,
      name: node.name,
      log: { level: 'INFO' },
      restapi: {
        listen: `127.0.0.1:${node.restPort}`,
        connect_address: `127.0.0.1:${node.restPort}`,
        ...restapi,
      },
      // v2 API, not etcd3: see the top of this file.
      etcd: { host: `127.0.0.1:${etcdClient}`, protocol: 'http' },
      bootstrap: {
        dcs: {
          ttl: TTL_S,
          loop_wait: LOOP_WAIT_S,
          retry_timeout: RETRY_TIMEOUT_S,
          maximum_lag_on_failover: 1048576,
          synchronous_mode: false,
          postgresql: {
            use_pg_rewind: true,
            use_slots: true,
            parameters: {
              wal_level: 'replica',
              hot_standby: 'on',
              wal_log_hints: 'on',
              max_wal_senders: 5,
              max_replication_slots: 5,
              max_connections: 100,
            },
          },
        },
        initdb: [{ encoding: 'UTF8' }, 'data-checksums'],
      },
      postgresql: {
        listen: `127.0.0.1:${node.pgPort}`,
        connect_address: `127.0.0.1:${node.pgPort}`,
        data_dir: node.dataDir,
        bin_dir: PG_BIN,
        pgpass: path.join(node.home, 'pgpass'),
        authentication: {
          superuser: { username: 'postgres', password: prefix },
          replication: { username: 'replicator', password: prefix },
        },
        parameters: {
          unix_socket_directories: node.home,
          shared_buffers: '32MB',
          fsync: 'on',
        },
        pg_hba: hba,
      },
      tags: { nofailover: false, noloadbalance: false, clonefrom: false, nosync: false },
    },
    null,
    2,
  )}\n`;
}

/**
 * Polls each node's /primary every `everyMs` and keeps every change of (status, role,
 * state): when a node first said 200 (it holds the leader lock), when its body first said
 * it accepts writes, when it stopped doing so. `stop()` ends the polling.
 */
export function pollRest(cluster, nodes, everyMs = 20) {
  const changes = [];
  const last = new Map();
  let on = true;
  const loops = nodes.map(async (n) => {
    while (on) {
      const r = await cluster.rest(n, '/primary', 300);
      let state = null;
      try {
        state = JSON.parse(r.body).state ?? null;
      } catch {
        // not JSON: no answer
      }
      const role = roleOf(r.body);
      const key = `${r.status} ${role} ${state}`;
      if (last.get(n.name) !== key) {
        last.set(n.name, key);
        changes.push({ at: Date.now(), node: n.name, status: r.status, role, state });
      }
      await sleep(everyMs);
    }
  });
  const writable = (c) =>
    c.status === 200 && (c.role === 'master' || c.role === 'primary') && c.state === 'running';
  return {
    changes,
    /** First time `n` answered 200 with a body saying it accepts writes. */
    writableAt: (n) => changes.find((c) => c.node === n.name && writable(c))?.at ?? null,
    /** First 200 of `n` (it starts as a replica, so: when it took the lock). */
    status200At: (n) => changes.find((c) => c.node === n.name && c.status === 200)?.at ?? null,
    /** First time after `since` that `n` stopped being a writable primary. */
    lostAt: (n, since) => changes.find((c) => c.node === n.name && c.at >= since && !writable(c))?.at ?? null,
    describe: (t0) =>
      changes.map((c) => `${c.at - t0} ${c.node} ${c.status} ${c.role}/${c.state}`).join('; '),
    stop: () => {
      on = false;
      return Promise.all(loops);
    },
  };
}
