/**
 * The primary's process dies (SIGKILL: the kernel resets its connections) or freezes
 * (SIGSTOP: its ports still accept in the kernel, nothing answers), with clients streaming
 * the whole time. In both the mirror then promotes ap1b, as IRIS would.
 */
import t, { type Test } from 'tap';
import { CASE_SETTINGS, runCase, type CaseResult } from './lib/fault-case.js';
import { newResults } from './lib/results.js';
import { faultNet } from './lib/suite.js';

const fnet = await faultNet(t, ['client', 'lb', 'ap1a', 'ap1b']);

if (fnet) {
  const results = newResults(t, 'process', 'fault', { hosts: fnet.net.hosts, ...CASE_SETTINGS });

  await t.test('SIGKILL: the primary process is killed', (t) =>
    runCase(t, fnet, results, {
      id: 'sigkill',
      fault: 'primary process killed (SIGKILL)',
      description: 'ap1a killed with SIGKILL; 1.5 s later the mirror promotes ap1b',
      expected:
        "ap1a's sessions end with it (the kernel closes them); its checks and SuperServer port are refused, so it is demoted after `fall` checks; new clients are held, then go to ap1b",
      inject: async (c) => {
        c.sims.ap1a!.signal('SIGKILL');
        await c.sims.ap1a!.exited;
      },
      then: 'takeover',
      check: (t: Test, r: CaseResult) => {
        t.ok(r.cutMs !== null, `ap1a lost the role ${r.cutMs} ms after the kill`);
        t.ok(r.firstOnNewMs !== null, `clients reached ap1b ${r.firstOnNewMs} ms after it became primary`);
      },
    }),
  );

  await t.test('SIGSTOP: the primary process is frozen', (t) =>
    runCase(t, fnet, results, {
      id: 'sigstop',
      fault: 'primary process frozen (SIGSTOP)',
      description:
        'ap1a stopped with SIGSTOP (its kernel still accepts connections); 1.5 s later the mirror promotes ap1b',
      expected:
        'ap1a suspect at its first timed-out check (its SuperServer port still accepts, so never demoted on its own): new clients held, its sessions kept until ap1b answers primary, then cut',
      inject: async (c) => c.sims.ap1a!.signal('SIGSTOP'),
      then: 'takeover',
      check: (t: Test, r: CaseResult) => {
        t.ok(
          r.detectMs !== null && r.detectMs < 1500,
          `ap1a took no new clients ${r.detectMs} ms after it froze`,
        );
        t.ok(
          r.cutMs !== null && r.cutMs >= 1500,
          `its sessions were kept until the takeover (cut at ${r.cutMs} ms)`,
        );
        t.ok(r.firstOnNewMs !== null, `clients reached ap1b ${r.firstOnNewMs} ms after it became primary`);
      },
    }),
  );
}
