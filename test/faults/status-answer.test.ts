/**
 * The primary's status page answers, but wrongly: a body that never ends, a redirect.
 * With clients streaming the whole time; 1.5 s into each fault the mirror moves the role to
 * ap1b (see test/faults/lib/status-cases.ts).
 */
import t from 'tap';
import { CASE_SETTINGS } from './lib/fault-case.js';
import { newResults } from './lib/results.js';
import { runStatusCases } from './lib/status-cases.js';
import { faultNet } from './lib/suite.js';

const fnet = await faultNet(t, ['client', 'lb', 'ap1a', 'ap1b']);

if (fnet) {
  const results = newResults(t, 'status-answer', 'fault', { hosts: fnet.net.hosts, ...CASE_SETTINGS });
  await runStatusCases(t, fnet, results, ['status-huge', 'status-redirect']);
}
