import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { runCheck } from '../src/cli/check.js';
import { runDemo } from '../src/cli/demo.js';
import { runSim } from '../src/cli/sim.js';
import { runStatus } from '../src/cli/status.js';
import { BIN, runCli } from './helpers/cli-proc.js';
import { connect, eventually, httpRequest, readGreeting, readUpTo, withSim } from './helpers/sim.js';

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
  const v = runCli(t, ['--version']);
  t.equal(await v.exited, 0);
  const h = runCli(t, ['--help']);
  t.equal(await h.exited, 0);
  const bad = runCli(t, ['--nope']);
  t.equal(await bad.exited, 2);
  t.match(bad.stderr(), /unknown option --nope/);
  const none = runCli(t, []);
  t.equal(await none.exited, 2);
  t.match(none.stderr(), /--config FILE is required/);
});

t.test('one parser for every command: --help on each, mirrorlb help, the same wording', async (t) => {
  // Through the real binary, side by side (each is a node start-up on a busy machine).
  const ok = [
    [['help'], /^mirrorlb \S+: primary-only TCP balancer/],
    [['help', 'sim'], /^Usage: mirrorlb sim --name N[^]*POST \/sim\/role/],
    [['help', 'status'], /^Usage: mirrorlb status /],
    [['sim', '--help'], /^Usage: mirrorlb sim --name N[^]*POST \/sim\/role/],
    [['-h'], /^mirrorlb \S+: primary-only TCP balancer/],
  ] as const;
  const bad = [
    [['help', 'nope'], /^mirrorlb help: no command "nope"\n/],
    [['frobnicate'], /^mirrorlb: unknown command frobnicate\n/],
    [['-c', 'a.yml', '--config=b.yml'], /^mirrorlb: --config given twice\n/],
    [['--version=3'], /^mirrorlb: option --version takes no value\n/],
    [
      ['demo', '--log-level', 'loud'],
      /^mirrorlb demo: --log-level must be one of fatal, error, warn, info, debug, trace, silent, got "loud"\n/,
    ],
  ] as const;
  const procs = [...ok, ...bad].map(([argv]) => runCli(t, [...argv]));
  const codes = await Promise.all(procs.map((p) => p.exited));
  ok.forEach(([argv, head], i) => {
    t.equal(codes[i], 0, argv.join(' '));
    t.match(procs[i]!.lines.map((l) => l.msg).join('\n'), head, argv.join(' '));
    t.equal(procs[i]!.stderr(), '');
  });
  bad.forEach(([argv, message], k) => {
    const i = ok.length + k;
    t.equal(codes[i], 2, argv.join(' '));
    t.match(procs[i]!.stderr(), message, argv.join(' '));
  });

  // The subcommands in-process, with the same parser and wording.
  const collect = () => {
    const box = { text: '', stream: new PassThrough() };
    box.stream.on('data', (c: Buffer) => (box.text += c.toString()));
    return box;
  };
  const inProcess: Array<
    [string, (argv: string[], o: NodeJS.WritableStream, e: NodeJS.WritableStream) => Promise<number>]
  > = [
    ['check', runCheck],
    ['demo', runDemo],
    ['status', runStatus],
    ['sim', (argv, o, e) => runSim(argv, { stdout: o as PassThrough, stderr: e as PassThrough })],
  ];
  for (const [cmd, runIt] of inProcess) {
    for (const help of ['--help', '-h']) {
      const out = collect();
      t.equal(await runIt([help], out.stream, new PassThrough()), 0, `${cmd} ${help}`);
      t.match(out.text, new RegExp(`^Usage: mirrorlb ${cmd} `), `${cmd} ${help}`);
    }
  }
  const usageErrors: Array<[string, string[], RegExp]> = [
    ['check', ['-c'], /^mirrorlb check: -c needs a file name\n/],
    ['demo', ['--admin', 'nonsense'], /^mirrorlb demo: --admin: "nonsense" has no port; write host:port/],
    ['demo', ['--ap1=[::1]'], /^mirrorlb demo: --ap1: "\[::1\]" has no ":port" after the "\]"/],
    ['demo', ['--ap2', '127.0.0.1:1', '--ap2', '127.0.0.1:2'], /^mirrorlb demo: --ap2 given twice\n/],
    ['status', ['--json=yes'], /^mirrorlb status: option --json takes no value\n/],
    ['status', ['--admin'], /^mirrorlb status: --admin needs a URL\n/],
  ];
  for (const [cmd, argv, message] of usageErrors) {
    const err = collect();
    const runIt = inProcess.find(([c]) => c === cmd)![1];
    t.equal(await runIt(argv, new PassThrough(), err.stream), 2, `${cmd} ${argv.join(' ')}`);
    t.match(err.text, message);
    t.notMatch(err.text, /<demo>|\n\s+at /, 'no generated-file position, no stack trace');
  }
});

t.test('a reader that goes away is a normal end: check | head -1 exits 0 without EPIPE', async (t) => {
  const file = fileURLToPath(new URL('./fixtures/config/minimal.yml', import.meta.url));
  // Close our end of the pipe before the child writes a byte: every write it makes is EPIPE.
  const child = spawn(process.execPath, [BIN, 'check', '-c', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.destroy();
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  t.equal(code, 0, 'exit 0, as when the whole summary was read');
  t.equal(err, '', 'nothing on stderr (no EPIPE stack trace)');

  const shell = spawn(
    'bash',
    ['-o', 'pipefail', '-c', `"${process.execPath}" "${BIN}" check -c "${file}" | head -1`],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let serr = '';
  shell.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  shell.stderr!.on('data', (c: Buffer) => (serr += c.toString()));
  t.equal(await new Promise((r) => shell.on('exit', (c) => r(c))), 0, 'the pipeline exits 0 (pipefail)');
  t.match(out, /^\S+minimal\.yml: OK, 1 mirror, 2 members\n$/);
  t.equal(serr, '');
});

t.test('an invalid config refuses to start with FILE:LINE:COL and no stack trace', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mlb-cli-'));
  const f = configFile(dir, 'bad.yml', 'mirrors:\n  - name: ap1\n    listen: nowhere\n');
  const p = runCli(t, ['--config', f]);
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
    const p = runCli(t, ['-c', f]);
    t.ok(await eventually(() => p.lines.some((l) => l.msg === 'mirrorlb started'), 30000), 'started', {
      stderr: p.stderr(),
      stdout: p.lines,
    });

    const started = p.lines.find((l) => l.msg === 'mirrorlb started');
    t.equal(started?.pid, p.child.pid, 'log records carry the pid (for kill -HUP)');

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
