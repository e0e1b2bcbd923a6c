import t from 'tap';
import type net from 'node:net';
import { withBalancer, yamlFor } from './helpers/balancer.js';
import { connect, eventually, readGreeting, readUpTo, withSim } from './helpers/sim.js';

/** Connects through the balancer and returns the member that greeted, or the error code. */
async function whoAnswers(
  port: number,
  timeoutMs = 8000,
): Promise<{ member: string | null; error: string | null; socket: net.Socket | null }> {
  try {
    const s = await connect(port, '127.0.0.1', timeoutMs);
    try {
      return { member: await readGreeting(s, timeoutMs), error: null, socket: s };
    } catch (e) {
      s.destroy();
      return { member: null, error: (e as Error).message, socket: null };
    }
  } catch (e) {
    return { member: null, error: (e as NodeJS.ErrnoException).code ?? 'error', socket: null };
  }
}

async function pair(
  t: Tap.Test,
  aRole: 'primary' | 'backup' = 'primary',
  bRole: 'primary' | 'backup' = 'backup',
  extra = '',
) {
  const a = await withSim(t, { name: 'ap1a', role: aRole });
  const b = await withSim(t, { name: 'ap1b', role: bRole });
  const lb = await withBalancer(t, yamlFor({ ap1: [a, b] }, extra));
  return { a, b, lb, port: lb.port('ap1') };
}

/**
 * Clients connecting one after another (every ~10 ms) while `act` runs, until `until`
 * holds; returns who answered each, in order.
 */
