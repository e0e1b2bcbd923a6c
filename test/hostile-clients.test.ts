/**
 * Hostile clients against the real daemon process: thousands that connect and vanish
 * without sending a byte, and more clients than the process has file descriptors for
 * (`ulimit -n`). The daemon must stay up, keep serving the sessions it has, refuse the
 * rest politely (close them, never leave them hanging), and recover once the load drops.
 */
import net from 'node:net';
import t from 'tap';
import { freePort, metric, startDaemonProc, type DaemonProc } from './faults/lib/daemon-proc.js';
import { newResults, record } from './faults/lib/results.js';
import { within } from './helpers/http.js';
import { eventually, httpRequest, readGreeting, readUpTo, withSim } from './helpers/sim.js';

const results = newResults(t, 'hostile-clients', 'hostile', {});
void freePort;

/** Connects `count` clients, `concurrency` at a time; each closes (FIN or RST) as soon as it is connected. */
async function vanish(
  port: number,
  count: number,
  concurrency: number,
): Promise<{ ms: number; errors: number }> {
  const started = Date.now();
  let next = 0;
  let errors = 0;
  const one = (i: number): Promise<void> =>
    new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => (i % 2 === 0 ? s.resetAndDestroy() : s.destroy()));
      s.once('error', () => errors++);
      s.once('close', () => resolve());
    });
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) await one(next++);
    }),
  );
  return { ms: Date.now() - started, errors };
}

/** Polls /healthz every 100 ms until `stop` resolves; returns the slowest answer (or Infinity if one failed). */
async function watchHealth(port: number, stop: Promise<unknown>): Promise<number> {
  let done = false;
  void stop.then(() => (done = true));
  let worst = 0;
  while (!done) {
    const started = Date.now();
    const r = await httpRequest(port, '/healthz', { timeoutMs: 8000 }).catch(() => null);
    worst = Math.max(worst, r?.status === 200 ? Date.now() - started : Infinity);
    await new Promise((r) => setTimeout(r, 100));
  }
  return worst;
}

async function served(port: number): Promise<string | null> {
  try {
    const s = await new Promise<net.Socket>((resolve, reject) => {
      const c = net.connect({ host: '127.0.0.1', port }, () => resolve(c));
      c.once('error', reject);
    });
    s.on('error', () => undefined);
    const who = await readGreeting(s, 5000).catch(() => null);
    s.destroy();
    return who;
  } catch {
    return null;
  }
}

/** How many times each message was logged at warn level or above. */
function summarizeLog(lines: ReadonlyArray<Record<string, unknown>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const l of lines) {
    if (typeof l.level === 'number' && l.level >= 40) {
      const key = `${String(l.msg)}${l.code ? ` (${String(l.code)})` : ''}`;
      out[key] = (out[key] ?? 0) + 1;
    }
  }
  return out;
}

/** Clients held now, summed over mirrors, as GET /status reports them (the hold queues themselves). */
async function heldClients(d: DaemonProc): Promise<number> {
  const doc = JSON.parse((await httpRequest(d.adminPort, '/status', { timeoutMs: 5000 })).body) as {
    mirrors: Array<{ heldClients: number }>;
  };
  return doc.mirrors.reduce((n, m) => n + m.heldClients, 0);
}

async function scrape(d: DaemonProc): Promise<string> {
  return (await httpRequest(d.adminPort, '/metrics', { timeoutMs: 5000 })).body;
}

t.test('8,000 clients connect and vanish without a byte: nothing leaks, service goes on', async (t) => {
  const a = await withSim(t, { name: 'ap1a', role: 'primary' });
  const b = await withSim(t, { name: 'ap1b', role: 'backup' });
  // A mirror with no primary: its clients are held, then vanish while held.
  const c = await withSim(t, { name: 'ap2a', role: 'backup' });
  // A short hold: vanished held clients are only noticed at their hold timeout (see the last test).
  const d = await startDaemonProc(t, { ap1: [a, b], ap2: [c] }, { extra: 'proxy:\n  hold_timeout: 3s' });
  t.ok(await eventually(async () => (await served(d.port.ap1!)) === 'ap1a', 10_000), 'ap1 serves');
  const fdsBefore = d.fds();
  const rssBefore = d.rssKb();

  const storm = (async () => ({
    data: await vanish(d.port.ap1!, 5000, 200),
    held: await vanish(d.port.ap2!, 2000, 200),
    admin: await vanish(d.adminPort, 1000, 100),
  }))();
  const worstHealthMs = await watchHealth(d.adminPort, storm);
  const s = await within(storm, 120_000, 'the storm');

  t.ok(worstHealthMs < 5000, `/healthz answered throughout, slowest in ${worstHealthMs} ms`);
  let text = '';
  let held = -1;
  const settled = await eventually(
    async () => {
      text = await scrape(d);
      held = await heldClients(d);
      return metric(text, 'mirrorlb_connections_active') === 0 && held === 0 && a.openSessions() === 0;
    },
    10_000,
    100,
  );
  t.ok(settled, 'no session, held client or member connection left behind', {
    active: metric(text, 'mirrorlb_connections_active'),
    held,
    memberSessions: a.openSessions(),
  });
  const fdsSettled = await eventually(() => d.fds() <= fdsBefore + 4, 10_000, 100);
  t.ok(fdsSettled, `file descriptors back to ${d.fds()} (before: ${fdsBefore})`);
  t.equal(await served(d.port.ap1!), 'ap1a', 'a new client is served');
  t.notOk(d.proc.hasExited(), 'the daemon is up');
  const rssAfter = d.rssKb();
  record(results, {
    id: 'vanishing-clients',
    fault: '8,000 clients connect and vanish without a byte',
    description:
      '5,000 to a mirror with a primary, 2,000 to a mirror without one (held, then gone; hold_timeout 3 s), 1,000 to the admin port; 200 at a time, half closing with FIN, half with RST',
    expected:
      'nothing leaks (sessions, held clients, member connections, descriptors); /healthz and new clients served throughout',
    passed: t.counts.fail === 0,
    figures: {
      clients: 8000,
      stormMs: s.data.ms + s.held.ms + s.admin.ms,
      worstHealthzMs: worstHealthMs,
      fdsBefore,
      fdsAfter: d.fds(),
      rssBeforeKb: rssBefore,
      rssAfterKb: rssAfter,
      connectionsTotal: metric(text, 'mirrorlb_connections_total', { mirror: 'ap1' }),
    },
  });
});

