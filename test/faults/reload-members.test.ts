/**
 * Reload edge of docs/configuration.md ("Reloading"): sessions are closed only for a member
 * that was removed or re-addressed. In-process on loopback (no namespaces needed).
 */
import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { withBalancer, yamlFor } from '../helpers/balancer.js';
import { connect, readGreeting, readUpTo, withSim } from '../helpers/sim.js';

// A member keeps its health over a reload when its name and address are unchanged, so changing
// only its check URLs must not cut its sessions (src/daemon.ts updateMirror).
t.test('a member whose check URLs change (same address) keeps its sessions', async (t) => {
  const a = await withSim(t, { name: 'ap1a', role: 'primary' });
  const b = await withSim(t, { name: 'ap1b', role: 'backup' });
  const yaml = yamlFor({ ap1: [a, b] });
  const lb = await withBalancer(t, yaml);
  const s = await connect(lb.port('ap1'));
  t.equal(await readGreeting(s), 'ap1a');
  // The same status page reached by a second URL too (as when a second Web Gateway is added).
  const more = yaml.replace(
    `check: http://127.0.0.1:${a.webPort}/csp/mirror_status.cxw`,
    `check:\n          - http://127.0.0.1:${a.webPort}/csp/mirror_status.cxw\n          - http://127.0.0.1:${a.webPort}/csp/bin/mirror_status.cxw`,
  );
  t.not(more, yaml, 'the new file adds a check URL to ap1a');
  await lb.daemon.reload(parseConfig(more, 'next.yml', process.env));
  s.write('still mine');
  const r = await readUpTo(s, 10, 3000);
  t.equal(r.data.toString(), 'still mine', 'the session on ap1a survived the reload', { ended: r.ended });
  t.equal(a.accepted.length, 1, 'ap1a was not reconnected');
  s.destroy();
});
