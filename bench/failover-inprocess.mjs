// Quick in-process failover check (no namespaces, no haproxy): 10 runs of one scenario against
// the built daemon and two simulated members; clients connect every 5 ms.
// Usage: npx tsc -p . && node bench/failover-inprocess.mjs switchover|crash|hang
// Prints: median/max ms from "new primary set" to the first client greeted by it, failed
// clients per run, clients greeted by the old primary after its demotion per run, and how
// long the session left on the old primary stayed open.
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { SimMember } from '../dist/sim/member.js';
import { parseConfig } from '../dist/config/load.js';
import { Daemon } from '../dist/daemon.js';
import { Prober } from '../dist/health/probe.js';
import { createLogger } from '../dist/log.js';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function who(port) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const s = net.connect({ port, host: '127.0.0.1' });
    let buf = '';
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ err: 'timeout', t0 });
    }, 5000);
    s.on('data', (d) => {
      buf += d;
      const i = buf.indexOf('\n');
      if (i >= 0) {
        clearTimeout(timer);
        s.destroy();
        resolve({ m: buf.slice(0, i), t0, t1: performance.now() });
      }
    });
    s.on('error', (/** @type {NodeJS.ErrnoException} */ e) => {
      clearTimeout(timer);
      resolve({ err: e.code, t0 });
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ err: 'closed', t0 });
    });
  });
}
const scenario = process.argv[2] ?? '';
/** The role the primary takes in each scenario. @type {Record<string, import('../dist/sim/member.js').SimRole>} */
const DEMOTE = { switchover: 'backup', crash: 'down', hang: 'hang' };
const demoteTo = DEMOTE[scenario];
if (!demoteTo) {
  process.stderr.write(`usage: node bench/failover-inprocess.mjs ${Object.keys(DEMOTE).join('|')}\n`);
  process.exit(2);
}
const results = [];
for (let run = 0; run < 10; run++) {
  const a = new SimMember({ name: 'a', superserverPort: 0, webPort: 0, role: 'primary' });
  const b = new SimMember({ name: 'b', superserverPort: 0, webPort: 0, role: 'backup' });
  await a.start();
  await b.start();
  const cfg = parseConfig(
    `mirrors:\n  - name: m\n    listen: 127.0.0.1:0\n    members:\n${[a, b].map((s) => `      - name: ${s.name}\n        address: 127.0.0.1:${s.superserverPort}\n        check: http://127.0.0.1:${s.webPort}/csp/mirror_status.cxw`).join('\n')}\nadmin:\n  listen: 127.0.0.1:0\n`,
    'x',
    {},
  );
  const d = new Daemon(cfg, { log: createLogger('silent'), prober: new Prober() });
  await d.start();
  const port = d.snapshots().get('m')?.listen?.port;
  if (port === undefined) throw new Error('mirror m is not listening');
  while ((await who(port)).m !== 'a') await sleep(20);
  // an old session on a
  const old = net.connect({ port, host: '127.0.0.1' });
  old.on('error', () => {});
  old.resume();
  let oldClosedAt = null;
  old.on('close', () => (oldClosedAt = performance.now()));
  await sleep(2100 + Math.random() * 200);
  const clients = [];
  let stop = false;
  const loop = (async () => {
    while (!stop) {
      clients.push(who(port));
      await sleep(5);
    }
  })();
  await sleep(100);
  await a.setRole(demoteTo);
  const tDemote = performance.now();
  await b.setRole('primary');
  const tNew = performance.now();
  await sleep(1000);
  stop = true;
  await loop;
  const rs = await Promise.all(clients);
  const firstB = rs
    .filter((r) => r.m === 'b')
    .map((r) => r.t1)
    .sort((x, y) => x - y)[0];
  const errs = rs.filter((r) => r.err).length;
  const aAfter = rs.filter((r) => r.m === 'a' && r.t0 > tDemote).length;
  results.push({ toNew: firstB - tNew, errs, aAfter, oldOpen: oldClosedAt ? oldClosedAt - tDemote : null });
  old.destroy();
  await d.stop(0);
  await a.stop();
  await b.stop();
}
const med = (xs) => {
  const s = xs.filter((x) => x !== null).sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};
console.log(
  scenario,
  'median toNew',
  med(results.map((r) => r.toNew)).toFixed(1),
  'max',
  Math.max(...results.map((r) => r.toNew)).toFixed(1),
  'errs',
  results.map((r) => r.errs).join(','),
  'aAfterDemote',
  results.map((r) => r.aAfter).join(','),
  'oldOpen med',
  med(results.map((r) => r.oldOpen))?.toFixed(1),
  'max',
  Math.max(...results.map((r) => r.oldOpen ?? 0)).toFixed(1),
);
process.exit(0);