t.test(
  'file descriptors run out (ulimit -n 128): the rest wait in the listen queue, sessions kept, recovered',
  async (t) => {
    const a = await withSim(t, { name: 'ap1a', role: 'primary' });
    const b = await withSim(t, { name: 'ap1b', role: 'backup' });
    const NOFILE = 128;
    const HOLD_MS = 2000;
    const d = await startDaemonProc(
      t,
      { ap1: [a, b] },
      {
        nofile: NOFILE,
        extra: `proxy:\n  hold_timeout: ${HOLD_MS}ms\n  connect_timeout: 500ms`,
      },
    );
    t.ok(await eventually(async () => (await served(d.port.ap1!)) === 'ap1a', 10_000), 'ap1 serves');
    const fdsBefore = d.fds();

    // Twice as many clients as there are descriptors: each session costs the daemon two.
    const CLIENTS = NOFILE * 2;
    const outcome: Array<'served' | 'closed' | 'pending'> = [];
    const sockets: net.Socket[] = [];
    const started = Date.now();
    await Promise.all(
      Array.from(
        { length: CLIENTS },
        (_, i) =>
          new Promise<void>((resolve) => {
            outcome[i] = 'pending';
            const s = net.connect({ host: '127.0.0.1', port: d.port.ap1! });
            sockets.push(s);
            s.on('error', () => undefined);
            s.once('connect', () => {
              readGreeting(s, HOLD_MS + 5000).then(
                (who) => {
                  outcome[i] = who === 'ap1a' ? 'served' : 'closed';
                  resolve();
                },
                () => {
                  outcome[i] = s.destroyed || s.readableEnded ? 'closed' : 'pending';
                  resolve();
                },
              );
            });
            s.once('close', () => {
              if (outcome[i] === 'pending') outcome[i] = 'closed';
              resolve();
            });
          }),
      ),
    );
    const settledMs = Date.now() - started;
    const count = (o: string): number => outcome.filter((x) => x === o).length;
    t.notOk(d.proc.hasExited(), 'the daemon is up');
    t.ok(count('served') > 10, `${count('served')} clients served`);
    // At the descriptor ceiling the listener stops accepting (fd-budget.ts): the clients past it
    // wait in the kernel's listen queue, none is accepted only to be dropped without a byte.
    t.equal(count('closed'), 0, 'no client dropped without a byte');
    t.equal(count('served') + count('pending'), CLIENTS, `the other ${count('pending')} wait their turn`);
    // As they stood once every client had its answer or was still waiting (before all leave).
    const settled = { served: count('served'), dropped: count('closed'), waiting: count('pending') };

    // The sessions it took still work.
    const live = sockets.filter((_s, i) => outcome[i] === 'served').slice(0, 5);
    let echoed = 0;
    for (const s of live) {
      s.write('ping');
      if ((await readUpTo(s, 4, 3000)).data.toString() === 'ping') echoed++;
    }
    t.equal(echoed, live.length, `the sessions it took still echo (${echoed} of ${live.length} tried)`);

    // Stay out of descriptors for a while: the health checks must not take that for a dead primary.
    const EXHAUSTED_MS = 3000;
    await new Promise((r) => setTimeout(r, EXHAUSTED_MS));
    t.notOk(d.proc.hasExited(), `the daemon is up after ${EXHAUSTED_MS} ms out of descriptors`);
    const droppedAt = Date.now();
    for (const s of sockets) s.destroy();
    const recovered = await eventually(
      async () =>
        (await httpRequest(d.adminPort, '/healthz', { timeoutMs: 2000 }).catch(() => null))?.status === 200 &&
        (await served(d.port.ap1!)) === 'ap1a',
      15_000,
      100,
    );
    const recoveredMs = Date.now() - droppedAt;
    t.ok(recovered, `recovered ${recoveredMs} ms after the clients left: /healthz and new clients served`);
    const text = await scrape(d);
    const fdsBack = await eventually(() => d.fds() <= fdsBefore + 4, 10_000, 100);
    t.ok(fdsBack, `file descriptors back to ${d.fds()} (before: ${fdsBefore})`);
    const demoted = d.proc.lines.filter((l) => l.msg === 'member demoted' || l.msg === 'failover').length;
    t.equal(demoted, 0, 'running out of descriptors did not demote the primary');
    const errs = text
      .split('\n')
      .filter((l) => l.startsWith('mirrorlb_connection_errors_total{'))
      .map((l) => l.replace(/^mirrorlb_connection_errors_total/, ''));
    t.notOk(d.proc.hasExited(), 'the daemon is still up');
    // At the descriptor ceiling the listeners stop accepting (fd-budget.ts): what waits is in the
    // kernel's listen queue, logged once ('descriptor ceiling reached') and in mirrorlb_accept_paused.
    t.equal(metric(text, 'process_max_fds'), NOFILE, `process_max_fds shows the limit (${NOFILE})`);
    record(results, {
      id: 'fd-exhaustion',
      fault: `file descriptors exhausted (ulimit -n ${NOFILE})`,
      description: `${CLIENTS} clients at once against a daemon limited to ${NOFILE} descriptors (each session needs two), hold_timeout ${HOLD_MS} ms; kept there ${EXHAUSTED_MS / 1000} s, then all leave`,
      expected:
        'the daemon stays up and keeps the sessions it has; clients past its descriptor ceiling wait in the listen queue (none is accepted and dropped without a byte); it serves again as soon as descriptors free up',
      passed: t.counts.fail === 0,
      note: 'the ceiling is (limit − reserve) / 2 from the open-files limit; at it every listener stops accepting (libuv would otherwise accept on EMFILE and close at once, silently), logged once each way and shown by `mirrorlb_accept_paused`',
      figures: {
        clients: CLIENTS,
        served: settled.served,
        dropped: settled.dropped,
        waiting: settled.waiting,
        settledMs,
        recoveredMs,
        fdsBefore,
        fdsAfter: d.fds(),
        connectionErrors: errs,
        daemonLog: summarizeLog(d.proc.lines),
      },
    });
  },
);

