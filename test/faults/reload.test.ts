/**
 * Operations under load, on the real daemon in its own namespace: 20 SIGHUPs alternating two
 * valid configs (mirror ap1 changes between them, ap2 never does), an invalid config sent
 * while clients stream, and SIGTERM with sessions open.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { HOLD_TIMEOUT_MS, OUTLIVE_BOUND_MS } from './lib/fault-case.js';
import { newResults, record } from './lib/results.js';
import { balancerYaml, faultNet, MIRROR_PORTS, PORTS, sleep, stopLoad } from './lib/suite.js';
import { readGreeting, readUpTo } from '../helpers/sim.js';
import { countSessions, timeline, violations, type SessionRecord } from './lib/verdict.js';

const fnet = await faultNet(t, ['client', 'lb', 'ap1a', 'ap1b', 'ap2a', 'ap2b']);

const MIRRORS = { ap1: ['ap1a', 'ap1b'], ap2: ['ap2a', 'ap2b'] } as const;
const RELOADS = 20;
const RELOAD_EVERY_MS = 250;

/** Writes a file so that a reader never sees half of it. */
function replace(file: string, text: string): void {
  writeFileSync(`${file}.new`, text);
  renameSync(`${file}.new`, file);
}

const of = (sessions: readonly SessionRecord[], mirror: string): SessionRecord[] =>
  sessions.filter((s) => s.mirror === mirror);

