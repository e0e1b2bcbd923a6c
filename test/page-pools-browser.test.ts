/**
 * The status page's read pools, in a real browser (chromium through playwright-core): each
 * pool lists its members with their pool state, the primary as a calm state of its own (not an
 * error), lag and sessions; a dead replica shows as down.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { withBalancer } from './helpers/balancer.js';
import { connect, readGreeting, withSim } from './helpers/sim.js';

const CHROMIUM = '/usr/bin/chromium';
const STRICT = process.env.MIRRORLB_TEST_STRICT === '1';
const missing = !existsSync(CHROMIUM);
if (missing && STRICT) t.fail(`${CHROMIUM} is missing (apt-get install chromium) and MIRRORLB_TEST_STRICT=1`);

t.test(
  'the status page shows each read pool and its members',
  { skip: missing && !STRICT ? `${CHROMIUM} not installed` : false, timeout: 60_000 },
  async (t) => {
    const p = await withSim(t, { name: 'p', role: 'primary' });
    const r1 = await withSim(t, { name: 'r1', role: 'backup' });
    const r2 = await withSim(t, { name: 'r2', role: 'backup' });
    r2.lagBytes = 3 * 1024;
    const sims = [p, r1, r2];
    const yaml = [
      'mirrors:',
      '  - name: m',
      '    listen: 127.0.0.1:0',
      '    pools:',
      '      - name: reads',
      '        listen: 127.0.0.1:0',
      '        rise: 1',
      '        slow_start: 1ms',
      '        checks:',
      ...sims.map((s) => `          ${s.name}: http://127.0.0.1:${s.webPort}/replica`),
      '    members:',
      ...sims.flatMap((s) => [
        `      - name: ${s.name}`,
        `        address: 127.0.0.1:${s.superserverPort}`,
        `        check: http://127.0.0.1:${s.webPort}/csp/mirror_status.cxw`,
      ]),
      'health:',
      '  interval: 50ms',
      'admin:',
      '  listen: 127.0.0.1:0',
    ].join('\n');
    const lb = await withBalancer(t, yaml);
    const client = await connect(lb.daemon.snapshots().get('m')!.pools![0]!.listen!.port);
    t.teardown(() => client.destroy());
    const first = await readGreeting(client);
    t.match(first, /^r[12]$/, 'a read reaches a replica');

    const dir = await mkdtemp(path.join(os.tmpdir(), 'mlb-chromium-'));
    const ctx = await chromium.launchPersistentContext(dir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
      viewport: { width: 1280, height: 900 },
      timeout: 30_000,
    });
    t.teardown(async () => {
      await ctx.close();
      await rm(dir, { recursive: true, force: true });
    });
    const page = ctx.pages()[0] ?? (await ctx.newPage());
    const problems: string[] = [];
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() === 'error') problems.push(`console: ${msg.text()}`);
    });
    await page.goto(`http://127.0.0.1:${lb.adminPort()}/`);
    const pool = page.locator('[data-mirror="m"] [data-pool="reads"]');
    await pool.locator('[data-member="r1"][data-state="in"]').waitFor({ timeout: 10_000 });
    await pool.locator('[data-member="r2"][data-state="in"]').waitFor({ timeout: 10_000 });
    const primary = pool.locator('[data-member="p"] .m-state');
    t.equal(await primary.innerText(), '◆ primary (not a reader)', 'the primary, in words');
    t.match(await primary.getAttribute('class'), /tone-idle/, 'calm: not shown as an error');
    t.equal(await pool.locator('[data-member="r1"] .m-state').innerText(), '● in pool');
    t.match(await pool.locator('[data-member="r2"] .m-detail').innerText(), /lag 3\.0 kB/, 'lag shown');
    await pool
      .locator(`[data-member="${first}"] .m-detail`, { hasText: '1 session' })
      .waitFor({ timeout: 5_000 });
    t.match(await pool.locator('.pool-open').innerText(), /r1,r2/, 'where new reads go');

    await r1.setRole('down');
    await pool.locator('[data-member="r1"][data-state="down"]').waitFor({ timeout: 10_000 });
    t.match(
      await pool.locator('[data-member="r1"] .m-state').getAttribute('class'),
      /tone-bad/,
      'down is an error',
    );
    t.same(problems, [], 'no script errors or CSP violations');
  },
);
