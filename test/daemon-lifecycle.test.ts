import { SessionLog } from '../src/mirror/session-log.js';
import { execFile } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { parseConfig } from '../src/config/load.js';
import { choosePrimary } from '../src/health/choose.js';
import { INITIAL_HEALTH } from '../src/health/state.js';
import { createLogger } from '../src/log.js';
import { Metrics } from '../src/metrics.js';
import { PrimaryPlan } from '../src/mirror/plan.js';
import { Router } from '../src/mirror/router.js';
import { rawAvailable } from '../src/proxy/raw.js';
import { Resolver } from '../src/proxy/resolver.js';
import { LogSink, withBalancer, yamlFor } from './helpers/balancer.js';
import { within } from './helpers/http.js';
import { connect, readGreeting, readUpTo, withSim } from './helpers/sim.js';

// Fixed ports of this file (the range given to it; port 0 cannot test "the same address").
const PORT_A = 20011;
const PORT_B = 20012;

/** What the accept hook (src/proxy/accept-hook.ts) needs of Node's server internals, looked at here directly. */
async function serverInternals(): Promise<{ accept: boolean; noDelay: boolean }> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const s = server as unknown as {
      _handle?: { onconnection?: unknown; setNoDelay?: unknown } | null;
      _connections?: unknown;
    };
    return {
      accept: typeof s._handle?.onconnection === 'function' && typeof s._connections === 'number',
      // The raw path needs TCP_NODELAY set once on the listener and inherited, as on Linux.
      noDelay: process.platform === 'linux' && typeof s._handle?.setNoDelay === 'function',
    };
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** Whether raw-bindings.ts finds the TCP bindings it needs, as a process started without MIRRORLB_DATAPATH would. */
async function rawBindings(t: Test): Promise<boolean> {
  const mode = process.env.MIRRORLB_DATAPATH;
  if (mode !== 'plain' && mode !== 'stream') return rawAvailable();
  delete process.env.MIRRORLB_DATAPATH;
  try {
    const fresh = await t.mockImport<typeof import('../src/proxy/raw-bindings.js')>(
      '../src/proxy/raw-bindings.js',
    );
    return fresh.rawAvailable();
  } finally {
    process.env.MIRRORLB_DATAPATH = mode;
  }
}

interface Expected {
  readonly data_path: 'raw' | 'fast' | 'plain';
  readonly accept: 'fast' | 'plain';
  readonly connect: 'fast' | 'plain';
  /** How the listener hands over a client (test/fixtures/datapath-daemon.ts). */
  readonly accepted: 'none' | 'socket-fast' | 'socket-plain';
}

/**
 * The data path a daemon started with MIRRORLB_DATAPATH=`mode` must take, worked out from
 * the environment and from Node itself, never from what the daemon says: a hook that fails
 * to wrap the server must show up as a mismatch, not as an honest 'plain'.
 */
function expectedDataPath(
  mode: string | undefined,
  node: { accept: boolean; noDelay: boolean },
  bindings: boolean,
): Expected {
  const connect = mode === 'plain' ? 'plain' : 'fast';
  const accept = mode !== 'plain' && node.accept ? 'fast' : 'plain';
  const fast = connect === 'fast' && accept === 'fast';
  const raw = fast && mode !== 'stream' && bindings && node.noDelay;
  return {
    data_path: raw ? 'raw' : fast ? 'fast' : 'plain',
    accept,
    connect,
    accepted: raw ? 'none' : accept === 'fast' ? 'socket-fast' : 'socket-plain',
  };
}

t.test('the data path is logged once, at start, as this process takes it', async (t) => {
  const want = expectedDataPath(process.env.MIRRORLB_DATAPATH, await serverInternals(), await rawBindings(t));
  const a = await withSim(t, { name: 'ap1a', role: 'primary' });
  const b = await withSim(t, { name: 'ap2a', role: 'primary' });
  const lb = await withBalancer(t, yamlFor({ ap1: [a], ap2: [b] }));
  await lb.daemon.reload(parseConfig(yamlFor({ ap1: [a] }), 'next.yml', process.env));
  const lines = lb.logs.records.filter((r) => r.msg === 'data path');
  t.equal(lines.length, 1, 'one line, not one per mirror or reload');
  const l = lines[0]!;
  t.same(
    { data_path: l.data_path, accept: l.accept, connect: l.connect },
    { data_path: want.data_path, accept: want.accept, connect: want.connect },
    `MIRRORLB_DATAPATH=${process.env.MIRRORLB_DATAPATH ?? '(unset)'}: ${want.data_path}`,
  );
  if (want.data_path === 'raw') t.equal(l.reason, null, 'no reason when raw');
  else t.type(l.reason, 'string', 'why not raw');
});

