import t from 'tap';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { withBalancer, yamlFor } from './helpers/balancer.js';
import { connect, readGreeting, withSim } from './helpers/sim.js';

const CHROMIUM = '/usr/bin/chromium';
const STRICT = process.env.MIRRORLB_TEST_STRICT === '1';
// The README's picture is refreshed only on request: a test run leaves the checkout clean.
const UPDATE_SCREENSHOT = process.env.MIRRORLB_UPDATE_SCREENSHOT === '1';
const SCREENSHOT = UPDATE_SCREENSHOT
  ? fileURLToPath(new URL('../docs/status-page.png', import.meta.url))
  : path.join(os.tmpdir(), `mirrorlb-status-page-${process.pid}.png`);
// Chromium stays offline and quiet: no update, sync or QUIC traffic, no GPU on CI machines.
const ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

async function openBrowser(
  t: Tap.Test,
  width: number,
  height: number,
): Promise<{ ctx: BrowserContext; page: Page; problems: string[] }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mlb-chromium-'));
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: { width, height },
    timeout: 30_000,
  });
  t.teardown(async () => {
    await ctx.close();
    await rm(dir, { recursive: true, force: true });
  });
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  // Anything the page asks of another origin, any script error or CSP violation, is a failure.
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console: ${msg.text()}`);
  });
  page.on('request', (req) => {
    const url = new URL(req.url());
    if (url.protocol !== 'data:' && url.hostname !== '127.0.0.1')
      problems.push(`external request: ${req.url()}`);
  });
  return { ctx, page, problems };
}

const missing = !existsSync(CHROMIUM);
if (missing && STRICT) t.fail(`${CHROMIUM} is missing (apt-get install chromium) and MIRRORLB_TEST_STRICT=1`);

t.test(
  'the status page follows a switchover live',
  { skip: missing && !STRICT ? `${CHROMIUM} not installed` : false, timeout: 60_000 },
  async (t) => {
    const a = await withSim(t, { name: 'ap1a', role: 'primary' });
    const b = await withSim(t, { name: 'ap1b', role: 'backup' });
    const c = await withSim(t, { name: 'ap2a', role: 'primary' });
    const d = await withSim(t, { name: 'ap2b', role: 'backup' });
    const lb = await withBalancer(t, yamlFor({ ap1: [a, b], ap2: [c, d] }));
    const base = `http://127.0.0.1:${lb.adminPort()}/`;

    const { page, problems } = await openBrowser(t, 1280, 900);
    await page.goto(base);
    const ap1 = page.locator('[data-mirror="ap1"]');
    await ap1.locator('.primary-name', { hasText: 'ap1a' }).waitFor({ timeout: 10_000 });
    t.equal(
      await ap1.locator('[data-member="ap1a"] .m-state').innerText(),
      '● primary',
      'the primary is labelled in words, not only colour',
    );
    t.match(await ap1.locator('[data-member="ap1b"] .m-state').innerText(), /backup/);
    t.match(
      await ap1.locator('[data-member="ap1a"] .m-detail').innerText(),
      /reachable.*checked/s,
      'reachability and last check shown',
    );
    t.equal(await page.locator('[data-mirror="ap2"] .primary-name').innerText(), 'ap2a');

    // One session through the balancer, so the failover has something to cut.
    const client = await connect(lb.port('ap1'));
    t.teardown(() => client.destroy());
    t.equal(await readGreeting(client), 'ap1a');
    await ap1.locator('[data-stat="sessions"]', { hasText: /^1$/ }).waitFor({ timeout: 5_000 });
    const failoversBefore = await ap1.locator('.timeline li[data-kind="failover"]').count();

    await a.setRole('backup');
    await b.setRole('primary');
    await ap1.locator('.primary-name', { hasText: 'ap1b' }).waitFor({ timeout: 8_000 });
    const newest = ap1.locator('.timeline li').filter({ hasText: 'ap1a → ap1b' }).first();
    await newest.waitFor({ timeout: 5_000 });
    t.equal(await newest.getAttribute('data-kind'), 'failover', 'the timeline shows the failover');
    t.ok(
      (await ap1.locator('.timeline li[data-kind="failover"]').count()) > failoversBefore,
      'a new failover event appeared',
    );
    t.match(await newest.innerText(), /without primary/, 'the event says how long the mirror had no primary');
    t.match(await ap1.locator('[data-member="ap1a"] .m-state').innerText(), /backup/);

    // A session on the new primary, so the screenshot shows live numbers.
    const client2 = await connect(lb.port('ap1'));
    t.teardown(() => client2.destroy());
    t.equal(await readGreeting(client2), 'ap1b');
    await ap1.locator('[data-stat="sessions"]', { hasText: /^1$/ }).waitFor({ timeout: 5_000 });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    t.ok(existsSync(SCREENSHOT), `screenshot saved to ${SCREENSHOT}`);
    if (!UPDATE_SCREENSHOT) t.teardown(() => rm(SCREENSHOT, { force: true }));

    await page.setViewportSize({ width: 375, height: 812 });
    // Two animation frames: the resize has been laid out and painted.
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    const overflow = await page.evaluate(() => ({
      scroll: document.documentElement.scrollWidth,
      client: document.documentElement.clientWidth,
      wide: [...document.querySelectorAll('body *')]
        .filter((el) => el.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)
        .map((el) => el.tagName + '.' + el.className)
        .slice(0, 5),
    }));
    t.ok(
      overflow.scroll <= overflow.client,
      `no horizontal overflow at 375 px (scrollWidth ${overflow.scroll}, clientWidth ${overflow.client})`,
      overflow,
    );
    t.same(overflow.wide, [], 'no element sticks out to the right');

    t.same(problems, [], 'no script errors, CSP violations or external requests');
  },
);

t.test(
  'the page says so when the balancer goes away',
  { skip: missing && !STRICT ? `${CHROMIUM} not installed` : false, timeout: 60_000 },
  async (t) => {
    const a = await withSim(t, { name: 'ap1a', role: 'primary' });
    const b = await withSim(t, { name: 'ap1b', role: 'backup' });
    const lb = await withBalancer(t, yamlFor({ ap1: [a, b] }));
    const { page } = await openBrowser(t, 800, 600);
    await page.goto(`http://127.0.0.1:${lb.adminPort()}/`);
    await page.locator('#conn', { hasText: 'live' }).waitFor({ timeout: 10_000 });
    await lb.admin.close();
    await page.locator('#conn', { hasText: 'cannot reach mirrorlb' }).waitFor({ timeout: 10_000 });
    t.equal(
      await page.locator('[data-mirror="ap1"] .primary-name').innerText(),
      'ap1a',
      'the last known state stays on screen',
    );
  },
);
