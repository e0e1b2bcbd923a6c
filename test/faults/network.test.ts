/**
 * Network faults between the balancer and the primary, with clients streaming the whole
 * time: the primary's host silently blackholed (iptables DROP both ways: no RST, no ICMP,
 * the hardest case for any balancer) and its link taken down.
 */
import t, { type Test } from 'tap';
import { CASE_SETTINGS, runCase, type CaseResult } from './lib/fault-case.js';
import { newResults } from './lib/results.js';
import { faultNet } from './lib/suite.js';

const fnet = await faultNet(t, ['client', 'lb', 'ap1a', 'ap1b']);

if (fnet) {
  const results = newResults(t, 'network', 'fault', { hosts: fnet.net.hosts, ...CASE_SETTINGS });
  const lostTheRole = (t: Test, r: CaseResult): void => {
    t.ok(r.cutMs !== null, `ap1a lost the role (after ${r.cutMs} ms) and its sessions were cut`);
    t.ok(r.firstOnNewMs !== null, `clients reached ap1b ${r.firstOnNewMs} ms after it became primary`);
  };

  await t.test('blackhole: every packet to and from the primary dropped', (t) =>
    runCase(t, fnet, results, {
      id: 'blackhole',
      fault: 'primary blackholed (iptables DROP, no RST)',
      description:
        "iptables drops every packet in and out of ap1a's link; 1.5 s later the mirror promotes ap1b",
      expected:
        'ap1a suspect at the first timed-out check (new clients held, sessions kept), demoted after `fall` checks with its SuperServer port silent too (sessions cut); clients go to ap1b once it answers primary',
      inject: (c) => c.fnet.net.blackhole('ap1a'),
      then: 'takeover',
      check: lostTheRole,
    }),
  );

  await t.test('link down: the primary host loses its only link', (t) =>
    runCase(t, fnet, results, {
      id: 'link-down',
      fault: 'primary link down',
      description: "ap1a's eth0 set down; 1.5 s later the mirror promotes ap1b",
      expected: 'as for the blackhole: suspect, then demoted with its sessions cut; clients go to ap1b',
      inject: (c) => c.fnet.net.linkDown('ap1a'),
      then: 'takeover',
      check: lostTheRole,
    }),
  );
}