const DAEMON_CHILD = fileURLToPath(new URL('./fixtures/datapath-daemon.ts', import.meta.url));
// The TypeScript loader tap runs this file with, so the child runs the same sources.
const LOADER = process.execArgv.filter((a) => a.includes('typescript'));

/** Runs test/fixtures/datapath-daemon.ts with MIRRORLB_DATAPATH=`mode` (unset when empty). */
function daemonChild(
  mode: string,
): Promise<{ greeting: string; accepted: string; logged: Array<Record<string, unknown>> }> {
  const env = { ...process.env };
  if (mode) env.MIRRORLB_DATAPATH = mode;
  else delete env.MIRRORLB_DATAPATH;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [...LOADER, DAEMON_CHILD], { env, timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${err.message}\n${stderr}`));
      try {
        resolve(JSON.parse(stdout.trim().split('\n').pop()!));
      } catch {
        reject(new Error(`no result from the child: ${stdout}\n${stderr}`));
      }
    });
  });
}

t.test('each MIRRORLB_DATAPATH mode is the data path logged and the one clients take', async (t) => {
  const node = await serverInternals();
  const bindings = await rawBindings(t);
  t.ok(node.accept, "this Node's server internals are what the accept hook wraps");
  for (const mode of ['', 'stream', 'plain']) {
    const want = expectedDataPath(mode, node, bindings);
    const r = await daemonChild(mode);
    const name = `MIRRORLB_DATAPATH=${mode || '(unset)'}`;
    t.equal(r.greeting, 'ap1a', `${name}: the client is served`);
    t.equal(r.logged.length, 1, `${name}: one data path line`);
    const l = r.logged[0] ?? {};
    t.same(
      { data_path: l.data_path, accept: l.accept, connect: l.connect },
      { data_path: want.data_path, accept: want.accept, connect: want.connect },
      `${name}: logged ${want.data_path}`,
    );
    t.equal(r.accepted, want.accepted, `${name}: the listener hands over the client as ${want.accepted}`);
  }
});

t.test('stop drains: it ends when the last session closes, not at the drain timeout', async (t) => {
  const a = await withSim(t, { name: 'ap1a', role: 'primary' });
  const lb = await withBalancer(t, yamlFor({ ap1: [a] }));
  const port = lb.port('ap1');
  const s = await connect(port);
  t.equal(await readGreeting(s), 'ap1a');
  let stopped = false;
  const stopping = lb.daemon.stop(120_000).then(() => (stopped = true));
  await t.rejects(connect(port, '127.0.0.1', 2000), 'the listener is closed at once');
  s.write('draining');
  t.equal((await readUpTo(s, 8, 3000)).data.toString(), 'draining', 'the open session still works');
  t.notOk(stopped, 'stop waits for it');
  s.end();
  await within(stopping, 10_000, 'stop after the last session closed');
  const cut = (await lb.daemon.metrics.sessionsCut.get()).values.filter((v) => v.value > 0);
  t.same(cut, [], 'the session ended by itself: nothing was cut');
  await lb.daemon.stop();
  t.pass('stop twice is fine');
});

t.test('a mirror renamed (or two swapping ports) takes over the listen address of the old one', async (t) => {
  const a = await withSim(t, { name: 'ap1a', role: 'primary' });
  const b = await withSim(t, { name: 'ap2a', role: 'primary' });
  const yaml = (names: [string, string], ports: [number, number]): string => {
    let i = 0;
    // The two mirrors' listen lines, in order; the admin listener stays on port 0.
    return yamlFor({ [names[0]]: [a], [names[1]]: [b] }).replace(/ {4}listen: 127\.0\.0\.1:0/g, () =>
      i < 2 ? `    listen: 127.0.0.1:${ports[i++]}` : '    listen: 127.0.0.1:0',
    );
  };
  const lb = await withBalancer(t, yaml(['ap1', 'ap2'], [PORT_A, PORT_B]));
  const s = await connect(PORT_A);
  t.equal(await readGreeting(s), 'ap1a');
  await lb.daemon.reload(parseConfig(yaml(['ap1x', 'ap2'], [PORT_A, PORT_B]), 'renamed.yml', process.env));
  t.same([...lb.daemon.snapshots().keys()].sort(), ['ap1x', 'ap2']);
  t.equal(lb.port('ap1x'), PORT_A);
  const r = await connect(PORT_A);
  t.equal(await readGreeting(r), 'ap1a', 'ap1x serves on the old address');
  r.destroy();
  t.ok((await readUpTo(s, 1, 3000)).ended, "the old mirror's session was cut with it");
  // ap1x and ap2 swap ports: each new listener needs the other's old address.
  await lb.daemon.reload(parseConfig(yaml(['ap1x', 'ap2'], [PORT_B, PORT_A]), 'swapped.yml', process.env));
  t.same([lb.port('ap1x'), lb.port('ap2')], [PORT_B, PORT_A], 'both listen where they asked');
  const x = await connect(PORT_A);
  t.equal(await readGreeting(x), 'ap2a', 'ap2 serves on its new port');
  x.destroy();
});

t.test(
  'a listener bound by a reload not yet committed keeps its clients until serve(), or closes them uncounted',
  async (t) => {
    const a = await withSim(t, { name: 'ap1a', role: 'primary' });
    const mirror = parseConfig(yamlFor({ ap1: [a] }), 'test.yml', process.env).mirrors[0]!;
    const decision = choosePrimary(
      [{ name: 'ap1a', admin: 'enabled', health: { ...INITIAL_HEALTH, role: 'primary', primarySince: 0 } }],
      'newest',
      null,
    );
    const make = (metrics: Metrics): Router =>
      new Router(mirror, new PrimaryPlan(decision), {
        metrics,
        resolver: new Resolver(),
        log: createLogger('debug', new LogSink()),
        owner: { connectFailed: () => {} },
        sessionLog: new SessionLog(false),
      });
    const metrics = new Metrics(undefined, { defaultMetrics: false });

    const served = make(metrics);
    t.teardown(() => served.close());
    await served.listen();
    const early = await connect(served.address()!.port);
    early.write('first');
    served.serve();
    t.equal(await readGreeting(early), 'ap1a', 'served once committed');
    t.equal(
      (await readUpTo(early, 5, 3000)).data.toString(),
      'first',
      'with the bytes it sent while waiting',
    );
    early.destroy();

    const refused = make(metrics);
    await refused.listen();
    const gone = await connect(refused.address()!.port);
    refused.close();
    t.ok((await readUpTo(gone, 1, 3000)).ended, 'a refused reload closes the clients of its listener');
    const errors = (await metrics.connectionErrors.get()).values.filter((v) => v.value > 0);
    t.same(errors, [], 'and counts them nowhere');
  },
);

t.test('snapshots() hands out frozen copies, not the live state', async (t) => {
  const a = await withSim(t, { name: 'ap1a', role: 'primary' });
  const lb = await withBalancer(t, yamlFor({ ap1: [a] }));
  const before = lb.daemon.snapshots().get('ap1')!;
  t.equal(before.sessions, 0);
  const s = await connect(lb.port('ap1'));
  t.equal(await readGreeting(s), 'ap1a');
  const after = lb.daemon.snapshots().get('ap1')!;
  t.equal(after.sessions, 1, 'a new snapshot sees the session');
  t.equal(after.members[0]!.sessions, 1);
  t.equal(before.sessions, 0, 'the old one does not change under its reader');
  t.same(after.members[0]!.resolution, { ip: '127.0.0.1', error: null }, 'an IP literal needs no lookup');
  for (const o of [
    after,
    after.members,
    after.members[0],
    after.members[0]!.health,
    after.decision,
    after.listen,
  ])
    t.ok(Object.isFrozen(o), 'frozen');
  t.throws(() => {
    (after as { held: number }).held = 5;
  }, 'writing to a snapshot throws');
  s.destroy();
});