// A held client that resets or leaves (src/mirror/watch.ts) frees its hold-queue place at once, so
// clients that connect and vanish cannot keep a mirror without a primary full (hold_full), and
// mirrorlb_held_connections follows.
t.test('held clients that vanish free their place in the hold queue', async (t) => {
  const b = await withSim(t, { name: 'ap9b', role: 'backup' });
  const MAX_HELD = 20;
  const d = await startDaemonProc(
    t,
    { ap9: [b] },
    { extra: `proxy:\n  max_held: ${MAX_HELD}\n  hold_timeout: 10s` },
  );
  const open = (): Promise<net.Socket> =>
    new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port: d.port.ap9! }, () => resolve(s));
      s.once('error', reject);
    });
  const vanishing = await Promise.all(Array.from({ length: MAX_HELD }, open));
  t.ok(await eventually(async () => (await heldClients(d)) === MAX_HELD, 5000), `${MAX_HELD} clients held`);
  for (const s of vanishing) s.resetAndDestroy();
  t.ok(await eventually(async () => (await heldClients(d)) === 0, 2000), 'the hold queue empties at once');

  // A real client now: it is held (docs/routing.md, "Holding clients"), it must not be refused for a full queue.
  const real = await open();
  real.on('error', () => undefined);
  let closedAt: number | null = null;
  real.once('close', () => (closedAt = Date.now()));
  real.resume();
  const connectedAt = Date.now();
  await new Promise((r) => setTimeout(r, 1000));
  t.equal(closedAt, null, 'a new client is held, not closed for a full queue', {
    closedAfterMs: closedAt === null ? null : closedAt - connectedAt,
  });
  const gauge = metric(await scrape(d), 'mirrorlb_held_connections');
  // Dropping a vanished client updates the gauge too.
  const heldNow = await heldClients(d);
  t.equal(gauge, heldNow, 'mirrorlb_held_connections counts the clients held');
  real.destroy();
  record(results, {
    id: 'held-clients-vanish',
    fault: 'held clients vanish (no primary, proxy.max_held 20)',
    description: `${MAX_HELD} clients held by a mirror without a primary reset their connections; then a new client comes`,
    expected:
      'the vanished clients leave the hold queue at once, so the new client is held rather than closed for a full queue',
    passed: t.counts.fail === 0,
    figures: {
      heldAfterVanishing: heldNow,
      newClientClosedAfterMs: closedAt === null ? null : closedAt - connectedAt,
    },
  });
});