if (fnet) {
  const results = newResults(t, 'operations', 'fault', { hosts: fnet.net.hosts });
  const file = join(fnet.dir, 'mirrorlb.yml');
  const configA = balancerYaml(MIRRORS, fnet.token);
  // ap1 changes (its own health and proxy settings); its members keep address and checks.
  const configB = balancerYaml(MIRRORS, fnet.token, {
    mirrorExtra: { ap1: 'health:\n  interval: 200ms\n  fall: 3\nproxy:\n  hold_timeout: 8s' },
  });
  // Valid YAML that would drop mirror ap2 if it were applied, refused for rise: 0.
  const invalid = balancerYaml({ ap1: MIRRORS.ap1 }, fnet.token).replace('health:\n', 'health:\n  rise: 0\n');

  const start = async (t: Test) => {
    for (const [m, [a, b]] of Object.entries(MIRRORS)) {
      void m;
      await fnet.startSim(t, a, 'primary');
      await fnet.startSim(t, b, 'backup');
    }
    const lb = await fnet.startBalancer(t, configA, file);
    const targets = Object.keys(MIRRORS).map((m) => ({
      mirror: m,
      host: 'lb',
      port: MIRROR_PORTS[m],
      short: 4,
      long: 2,
      arrivals: 5,
    }));
    const load = await fnet.startLoad(t, { targets });
    return { lb, load };
  };

  await t.test('20 SIGHUPs alternating two configs, then an invalid one, under load', async (t) => {
    const started = Date.now();
    const { lb, load } = await start(t);
    await sleep(1000);
    const tFirst = Date.now();
    for (let i = 1; i <= RELOADS; i++) {
      replace(file, i % 2 === 1 ? configB : configA);
      lb.signal('SIGHUP');
      await lb.waitFor(
        (() => {
          let seen = 0;
          return (l) => l.msg === 'config reloaded' && ++seen === i;
        })(),
        10_000,
        `reload ${i}`,
      );
      await sleep(RELOAD_EVERY_MS);
    }
    const tReloaded = Date.now();
    replace(file, invalid);
    lb.signal('SIGHUP');
    const refused = await lb.waitFor(
      (l) => l.msg === 'config reload refused; keeping the running config',
      10_000,
      'refusal',
    );
    const tRefused = Date.now();
    await sleep(1500);
    const metrics = await fnet.http(`http://lb:${PORTS.admin}/metrics`);
    const status = await fnet.http(`http://lb:${PORTS.admin}/status`);
    const sessions = await stopLoad(load);

    const reloads = lb.lines.filter((l) => l.msg === 'config reloaded').length;
    t.equal(reloads, RELOADS, `${RELOADS} reloads applied`);
    t.match(metrics.body, new RegExp(`mirrorlb_config_reloads_total\\{result="ok"\\} ${RELOADS}\\b`));
    t.match(metrics.body, /mirrorlb_config_reloads_total\{result="invalid"\} 1\b/);
    t.match(
      String((refused.problems as string[] | undefined)?.join('\n')),
      /rise/,
      'the refusal names the problem',
    );
    const doc = JSON.parse(status.body) as { mirrors: Array<{ name: string; primary: string | null }> };
    t.same(
      doc.mirrors.map((m) => [m.name, m.primary]),
      [
        ['ap1', 'ap1a'],
        ['ap2', 'ap2a'],
      ],
      'the old config keeps running, both mirrors routed',
    );

    const verdicts: Record<string, unknown> = {};
    for (const m of Object.keys(MIRRORS)) {
      const mine = of(sessions, m);
      const counts = countSessions(mine, HOLD_TIMEOUT_MS);
      const v = violations(mine, timeline(lb.lines, m), OUTLIVE_BOUND_MS);
      t.equal(v.list.length, 0, `${m}: nothing lost`, { violations: v.list.slice(0, 10) });
      t.equal(
        counts.cut + counts.holdTimeouts + counts.refused,
        0,
        `${m}: no session dropped, none refused`,
        {
          counts,
        },
      );
      const afterRefusal = mine.filter((s) => s.tConnect > tRefused && s.member !== null).length;
      t.ok(afterRefusal > 0, `${m}: ${afterRefusal} new sessions served after the refused reload`);
      const spanning = mine.filter((s) => s.tGreet !== null && s.tGreet < tFirst && s.tEnd > tRefused);
      t.ok(
        spanning.length >= 2 && spanning.every((s) => s.outcome === 'completed'),
        `${m}: ${spanning.length} sessions open across every reload, each completed intact`,
      );
      verdicts[m] = { sessions: counts, spanningAllReloads: spanning.length, maxOutliveMs: v.maxOutliveMs };
    }
    record(results, {
      id: 'reload',
      fault: `${RELOADS} reloads (SIGHUP) under load, then an invalid config`,
      description: `config rewritten and SIGHUP sent every ~${RELOAD_EVERY_MS} ms, alternating two valid files (ap1's health and proxy settings change, ap2 never does); then a file that would drop ap2 but has rise: 0`,
      expected:
        'every valid reload applied without touching sessions of either mirror (members kept their address and checks); the invalid file refused and counted, the old config kept serving',
      passed: t.counts.fail === 0,
      sessions: countSessions(sessions, HOLD_TIMEOUT_MS),
      perMirror: verdicts,
      reloadsMs: tReloaded - tFirst,
      violationCount: 0,
      timing: { caseMs: Date.now() - started },
    });
  });

  await t.test('SIGTERM with sessions open: listener closed at once, sessions drained, exit 0', async (t) => {
    const started = Date.now();
    const { lb, load } = await start(t);
    await sleep(1500);
    const tTerm = Date.now();
    lb.signal('SIGTERM');
    // How long until a new client is refused (the listener closed).
    let closedAfterMs: number | null = null;
    for (const deadline = Date.now() + 5000; Date.now() < deadline; await sleep(10)) {
      const ok = await fnet.agent.connect('lb', MIRROR_PORTS.ap1!, 2000).then(
        (s) => (s.destroy(), true),
        () => false,
      );
      if (!ok) {
        closedAfterMs = Date.now() - tTerm;
        break;
      }
    }
    await sleep(1500);
    const tStop = Date.now();
    const sessions = await stopLoad(load);
    const exit = await Promise.race([lb.exited, sleep(10_000).then(() => null)]);
    const tExit = Date.now();
    const lastEnd = Math.max(...sessions.map((s) => s.tEnd));

    t.ok(
      closedAfterMs !== null && closedAfterMs < 1000,
      `new clients refused ${closedAfterMs} ms after SIGTERM`,
    );
    const openAtTerm = sessions.filter((s) => s.tGreet !== null && s.tGreet < tTerm && s.tEnd > tTerm);
    t.ok(openAtTerm.length >= 4, `${openAtTerm.length} sessions open at SIGTERM`);
    t.same(
      openAtTerm.filter((s) => s.outcome !== 'completed').map((s) => s.outcome),
      [],
      'every session open at SIGTERM completed intact',
    );
    const progressed = openAtTerm.filter((s) => s.kind === 'long' && s.tEnd >= tStop);
    t.ok(
      progressed.length >= 2,
      `${progressed.length} long sessions kept streaming until the clients ended them`,
    );
    const servedLate = sessions.filter((s) => s.tConnect > tTerm + 1000 && s.member !== null);
    t.equal(servedLate.length, 0, 'no client served after the listener closed');
    t.same(exit, { code: 0, signal: null }, 'exit 0');
    t.ok(
      lb.lines.some((l) => l.msg === 'stopping: listeners closed, draining'),
      'the daemon says it is draining',
    );
    const exitAfterLastMs = tExit - lastEnd;
    t.ok(
      exitAfterLastMs < 3000,
      `exited ${exitAfterLastMs} ms after the last session ended (drain_timeout 20 s)`,
    );
    record(results, {
      id: 'sigterm',
      fault: 'SIGTERM with sessions open',
      description:
        'SIGTERM sent while clients stream on both mirrors; the clients end their sessions 1.5 s later',
      expected:
        'listeners closed at once (new clients refused), open sessions keep working until they end, then exit 0, before shutdown.drain_timeout',
      passed: t.counts.fail === 0,
      sessions: countSessions(sessions, HOLD_TIMEOUT_MS),
      openAtTerm: openAtTerm.length,
      closedAfterMs,
      exitAfterLastSessionMs: exitAfterLastMs,
      exit,
      tTerm,
      sessionsSample: sessions.filter((s) => s.outcome !== 'completed' && s.outcome !== 'refused'),
      violationCount: 0,
      timing: { caseMs: Date.now() - started },
    });
  });

  await t.test(
    'SIGTERM while a backend connect is in flight: that client is closed, not left hanging',
    async (t) => {
      await fnet.startSim(t, 'ap1a', 'primary');
      await fnet.startSim(t, 'ap1b', 'backup');
      const lb = await fnet.startBalancer(
        t,
        balancerYaml({ ap1: MIRRORS.ap1 }, fnet.token, { extra: 'proxy:\n  connect_timeout: 5s' }),
        join(fnet.dir, 'connecting.yml'),
      );
      await fnet.net.heal('ap1a');
      t.teardown(() => fnet.net.heal('ap1a'));
      // A session that keeps the drain going.
      const open = await fnet.agent.connect('lb', MIRROR_PORTS.ap1!, 3000);
      t.equal(await readGreeting(open, 5000), 'ap1a', 'a session is open on ap1a');
      // New connections to ap1a's SuperServer go unanswered (their SYN dropped); its status page
      // and the open session are untouched, so it stays primary.
      const drop = await fnet.net.exec('ap1a', [
        'iptables',
        '-w',
        '5',
        '-A',
        'INPUT',
        '-p',
        'tcp',
        '--dport',
        String(PORTS.superserver),
        '--syn',
        '-j',
        'DROP',
      ]);
      t.equal(drop.code, 0, 'SYNs to the SuperServer dropped', { stderr: drop.stderr });
      const waiting = await fnet.agent.connect('lb', MIRROR_PORTS.ap1!, 3000);
      let endedAt: number | null = null;
      const ended = (): void => void (endedAt ??= Date.now());
      waiting.on('end', ended).on('close', ended).resume();
      await sleep(300);
      const tTerm = Date.now();
      lb.signal('SIGTERM');
      await lb.waitFor((l) => l.msg === 'stopping: listeners closed, draining', 5000, 'draining');
      // The SYN goes through on its retransmission (about 1 s after the first), so the
      // backend connect succeeds after the listener closed.
      await fnet.net.heal('ap1a');
      await sleep(3000);
      t.ok(
        endedAt !== null,
        `the client whose connect was in flight was closed (${endedAt === null ? 'still open 3 s after SIGTERM, neither served nor closed' : `${endedAt - tTerm} ms after SIGTERM`})`,
      );
      open.write('still here');
      t.equal((await readUpTo(open, 10, 3000)).data.toString(), 'still here', 'the open session still works');
      open.end();
      const exit = await Promise.race([lb.exited, sleep(5000).then(() => null)]);
      t.same(exit, { code: 0, signal: null }, 'exit 0 once the open session ended');
      waiting.destroy();
      record(results, {
        id: 'sigterm-connecting',
        fault: 'SIGTERM while a backend connect is in flight',
        description:
          "a client accepted while the balancer's connect to ap1a hangs (its SYNs dropped), SIGTERM 300 ms later, the SYN let through after; one other session open throughout",
        expected:
          'the waiting client is closed at once (never handed to a member after shutdown began, never left hanging); the open session keeps working; exit 0 when it ends',
        passed: t.counts.fail === 0,
        closedAfterMs: endedAt === null ? null : endedAt - tTerm,
        exit,
        violationCount: 0,
      });
    },
  );
}