async function clientsDuring(
  port: number,
  act: () => Promise<void>,
  until: (last: string | null) => boolean,
  max = 400,
) {
  const seen: Array<string> = [];
  const sockets: net.Socket[] = [];
  let acted = false;
  for (let i = 0; i < max; i++) {
    const r = await whoAnswers(port);
    seen.push(r.member ?? `ERR:${r.error}`);
    if (r.socket) sockets.push(r.socket);
    if (i === 5 && !acted) {
      acted = true;
      await act();
    }
    if (acted && until(r.member)) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  for (const s of sockets) s.destroy();
  return seen;
}

/** Every entry is `from` up to some point, then `to` until the end: no errors, no going back. */
function switchedOnce(seen: string[], from: string, to: string): boolean {
  const first = seen.indexOf(to);
  return (
    first > 0 && seen.slice(0, first).every((m) => m === from) && seen.slice(first).every((m) => m === to)
  );
}

t.test('planned switchover: new clients follow, none fail, old sessions are cut', async (t) => {
  const { a, b, lb, port } = await pair(t);
  const old = await whoAnswers(port);
  t.equal(old.member, 'ap1a');
  const seen = await clientsDuring(
    port,
    async () => {
      await a.setRole('backup');
      await b.setRole('primary');
    },
    (m) => m === 'ap1b',
  );
  t.ok(switchedOnce(seen, 'ap1a', 'ap1b'), `clients went ap1a… then ap1b… only: ${seen.join(',')}`);
  const end = await readUpTo(old.socket!, 1, 5000);
  t.ok(end.ended, 'the session on the demoted member was closed');
  t.ok(lb.logs.messages().includes('failover'), 'a failover line is logged');
  // Whichever probe came first (a's demotion or b's claim), the step that cut says how many.
  const onA = 1 + seen.filter((m) => m === 'ap1a').length;
  const roles = lb.daemon.events.list().filter((e) => e.kind === 'role');
  t.equal(
    roles.reduce((n, e) => n + e.cutSessions, 0),
    onA,
    `the role events count the ${onA} sessions cut, once`,
    { roles },
  );
  t.equal(
    lb.daemon.metrics.failovers.hashMap?.['mirror:ap1']?.value ??
      (await lb.daemon.metrics.failovers.get()).values[0]?.value,
    1,
  );
});

t.test('primary killed: clients are held, then reach the new primary; none refused', async (t) => {
  const { a, b, port } = await pair(t);
  t.equal((await whoAnswers(port)).member, 'ap1a');
  const seen = await clientsDuring(
    port,
    async () => {
      await a.setRole('down');
      await new Promise((r) => setTimeout(r, 100));
      await b.setRole('primary');
    },
    (m) => m === 'ap1b',
  );
  t.notOk(
    seen.some((m) => m.startsWith('ERR')),
    `no client failed: ${seen.join(',')}`,
  );
  t.equal(seen.at(-1), 'ap1b');
});

t.test('primary hung: new clients are not sent into it; its sessions are cut at takeover', async (t) => {
  const { a, b, lb, port } = await pair(t);
  const old = await whoAnswers(port);
  t.equal(old.member, 'ap1a');
  await a.setRole('hang');
  t.ok(
    await eventually(() => lb.daemon.snapshots().get('ap1')!.decision.accepting === false, 5000),
    'hung primary becomes suspect',
  );
  const suspect = lb.daemon.events.list().find((e) => e.kind === 'role' && e.to === 'suspect');
  t.equal(suspect?.cutSessions, 0, 'turning suspect cuts nothing, and its event says so');
  // A client arriving now is held, not sent into the hung member.
  const held = whoAnswers(port);
  t.ok(await eventually(() => lb.daemon.snapshots().get('ap1')!.held === 1, 10000), 'the new client is held');
  await b.setRole('primary');
  t.equal((await held).member, 'ap1b', 'the held client reaches the new primary');
  const end = await readUpTo(old.socket!, 1, 5000);
  t.ok(end.ended, 'the session on the hung member was closed');
  const takeover = lb.daemon.events
    .list()
    .find((e) => e.kind === 'role' && e.member === 'ap1b' && e.to === 'primary');
  t.equal(takeover?.cutSessions, 1, "the takeover's event counts the hung member's session it cut");
  (await held).socket?.destroy();
});

t.test('status page down, SuperServer up: the primary keeps its sessions and clients', async (t) => {
  const { a, lb, port } = await pair(t);
  const s = await whoAnswers(port);
  t.equal(s.member, 'ap1a');
  a.setStatusMode('dead');
  // More failed checks in a row than `fall` (2) would need to demote it, had its port failed too.
  const failedChecks = async (): Promise<number> =>
    (await lb.daemon.metrics.healthChecks.get()).values.find(
      (v) => v.labels.member === 'ap1a' && v.labels.result === 'error',
    )?.value ?? 0;
  t.ok(await eventually(async () => (await failedChecks()) >= 4, 10_000), 'four checks failed');
  s.socket!.write('still there?');
  const echo = await readUpTo(s.socket!, 12, 3000);
  t.equal(echo.data.toString(), 'still there?', 'the open session still works');
  t.equal((await whoAnswers(port)).member, 'ap1a', 'new clients still reach it');
  const d = lb.daemon.snapshots().get('ap1')!.decision;
  t.same([d.primary, d.accepting], ['ap1a', true]);
  s.socket!.destroy();
});

t.test(
  'fresh start: nothing is routed before a member answers; held clients go to the first primary',
  async (t) => {
    const { b, lb, port } = await pair(t, 'backup', 'backup');
    const clients = Array.from({ length: 20 }, () => whoAnswers(port));
    t.ok(
      await eventually(() => lb.daemon.snapshots().get('ap1')!.held === 20, 10000),
      'all 20 held while no member is primary',
    );
    await b.setRole('primary');
    const got = await Promise.all(clients);
    t.same(
      got.map((g) => g.member),
      Array(20).fill('ap1b'),
      'every held client reached the new primary, none refused',
    );
    for (const g of got) g.socket?.destroy();
  },
);

t.test(
  'both primary: the newest wins, the other one’s sessions are closed, the conflict is counted',
  async (t) => {
    const { b, lb, port } = await pair(t);
    const old = await whoAnswers(port);
    t.equal(old.member, 'ap1a');
    await b.setRole('primary');
    t.ok(
      await eventually(async () => (await whoAnswers(port)).member === 'ap1b', 5000),
      'new clients reach the newer primary',
    );
    t.ok((await readUpTo(old.socket!, 1, 5000)).ended, 'the older primary’s session was closed');
    // A conflict, not a takeover: ap1a answers primary again after ap1b's claim.
    const conflicts = async (): Promise<number> =>
      (await lb.daemon.metrics.primaryConflicts.get()).values[0]?.value ?? 0;
    t.ok(await eventually(async () => (await conflicts()) === 1, 5000), 'the conflict is counted');
  },
);

t.test('hold policy: two primaries hold new clients until one steps down', async (t) => {
  const a = await withSim(t, { name: 'ap1a', role: 'primary' });
  const b = await withSim(t, { name: 'ap1b', role: 'backup' });
  const lb = await withBalancer(t, yamlFor({ ap1: [a, b] }, '', 'on_conflict: hold'));
  const port = lb.port('ap1');
  t.equal((await whoAnswers(port)).member, 'ap1a');
  await b.setRole('primary');
  t.ok(await eventually(() => lb.daemon.snapshots().get('ap1')!.decision.conflict.length === 2, 5000));
  const held = whoAnswers(port);
  t.ok(await eventually(() => lb.daemon.snapshots().get('ap1')!.held === 1, 10000), 'the new client is held');
  await a.setRole('backup');
  t.equal((await held).member, 'ap1b');
  (await held).socket?.destroy();
});

t.test(
  'hold timeout: with no primary a held client is closed at its deadline, never sent to a backup',
  async (t) => {
    const { a, b, port } = await pair(t, 'backup', 'backup', 'proxy:\n  hold_timeout: 300ms');
    const started = Date.now();
    const r = await whoAnswers(port, 5000);
    t.equal(r.member, null, 'no member reached');
    t.ok(Date.now() - started >= 250, 'closed only after the hold timeout');
    t.equal(a.accepted.length + b.accepted.length, 0, 'no backend connection was made');
  },
);

t.test('admin drain, disable, enable', async (t) => {
  const { lb, port } = await pair(t);
  const s = await whoAnswers(port);
  t.ok(lb.daemon.adminAction('ap1', 'ap1a', 'drain'));
  const held = whoAnswers(port, 8000);
  t.ok(
    await eventually(() => lb.daemon.snapshots().get('ap1')!.held === 1, 10000),
    'draining: new clients wait',
  );
  s.socket!.write('x');
  t.equal((await readUpTo(s.socket!, 1, 2000)).data.toString(), 'x', 'draining: sessions keep working');
  t.ok(lb.daemon.adminAction('ap1', 'ap1a', 'disable'));
  t.ok((await readUpTo(s.socket!, 1, 2000)).ended, 'disabled: sessions cut');
  t.ok(lb.daemon.adminAction('ap1', 'ap1a', 'enable'));
  t.equal((await held).member, 'ap1a', 'enabled: the held client goes through');
  const admin = lb.daemon.events.list().filter((e) => e.kind === 'admin');
  t.same(
    admin.map((e) => [e.detail, e.from, e.to, e.cutSessions]),
    [
      ['drain', 'enabled', 'draining', 0],
      ['disable', 'draining', 'disabled', 1],
      ['enable', 'disabled', 'enabled', 0],
    ],
    'admin events carry the previous admin state and the sessions really cut',
  );
  (await held).socket?.destroy();
  t.notOk(lb.daemon.adminAction('ap1', 'nope', 'drain'));
  t.notOk(lb.daemon.adminAction('nope', 'ap1a', 'drain'));
});

t.test(
  'a session the hung primary never answered moves to the new primary with its bytes replayed',
  async (t) => {
    const a = await withSim(t, { name: 'ap1a', role: 'primary' });
    const b = await withSim(t, { name: 'ap1b', role: 'backup' });
    // A long interval: the hang is not noticed by a probe before the client is routed to it.
    const lb = await withBalancer(t, yamlFor({ ap1: [a, b] }, 'health:\n  interval: 5s\n  fast_window: 1ms'));
    const port = lb.port('ap1');
    const warm = await whoAnswers(port);
    t.equal(warm.member, 'ap1a');
    warm.socket?.destroy();
    await a.setRole('hang');
    const c = await connect(port);
    c.write('hello, ');
    c.write('server');
    t.ok(await eventually(() => a.accepted.length === 2, 5000), 'the client reached the hung member');
    await b.setRole('primary');
    lb.daemon.probeNow('ap1');
    const got = await readUpTo(c, 'ap1b\nhello, server'.length, 8000);
    t.equal(
      got.data.toString(),
      'ap1b\nhello, server',
      'greeted by the new primary, which echoed the replayed bytes',
    );
    t.ok(
      await eventually(
        () =>
          lb.daemon
            .snapshots()
            .get('ap1')!
            .members.find((m) => m.config.name === 'ap1a')!.sessions === 0,
        5000,
      ),
      'the session to the hung member was closed',
    );
    const moved = (await lb.daemon.metrics.sessionsRedispatched.get()).values.find(
      (v) => v.labels.member === 'ap1a',
    );
    t.equal(moved?.value, 1, 'counted as redispatched, not cut');
    const events = lb.daemon.events.list().filter((e) => e.kind !== 'admin');
    t.ok(
      events.some((e) => e.kind === 'failover' && e.from === 'ap1a'),
      'a failover from ap1a',
      { events },
    );
    t.same(
      events.map((e) => e.cutSessions),
      events.map(() => 0),
      'no event counts the moved session as cut',
      { events },
    );
    c.write('!');
    t.equal((await readUpTo(c, 1, 3000)).data.toString(), '!', 'the moved session carries on');
    c.destroy();
  },
);
