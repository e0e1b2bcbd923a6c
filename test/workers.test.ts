/**
 * Several data-plane loops (workers: 2), run as users run it: bin/mirrorlb.js on a Node with
 * reusePort (22.12+; the machine's Node 20 has none), the official binary kept by
 * scripts/node-versions.mjs. Backends are simulated IRIS members (greeting with their name).
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { BIN } from './helpers/cli-proc.js';
import { parseExposition, STRICT } from './helpers/real-run.js';
import { httpRequest, withSim } from './helpers/sim.js';
import type { SimMember } from '../src/sim/member.js';
import { hasReusePort } from '../src/workers/support.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** A Node with reusePort: this one (the version matrix), else the cached (or freshly packed) official Node 24. */
function reusePortNode(): string | null {
  if (hasReusePort()) return process.execPath;
  try {
    const out = execFileSync(process.execPath, [join(ROOT, 'scripts/node-versions.mjs'), '24'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 300_000,
    });
    return out.trim().split(' ')[2] ?? null;
  } catch {
    return null;
  }
}

const NODE = reusePortNode();
if (NODE === null) {
  if (STRICT) t.fail('no Node with reusePort: scripts/node-versions.mjs 24 failed');
  else t.comment('skip: no Node with reusePort (scripts/node-versions.mjs 24 failed)');
}

async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const p = (s.address() as net.AddressInfo).port;
  s.close();
  return p;
}

interface Run {
  lines: Array<Record<string, unknown>>;
  port: number;
  admin: number;
  exited: Promise<number | null>;
  kill(sig: NodeJS.Signals): void;
  /** The first record with this message at or after index `from` of `lines`. */
  waitLog(msg: string, deadlineMs?: number, from?: number): Promise<Record<string, unknown>>;
  /** Writes the config with these mirrors and sends SIGHUP. */
  reload(mirrors: Array<{ name: string; port: number; members: SimMember[] }>): void;
}

async function runDaemon(
  tt: Tap.Test,
  members: SimMember[],
  extra: string,
  env: Record<string, string> = {},
): Promise<Run> {
  const port = await freePort();
  const admin = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'mlb-workers-'));
  const file = join(dir, 'm.yml');
  const yaml = (mirrors: Array<{ name: string; port: number; members: SimMember[] }>): string =>
    [
      'workers: 2',
      'mirrors:',
      ...mirrors.flatMap((x) => [
        `  - name: ${x.name}`,
        `    listen: 127.0.0.1:${x.port}`,
        '    members:',
        ...x.members.flatMap((m) => [
          `      - name: ${m.name}`,
          `        address: 127.0.0.1:${m.superserverPort}`,
          `        check: http://127.0.0.1:${m.webPort}/csp/mirror_status.cxw`,
        ]),
      ]),
      'health:',
      '  interval: 200ms',
      '  fast_interval: 100ms',
      '  rise: 1',
      '  fall: 1',
      `admin:\n  listen: 127.0.0.1:${admin}`,
      extra,
    ].join('\n');
  writeFileSync(file, yaml([{ name: 'm', port, members }]));
  const child = spawn(NODE!, [BIN, '--config', file], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<() => void> = [];
  let buf = '';
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  child.stdout!.on('data', (c: Buffer) => {
    buf += c.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        lines.push({ msg: line });
      }
    }
    for (const w of waiters.splice(0)) w();
  });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  tt.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const waitLog = async (msg: string, deadlineMs = 20_000, from = 0): Promise<Record<string, unknown>> => {
    const end = Date.now() + deadlineMs;
    for (;;) {
      const hit = lines.slice(from).find((l) => l.msg === msg);
      if (hit) return hit;
      if (Date.now() > end || child.exitCode !== null)
        throw new Error(
          `no log "${msg}" (exit ${child.exitCode}); stderr: ${err}; logs: ${JSON.stringify(lines.slice(-8))}`,
        );
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 200).unref();
      });
    }
  };
  await waitLog('primary found');
  const reload = (mirrors: Array<{ name: string; port: number; members: SimMember[] }>): void => {
    writeFileSync(file, yaml(mirrors));
    child.kill('SIGHUP');
  };
  return { lines, port, admin, exited, kill: (s) => child.kill(s), waitLog, reload };
}

