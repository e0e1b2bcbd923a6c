import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, eventually, httpRequest, readGreeting, readUpTo, withSim } from './helpers/sim.js';

const BIN = fileURLToPath(new URL('../bin/mirrorlb.js', import.meta.url));

interface Proc {
  readonly child: ChildProcess;
  readonly lines: Array<Record<string, unknown>>;
  readonly stderr: () => string;
  readonly exited: Promise<number | null>;
}

function run(t: Tap.Test, args: string[]): Proc {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Array<Record<string, unknown>> = [];
  let err = '';
  let buf = '';
  child.stdout!.on('data', (c: Buffer) => {
    buf += c.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        lines.push({ msg: line });
      }
    }
  });
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return { child, lines, stderr: () => err, exited };
}

/** A free loopback port (bound then released; good enough for a test process). */
async function freePort(): Promise<number> {
  const net = await import('node:net');
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as import('node:net').AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

function configFile(dir: string, name: string, body: string): string {
  const p = join(dir, name);
  writeFileSync(p, body);
  return p;
}

t.test('--version, --help, usage errors', async (t) => {
  const v = run(t, ['--version']);
  t.equal(await v.exited, 0);
  const h = run(t, ['--help']);
  t.equal(await h.exited, 0);
  const bad = run(t, ['--nope']);
  t.equal(await bad.exited, 2);
  t.match(bad.stderr(), /unknown option --nope/);
  const none = run(t, []);
  t.equal(await none.exited, 2);
  t.match(none.stderr(), /--config FILE is required/);
});

t.test('an invalid config refuses to start with FILE:LINE:COL and no stack trace', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mlb-cli-'));
  const f = configFile(dir, 'bad.yml', 'mirrors:\n  - name: ap1\n    listen: nowhere\n');
  const p = run(t, ['--config', f]);
  t.equal(await p.exited, 1);
  t.match(p.stderr(), new RegExp(`^${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: `, 'm'));
  t.notMatch(p.stderr(), /\n\s+at /);
});

t.test(
  'SIGHUP reloads (a bad file is refused, the old config kept); SIGTERM drains and exits 0',
  async (t) => {
    const a = await withSim(t, { name: 'ap1a', role: 'primary' });
    const b = await withSim(t, { name: 'ap2a', role: 'primary' });
    const [p1, p2, admin] = [await freePort(), await freePort(), await freePort()];
    const dir = mkdtempSync(join(tmpdir(), 'mlb-cli-'));
    const mirror = (name: string, port: number, sim: typeof a) =>
      `  - name: ${name}\n    listen: 127.0.0.1:${port}\n    members:\n      - name: ${sim.name}\n        address: 127.0.0.1:${sim.superserverPort}\n        check: http://127.0.0.1:${sim.webPort}/csp/mirror_status.cxw\n`;
    const tail = `admin:\n  listen: 127.0.0.1:${admin}\nshutdown:\n  drain_timeout: 20s\n  grace: 0\n`;
    const f = configFile(dir, 'mirrorlb.yml', `mirrors:\n${mirror('ap1', p1, a)}${tail}`);
    const p = run(t, ['-c', f]);
    t.ok(await eventually(() => p.lines.some((l) => l.msg === 'mirrorlb started'), 30000), 'started', {
      stderr: p.stderr(),
      stdout: p.lines,
    });

    const s = await connect(p1);
    t.equal(await readGreeting(s), 'ap1a');

    writeFileSync(f, `mirrors:\n${mirror('ap1', p1, a)}${mirror('ap2', p2, b)}${tail}`);
    p.child.kill('SIGHUP');
    t.ok(await eventually(() => p.lines.some((l) => l.msg === 'config reloaded'), 10000), 'reloaded', {
      stdout: p.lines,
    });
    const s2 = await connect(p2);
    t.equal(await readGreeting(s2), 'ap2a', 'the added mirror routes');
    s2.destroy();

    writeFileSync(f, 'mirrors: [oops');
    p.child.kill('SIGHUP');
    t.ok(
      await eventually(() => p.lines.some((l) => String(l.msg).startsWith('config reload refused')), 10000),
      'bad config refused',
    );
    const metrics = await httpRequest(admin, '/metrics');
    t.match(metrics.body, /mirrorlb_config_reloads_total\{result="invalid"\} 1/);
    const s3 = await connect(p2);
    t.equal(await readGreeting(s3), 'ap2a', 'the old config keeps running');
    s3.destroy();

    s.write('before-term');
    t.equal((await readUpTo(s, 11, 3000)).data.toString(), 'before-term');
    p.child.kill('SIGTERM');
    t.ok(
      await eventually(
        () => p.lines.some((l) => String(l.msg).startsWith('stopping: listeners closed')),
        10000,
      ),
    );
    await t.rejects(connect(p1, '127.0.0.1', 2000), 'listener closed at once');
    s.write('during-drain');
    t.equal(
      (await readUpTo(s, 12, 3000)).data.toString(),
      'during-drain',
      'the open session still works while draining',
    );
    s.end();
    t.equal(await p.exited, 0, 'exit 0 once the session finished');
  },
);
