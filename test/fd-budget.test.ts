// The descriptor budget, with the daemon as a child under a low open-files limit (prlimit).
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync, mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parseOpenFilesLimit } from '../src/proxy/fd-limit.js';
import { BIN } from './helpers/cli-proc.js';
import { STRICT } from './helpers/real-run.js';
import { eventually, httpRequest, readGreeting, withSim } from './helpers/sim.js';

t.test('the open-files limit from /proc/self/limits', async (t) => {
  const text =
    'Limit  Soft Limit  Hard Limit  Units\nMax open files            200                  4096                 files\n';
  t.equal(parseOpenFilesLimit(text), 200);
  t.equal(parseOpenFilesLimit(text.replace('200 ', 'unlimited ')), null);
  t.equal(parseOpenFilesLimit('nothing here'), null);
});

const hasPrlimit = spawnSync('prlimit', ['--version']).status === 0;

async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => s.once('listening', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

function open(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => resolve(s));
    s.once('error', reject);
  });
}

t.test(
  'under a low limit, clients past the ceiling wait in the listen queue and are all served',
  { skip: !hasPrlimit && !STRICT ? 'prlimit (util-linux) is not installed' : false },
  async (t) => {
    const a = await withSim(t, { name: 'ap1a', role: 'primary' });
    const port = await freePort();
    const adminPort = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'mlb-fd-'));
    const file = join(dir, 'mlb.yml');
    writeFileSync(
      file,
      [
        'mirrors:',
        '  - name: ap1',
        '    kind: iris',
        `    listen: 127.0.0.1:${port}`,
        '    members:',
        '      - name: ap1a',
        `        address: 127.0.0.1:${a.superserverPort}`,
        `        check: http://127.0.0.1:${a.webPort}/csp/mirror_status.cxw`,
        'admin:',
        `  listen: 127.0.0.1:${adminPort}`,
      ].join('\n'),
    );
    const child = spawn('prlimit', ['--nofile=200:200', process.execPath, BIN, '--config', file], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    t.teardown(() => void child.kill('SIGKILL'));
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const records = (): Array<Record<string, unknown>> =>
      out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    t.ok(await eventually(() => records().some((r) => r.msg === 'descriptor budget'), 10_000), 'started');
    const budget = records().find((r) => r.msg === 'descriptor budget')!;
    t.match(budget, { open_files_limit: 200 }, 'the limit read at start');
    const ceiling = Number(budget.ceiling);
    t.ok(ceiling > 10 && ceiling < 100, `a ceiling of ${ceiling} clients`);
    const primary = async (): Promise<boolean> =>
      (await httpRequest(adminPort, '/readyz?mirror=ap1').catch(() => ({ status: 0 }))).status === 200;
    t.ok(await eventually(primary, 10_000), 'ap1a primary');

    // Slow admin clients first: they must not take the proxy's descriptors.
    const slow = await Promise.all(
      Array.from({ length: 150 }, () =>
        open(adminPort).then(
          (s) => (s.on('error', () => undefined), s.write('GET /status HTTP/1.1\r\nHost: x\r\n'), s),
          () => null,
        ),
      ),
    );
    t.teardown(() => slow.forEach((s) => s?.destroy()));

    const total = ceiling * 3;
    const clients: net.Socket[] = [];
    for (let i = 0; i < total; i++) clients.push(await open(port));
    const greeted = new Set<net.Socket>();
    const dropped: net.Socket[] = [];
    for (const c of clients) {
      c.on('error', () => undefined);
      c.on('close', () => {
        if (!greeted.has(c)) dropped.push(c);
      });
      void readGreeting(c, 60_000).then(
        (name) => name === 'ap1a' && greeted.add(c),
        () => undefined,
      );
    }
    t.ok(await eventually(() => greeted.size === ceiling, 10_000), `the first ${ceiling} are served`);
    t.ok(
      await eventually(() => records().some((r) => String(r.msg).startsWith('descriptor ceiling reached'))),
      'the ceiling is logged',
    );
    // The slow admin clients held only the admin's share; gone, the admin answers again.
    slow.forEach((s) => s?.destroy());
    let metrics = { status: 0, body: '' };
    await eventually(async () => {
      metrics = await httpRequest(adminPort, '/metrics').catch(() => metrics);
      return metrics.status === 200;
    });
    t.match(metrics.body, /mirrorlb_accept_paused 1/, 'mirrorlb_accept_paused is 1');
    t.equal(dropped.length, 0, 'no client closed without a byte');

    // Those served leave, in turns: every waiting client is served in the end.
    while (greeted.size < total) {
      const before = greeted.size;
      for (const c of clients) if (greeted.has(c) && !c.destroyed) c.destroy();
      if (!(await eventually(() => greeted.size > before, 10_000))) break;
    }
    t.equal(greeted.size, total, `all ${total} clients served`);
    t.equal(dropped.length, 0, 'none closed without a byte');
    t.ok(
      records().some((r) => r.msg === 'accepting resumed'),
      'resuming is logged',
    );
    t.notOk(
      records().some((r) => String(r.msg) === 'accept failed'),
      'no accept failed for want of descriptors',
    );
    for (const c of clients) c.destroy();
  },
);
