/**
 * The mirror's roles themselves misbehave, with clients streaming the whole time: both
 * members claim primary (a split brain), and the role flapping between the two members
 * every 100 ms for 10 s.
 */
import t, { type Test } from 'tap';
import { CASE_SETTINGS, runCase, type CaseResult } from './lib/fault-case.js';
import { newResults } from './lib/results.js';
import { faultNet, sleep } from './lib/suite.js';

const fnet = await faultNet(t, ['client', 'lb', 'ap1a', 'ap1b']);

const FLAP_EVERY_MS = 100;
const FLAP_FOR_MS = 10_000;

if (fnet) {
  const results = newResults(t, 'roles', 'fault', { hosts: fnet.net.hosts, ...CASE_SETTINGS });

  await t.test('both members claim primary', (t) =>
    runCase(t, fnet, results, {
      id: 'both-primary',
      fault: 'both members primary',
      description: 'ap1b made primary while ap1a still is; 1.5 s later ap1a steps down',
      expected:
        'the member that became primary last (ap1b) wins at once: ap1a’s sessions are cut, new clients go to ap1b; logged and counted as a conflict',
      inject: (c) => c.fnet.control('ap1b', 'role', 'primary'),
      then: 'stepdown',
      check: (t: Test, r: CaseResult) => {
        t.ok(r.cutMs !== null && r.cutMs < 1500, `ap1a lost the role ${r.cutMs} ms after ap1b claimed it`);
        t.ok(
          r.rerouteMs !== null && r.rerouteMs < 1500,
          `clients reached ap1b ${r.rerouteMs} ms after its claim`,
        );
      },
    }),
  );

  await t.test('roles flapping every 100 ms for 10 s', (t) =>
    runCase(t, fnet, results, {
      id: 'flapping',
      fault: 'roles flapping every 100 ms for 10 s',
      description:
        'the primary role swapped between ap1a and ap1b every 100 ms for 10 s (both POSTs at once), ending with ap1b primary',
      expected:
        'the balancer follows every flip it sees: each demotion cuts that member’s sessions, new clients only ever reach the member primary at that moment',
      inject: async (c) => {
        // The flips run in the background for FLAP_FOR_MS; runCase's fault window waits for them.
        let flips = 0;
        const started = Date.now();
        c.notes.flipEveryMs = FLAP_EVERY_MS;
        c.background.push(
          (async () => {
            while (Date.now() - started < FLAP_FOR_MS) {
              const [p, b] = flips % 2 === 0 ? ['ap1b', 'ap1a'] : ['ap1a', 'ap1b'];
              const next = Date.now() + FLAP_EVERY_MS;
              await Promise.all([c.fnet.control(p, 'role', 'primary'), c.fnet.control(b, 'role', 'backup')]);
              flips++;
              await sleep(Math.max(0, next - Date.now()));
            }
            if (flips % 2 === 0) {
              await c.fnet.control('ap1a', 'role', 'backup');
              await c.fnet.control('ap1b', 'role', 'primary');
            }
            c.notes.flips = flips;
          })(),
        );
      },
      faultMs: FLAP_FOR_MS + 500,
      then: null,
      afterMs: 1500,
      check: (t: Test, r: CaseResult) => {
        const flips = Number(r.notes.flips);
        t.ok(flips >= 50, `${flips} flips made`);
        t.ok(r.sessions.cut > 0, `${r.sessions.cut} sessions cut by flips, every one cleanly`);
      },
    }),
  );
}