/** Connects and reads the member's greeting (its name); null: closed without one. */
function greeting(port: number, keep = false): Promise<{ name: string | null; socket: net.Socket }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let data = '';
    s.on('data', (c: Buffer) => {
      data += c.toString();
      if (data.includes('\n')) {
        if (!keep) s.destroy();
        resolve({ name: data.trim(), socket: s });
      }
    });
    s.on('error', () => undefined);
    s.on('close', () => resolve({ name: null, socket: s }));
  });
}

async function metric(admin: number, name: string): Promise<Map<string, number>> {
  const r = await httpRequest(admin, '/metrics');
  const out = new Map<string, number>();
  for (const s of parseExposition(r.body)) if (s.name === name) out.set(JSON.stringify(s.labels), s.value);
  return out;
}

async function until(what: string, ok: () => Promise<boolean> | boolean, deadlineMs = 15_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

t.test(
  'two loops: spread, failover on both, process-wide max_connections, SIGTERM drain',
  { skip: NODE === null },
  async (t) => {
    const a = await withSim(t, { name: 'A', role: 'primary' });
    const b = await withSim(t, { name: 'B', role: 'backup' });
    const d = await runDaemon(
      t,
      [a, b],
      'proxy:\n  max_connections: 40\nshutdown:\n  grace: 1ms\n  drain_timeout: 10s',
    );
    t.ok(d.lines.some((l) => l.msg === 'data-plane loops started (worker threads, reusePort listeners)'));

    // 200 connections, 20 at a time: all to the primary, and each loop gets some.
    const names: (string | null)[] = [];
    for (let i = 0; i < 10; i++)
      names.push(
        ...(await Promise.all([...Array(20).keys()].map(() => greeting(d.port)))).map((g) => g.name),
      );
    t.equal(names.filter((n) => n === 'A').length, 200, 'every client reaches the primary');
    const perLoop = await metric(d.admin, 'mirrorlb_loop_connections_total');
    const counts = [...perLoop.values()];
    t.equal(counts.length, 2, 'a series per loop');
    t.equal(
      counts.reduce((x, y) => x + y, 0),
      200,
      'every connection counted once',
    );
    t.ok(
      counts.every((n) => n > 0),
      `each loop received some: ${counts.join(' / ')}`,
    );
    const total = await metric(d.admin, 'mirrorlb_connections_total');
    t.equal(total.get(JSON.stringify({ mirror: 'm', member: 'A' })), 200, 'metrics add the loops up');

    // max_connections 40 holds for the process: 50 held open, 40 linked, 10 refused.
    const open = await Promise.all([...Array(50).keys()].map(() => greeting(d.port, true)));
    t.equal(open.filter((g) => g.name === 'A').length, 40, 'at most max_connections over both loops');
    t.equal(open.filter((g) => g.name === null).length, 10, 'the rest refused');
    const st = JSON.parse((await httpRequest(d.admin, '/status')).body) as {
      mirrors: Array<{ sessions: number }>;
      loops: number;
      perLoop: Array<{ open: number; accepted: number }>;
    };
    t.equal(st.mirrors[0]!.sessions, 40, '/status counts the sessions of every loop');
    t.equal(st.loops, 2, '/status: the loop count');
    t.equal(st.perLoop.length, 2, '/status: one entry per loop');
    t.equal(
      st.perLoop.reduce((n, l) => n + l.open, 0),
      40,
      'connections open per loop add up to the sessions',
    );
    t.equal(
      st.perLoop.reduce((n, l) => n + l.accepted, 0),
      240,
      'and every connection admitted counted once (the 10 refused are not)',
    );
    const page = await new Promise<string>((resolve, reject) =>
      execFile(NODE!, [BIN, 'status', '--admin', `127.0.0.1:${d.admin}`], (e, out) =>
        e ? reject(e) : resolve(out),
      ),
    );
    t.match(
      page,
      /\n2 data-plane loops · open \d+ \/ \d+ · accepted \d+ \/ \d+\n/,
      '`mirrorlb status` shows them',
    );

    // Failover: every session of the old primary is cut, on both loops; new clients only to B.
    const kept = open.filter((g) => g.name === 'A').map((g) => g.socket);
    const closed = Promise.all(kept.map((s) => (s.destroyed ? null : once(s, 'close'))));
    await a.setRole('backup');
    await b.setRole('primary');
    await closed;
    t.pass('all 40 sessions on the old primary cut');
    await d.waitLog('failover');
    const events = JSON.parse((await httpRequest(d.admin, '/events')).body) as Array<{
      kind: string;
      cutSessions: number;
    }>;
    // Whichever step cut them (A's demotion, or B's promotion when B's probe came first), its
    // role event carries the sessions every loop cut (the start-up steps cut none).
    const roles = events.filter((e) => e.kind === 'role');
    t.equal(
      roles.reduce((n, e) => n + e.cutSessions, 0),
      40,
      "the switchover's events count the sessions every loop cut",
    );
    const acted = d.lines.filter((l) => l.msg === 'decision acted on by every loop' && l.cut === 40);
    t.equal(acted.length, 1, 'the loops acted on the cut once, lag logged');
    t.type(acted[0]!.lag_ms, 'number');
    const after = await Promise.all([...Array(40).keys()].map(() => greeting(d.port)));
    t.same(
      new Set(after.map((g) => g.name)),
      new Set(['B']),
      'new clients from every loop go to the new primary',
    );

    // SIGTERM: sessions drain on both loops, then the process exits 0. (First the 40 closed
    // above leave the count, or max_connections would refuse some of these 6.)
    await until('the closed connections counted out', async () => {
      const now = JSON.parse((await httpRequest(d.admin, '/status')).body) as typeof st;
      return now.perLoop.every((l) => l.open === 0);
    });
    const s1 = await Promise.all([...Array(6).keys()].map(() => greeting(d.port, true)));
    t.ok(
      s1.every((g) => g.name === 'B'),
      'six sessions on B',
    );
    d.kill('SIGTERM');
    await d.waitLog('stopping: listeners closed, draining');
    for (const g of s1) g.socket.end();
    t.equal(await d.exited, 0, 'exits once every loop drained');
  },
);

t.test('a loop that dies is replaced; the other keeps serving', { skip: NODE === null }, async (t) => {
  const a = await withSim(t, { name: 'A', role: 'primary' });
  const d = await runDaemon(t, [a], '', { MIRRORLB_TEST_LOOP_FAULT: '1:3' });
  const names: (string | null)[] = [];
  let died = false;
  // Connections until loop 1 has taken three (the kernel decides which loop gets each).
  for (let i = 0; i < 200 && !died; i++) {
    names.push((await greeting(d.port)).name);
    died = d.lines.some(
      (l) => l.msg === 'data-plane loop died; its sessions are lost, a new loop replaces it',
    );
  }
  t.ok(died, 'the injected error killed loop 1');
  await d.waitLog('data-plane loop replaced');
  const after = await Promise.all([...Array(40).keys()].map(() => greeting(d.port)));
  t.equal(after.filter((g) => g.name === 'A').length, 40, 'every client served after the replacement');
  const deaths = await metric(d.admin, 'mirrorlb_loop_deaths_total');
  t.equal(deaths.get(JSON.stringify({ loop: '1' })), 1, 'the death counted');
  await until('loop 1 serving again', async () => {
    const per = await metric(d.admin, 'mirrorlb_loop_connections_total');
    const before = per.get(JSON.stringify({ loop: '1' })) ?? 0;
    await Promise.all([...Array(10).keys()].map(() => greeting(d.port)));
    const now =
      (await metric(d.admin, 'mirrorlb_loop_connections_total')).get(JSON.stringify({ loop: '1' })) ?? 0;
    return now > before;
  });
  t.pass('the replacement loop takes clients');
});

/** Connections each loop accepted so far, loop 0 first. */
async function perLoop(admin: number): Promise<number[]> {
  const m = await metric(admin, 'mirrorlb_loop_connections_total');
  return [0, 1].map((l) => m.get(JSON.stringify({ loop: String(l) })) ?? 0);
}

/** Whether `port` refuses connections. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.on('error', () => resolve(true));
  });
}

t.test(
  'reload over two loops: binds on every loop or changes nothing; SIGHUP through the CLI',
  { skip: NODE === null },
  async (t) => {
    const a = await withSim(t, { name: 'A', role: 'primary' });
    const b = await withSim(t, { name: 'B', role: 'backup' });
    const c = await withSim(t, { name: 'C', role: 'primary' });
    const x = await withSim(t, { name: 'X', role: 'primary' });
    const d = await runDaemon(t, [a, b], '');
    const busy = net.createServer().listen(0, '127.0.0.1');
    await once(busy, 'listening');
    t.teardown(() => busy.close());
    const busyPort = (busy.address() as net.AddressInfo).port;
    const nPort = await freePort();
    const open = await Promise.all([...Array(20).keys()].map(() => greeting(d.port, true)));
    t.ok(
      open.every((g) => g.name === 'A'),
      '20 sessions open on A',
    );
    const before = await perLoop(d.admin);
    t.ok(
      before.every((n) => n > 0),
      `both loops serve m: ${before.join(' / ')}`,
    );

    // n binds on both loops, x cannot (its port is taken): nothing changes, n is closed on both.
    let from = d.lines.length;
    const m = { name: 'm', port: d.port, members: [a, b] };
    d.reload([m, { name: 'n', port: nPort, members: [c] }, { name: 'x', port: busyPort, members: [x] }]);
    const refusal = await d.waitLog('config reload refused; keeping the running config', 20_000, from);
    t.match(JSON.stringify(refusal.problems), /EADDRINUSE|in use/i, 'refused for the busy port');
    await until('n closed on every loop', async () => {
      const all = await Promise.all([...Array(20).keys()].map(() => refused(nPort)));
      return all.every(Boolean);
    });
    t.pass("n's port refuses 20 connections in a row: no loop kept its listener");
    t.ok(
      open.every((g) => !g.socket.destroyed),
      "m's sessions untouched",
    );
    const st = JSON.parse((await httpRequest(d.admin, '/status')).body) as {
      mirrors: Array<{ name: string; sessions: number }>;
    };
    t.same(
      st.mirrors.map((x) => [x.name, x.sessions]),
      [['m', 20]],
      'the running config only, its sessions counted',
    );
    const more = await Promise.all([...Array(40).keys()].map(() => greeting(d.port)));
    t.ok(
      more.every((g) => g.name === 'A'),
      'm still serves',
    );
    const during = await perLoop(d.admin);
    t.ok(
      during.every((n, i) => n > before[i]!),
      `on both loops: ${during.join(' / ')}`,
    );

    // SIGHUP with a valid file: A leaves m (its sessions cut on both loops), n is added.
    from = d.lines.length;
    const closed = Promise.all(open.map((g) => (g.socket.destroyed ? null : once(g.socket, 'close'))));
    d.reload([
      { name: 'm', port: d.port, members: [b] },
      { name: 'n', port: nPort, members: [c] },
    ]);
    const done = await d.waitLog('config reloaded', 20_000, from);
    t.same(done.added, ['n'], 'n added');
    t.same(done.changed, ['m'], 'm changed');
    t.equal(done.cut_sessions, 20, "the reload's record counts the sessions every loop cut");
    await closed;
    t.pass("A's 20 sessions closed");
    await d.waitLog('primary found', 20_000, from);
    const onN = await Promise.all([...Array(40).keys()].map(() => greeting(nPort)));
    t.ok(
      onN.every((g) => g.name === 'C'),
      'n serves its primary',
    );
    const after = await perLoop(d.admin);
    t.ok(
      after.every((n, i) => n > during[i]!),
      `from both loops: ${after.join(' / ')}`,
    );
  },
);
