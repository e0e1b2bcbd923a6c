import type { Test } from 'tap';
import { runCase, type CaseResult } from './fault-case.js';
import type { SuiteResults } from './results.js';
import type { FaultNet } from './suite.js';

/**
 * Faults of the primary's status page alone (the database itself is fine): dead, slow,
 * garbage, a body that never ends, a redirect. 1.5 s into each, the mirror moves the role
 * to ap1b (a planned switchover while the page is still broken), to show how the balancer
 * follows it. Split over test/faults/status-page.test.ts and status-answer.test.ts.
 */

/**
 * ap1a kept the role and its sessions until the mirror moved the role: a broken status page
 * alone cuts nothing. (A check that times out on a starved machine may hold new clients for a
 * moment, which the contract allows; the matrix shows when ap1a stopped taking them.)
 */
function keptUntilSwitchover(t: Test, r: CaseResult): void {
  t.ok(
    r.cutMs === null || r.cutMs >= 1500,
    `ap1a kept the role and its sessions until the switchover (${r.cutMs} ms)`,
  );
  t.ok(r.firstOnNewMs !== null, `clients reached ap1b ${r.firstOnNewMs} ms after the switchover`);
}

export const STATUS_CASES = [
  {
    id: 'status-dead',
    fault: 'status page dead (refused)',
    mode: 'dead',
    expected:
      "checks fail fast while the SuperServer port accepts: ap1a stays primary with its sessions and clients; at the switchover ap1b's claim wins (newest primary) and ap1a's sessions are cut",
    check: keptUntilSwitchover,
  },
  {
    id: 'status-slow',
    fault: 'status page slow (answers after 1 s)',
    mode: 'slow:1000',
    expected:
      'checks time out while the SuperServer port accepts: ap1a suspect (new clients held, sessions kept); at the switchover clients go to ap1b and ap1a’s sessions are cut',
    check: (t: Test, r: CaseResult) => {
      t.ok(
        r.detectMs !== null && r.detectMs < 1500,
        `ap1a took no new clients ${r.detectMs} ms after its page slowed`,
      );
      t.ok(
        r.cutMs !== null && r.cutMs >= 1500,
        `its sessions were kept until the switchover (cut at ${r.cutMs} ms)`,
      );
      t.ok(r.firstOnNewMs !== null, `clients reached ap1b ${r.firstOnNewMs} ms after the switchover`);
    },
  },
  {
    id: 'status-garbage',
    fault: 'status page answers garbage',
    mode: 'garbage',
    expected:
      'an answer that is not HTTP is a failed check; the SuperServer port accepts, so as for a dead page',
    check: keptUntilSwitchover,
  },
  {
    id: 'status-huge',
    fault: 'status page body never ends',
    mode: 'huge',
    expected:
      'the body is read up to max_body and the answer judged on its status: ap1a stays primary; after the switchover its 503 demotes it at once',
    check: keptUntilSwitchover,
  },
  {
    id: 'status-redirect',
    fault: 'status page redirects (302)',
    mode: 'redirect',
    expected:
      'redirects are not followed: a 302 is an unexpected answer (a failed check of that URL, never a demotion); the SuperServer port accepts, so as for a dead page',
    check: keptUntilSwitchover,
  },
];

/** Runs the status-page cases whose ids are listed, one subtest each. */
export async function runStatusCases(
  t: Test,
  fnet: FaultNet,
  results: SuiteResults,
  ids: readonly string[],
): Promise<void> {
  for (const c of STATUS_CASES.filter((x) => ids.includes(x.id))) {
    await t.test(c.fault, (t) =>
      runCase(t, fnet, results, {
        id: c.id,
        fault: c.fault,
        description: `POST /sim/status ${c.mode} on ap1a; 1.5 s later ap1a steps down and ap1b becomes primary`,
        expected: c.expected,
        inject: (x) => x.fnet.control('ap1a', 'status', c.mode),
        then: 'switchover',
        check: c.check,
      }),
    );
  }
}
