import http from 'node:http';
import { spawn } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { pino } from 'pino';
import { SimMember, parseStatusMode } from '../src/sim/member.js';
import { runSim } from '../src/cli/sim.js';
import { withSim, httpRequest, connect, readUpTo, readGreeting, eventually } from './helpers/sim.js';

const errCode = (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => 'OK',
    (e: NodeJS.ErrnoException) => e.code ?? e.message,
  );

t.test('status page answers by role over real HTTP, on every IRIS path', async (t) => {
  const sim = await withSim(t, { name: 'ap1a', role: 'primary' });
  const paths = [
    '/csp/mirror_status.cxw',
    '/csp/bin/mirror_status.cxw',
    '/csp/user/mirror_status.cxw',
    '/ap1a/csp/mirror_status.cxw',
    '/ap1a/csp//mirror_status.cxw',
    '/csp/mirror_status.cxw?x=1',
  ];
  for (const p of paths) {
    const r = await httpRequest(sim.webPort, p);
    t.same([r.status, r.body], [200, 'SUCCESS'], `primary ${p}`);
  }
  t.equal((await httpRequest(sim.webPort, '/csp/other.cxw')).status, 404);
  t.equal((await httpRequest(sim.webPort, '/sim/role')).body, 'primary\n');

  const post = await httpRequest(sim.webPort, '/sim/role', { method: 'POST', body: 'backup' });
  t.equal(post.status, 200);
  t.ok(await eventually(() => sim.role === 'backup', 2000), 'role applied');
  for (const p of paths) {
    const r = await httpRequest(sim.webPort, p);
    t.same([r.status, r.body], [503, 'FAILED'], `backup ${p}`);
  }
  t.equal((await httpRequest(sim.webPort, '/sim/role')).body, 'backup\n');
  t.equal((await httpRequest(sim.webPort, '/sim/role', { method: 'POST', body: 'leader' })).status, 400);
  t.equal((await httpRequest(sim.webPort, '/sim/status', { method: 'POST', body: 'fast' })).status, 400);
  t.equal(sim.role, 'backup', 'a bad body changes nothing');
});

t.test('web port keeps connections alive between requests', async (t) => {
  const sim = await withSim(t, { role: 'primary' });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const reused: boolean[] = [];
  for (let i = 0; i < 3; i++) {
    await new Promise<void>((resolve, reject) => {
      const req = http.get(
        { host: '127.0.0.1', port: sim.webPort, path: '/csp/mirror_status.cxw', agent },
        (res) => {
          res.resume();
          res.on('end', resolve);
        },
      );
      req.on('error', reject);
      reused.push(req.reusedSocket);
    });
  }
  t.same(reused, [false, true, true]);
});

t.test('SuperServer greets with the name and echoes', async (t) => {
  const sim = await withSim(t, { name: 'ap2b' });
  const s = await connect(sim.superserverPort);
  t.teardown(() => s.destroy());
  t.equal(await readGreeting(s), 'ap2b');
  s.write('ping 1\n');
  t.equal((await readUpTo(s, 7, 5000)).data.toString(), 'ping 1\n');
  t.equal(sim.openSessions(), 1);
  s.destroy();
  t.ok(await eventually(() => sim.openSessions() === 0, 2000), 'session count drops when the client goes');
});

t.test('half-close: every byte is echoed before the FIN comes back', async (t) => {
  const sim = await withSim(t, { name: 'ap1b' });
  const s = await connect(sim.superserverPort);
  t.teardown(() => s.destroy());
  const payload = Buffer.alloc(2 * 1024 * 1024);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff;
  const received = readUpTo(s, Infinity, 20000);
  s.end(payload);
  const r = await received;
  t.ok(r.ended, 'server ended after the client did');
  t.notOk(r.timedOut);
  const expected = Buffer.concat([Buffer.from('ap1b\n'), payload]);
  t.equal(r.data.length, expected.length);
  t.ok(r.data.equals(expected), 'greeting then the exact bytes, in order');
});

t.test('role changes keep open sessions; accepted log records the role at accept time', async (t) => {
  const sim = await withSim(t, { name: 'm', role: 'primary' });
  const a = await connect(sim.superserverPort);
  t.teardown(() => a.destroy());
  t.equal(await readGreeting(a), 'm');
  await sim.setRole('backup');
  const b = await connect(sim.superserverPort);
  t.teardown(() => b.destroy());
  t.equal(await readGreeting(b), 'm');
  a.write('still here');
  t.equal((await readUpTo(a, 10, 5000)).data.toString(), 'still here', 'old session untouched');
  t.equal(sim.openSessions(), 2);
  t.same(
    sim.accepted.map((x) => x.role),
    ['primary', 'backup'],
  );
  t.ok(sim.accepted[0]!.at <= sim.accepted[1]!.at, 'monotonic times');
});

t.test('down refuses both ports and resets sessions; back up on the same ports', async (t) => {
  const sim = await withSim(t, { role: 'primary' });
  const { superserverPort, webPort } = sim;
  const s = await connect(superserverPort);
  await readGreeting(s);
  const closed = readUpTo(s, Infinity, 5000);
  await sim.setRole('down');
  t.notOk((await closed).timedOut, 'open session cut like a crashed process');
  t.equal(await errCode(connect(superserverPort)), 'ECONNREFUSED');
  t.equal(await errCode(httpRequest(webPort, '/csp/mirror_status.cxw')), 'ECONNREFUSED');
  t.equal(sim.openSessions(), 0);
  const acceptedWhileDown = sim.accepted.length;

  await sim.setRole('backup');
  t.equal(sim.superserverPort, superserverPort);
  t.equal(sim.webPort, webPort);
  t.equal((await httpRequest(webPort, '/csp/mirror_status.cxw')).status, 503);
  const s2 = await connect(superserverPort);
  t.teardown(() => s2.destroy());
  t.equal(await readGreeting(s2), 'sim');
  t.equal(sim.accepted.length, acceptedWhileDown + 1);
});

t.test('hang accepts connections and never answers; recovery carries on', async (t) => {
  const sim = await withSim(t, { name: 'h', role: 'primary' });
  const before = await connect(sim.superserverPort);
  t.teardown(() => before.destroy());
  await readGreeting(before);
  await sim.setRole('hang');

  const s = await connect(sim.superserverPort);
  t.teardown(() => s.destroy());
  s.write('anyone?');
  before.write('echo?');
  const silent = await Promise.all([readUpTo(s, 1, 400), readUpTo(before, 1, 400)]);
  t.same(
    silent.map((r) => [r.data.length, r.timedOut]),
    [
      [0, true],
      [0, true],
    ],
    'no greeting, no echo, on new and old sessions',
  );
  t.same(sim.accepted.at(-1)?.role, 'hang');
  t.equal(await errCode(httpRequest(sim.webPort, '/csp/mirror_status.cxw', { timeoutMs: 400 })), 'TIMEOUT');

  const pending = httpRequest(sim.webPort, '/csp/mirror_status.cxw', { timeoutMs: 5000 });
  await new Promise((r) => setTimeout(r, 100));
  await sim.setRole('primary');
  const r = await pending;
  t.same([r.status, r.body], [200, 'SUCCESS'], 'a request held while hung is answered on recovery');
  t.equal(await readGreeting(s), 'h', 'late greeting after recovery');
  t.equal((await readUpTo(s, 7, 5000)).data.toString(), 'anyone?');
  t.equal((await readUpTo(before, 5, 5000)).data.toString(), 'echo?');
});

t.test('status modes', async (t) => {
  t.test('dead: web refused, SuperServer fine', async (t) => {
    const sim = await withSim(t, { role: 'primary' });
    sim.setStatusMode('dead');
    t.equal(await errCode(httpRequest(sim.webPort, '/csp/mirror_status.cxw')), 'ECONNREFUSED');
    const s = await connect(sim.superserverPort);
    t.teardown(() => s.destroy());
    t.equal(await readGreeting(s), 'sim');
    sim.setStatusMode('normal');
    await sim.settled();
    t.equal((await httpRequest(sim.webPort, '/csp/mirror_status.cxw')).status, 200);
  });

  t.test('slow: answers after the delay', async (t) => {
    const sim = await withSim(t, { role: 'primary' });
    sim.setStatusMode('slow', 400);
    t.equal(await errCode(httpRequest(sim.webPort, '/csp/mirror_status.cxw', { timeoutMs: 150 })), 'TIMEOUT');
    const start = performance.now();
    const r = await httpRequest(sim.webPort, '/csp/mirror_status.cxw', { timeoutMs: 10000 });
    t.same([r.status, r.body], [200, 'SUCCESS']);
    t.ok(performance.now() - start >= 350, 'not before the delay');
  });

  t.test('statusDelayMs delays every status answer', async (t) => {
    const sim = await withSim(t, { role: 'backup', statusDelayMs: 300 });
    t.equal(await errCode(httpRequest(sim.webPort, '/csp/mirror_status.cxw', { timeoutMs: 100 })), 'TIMEOUT');
    t.equal((await httpRequest(sim.webPort, '/csp/mirror_status.cxw', { timeoutMs: 10000 })).status, 503);
    // A delay far past the wait below: /sim/* must answer regardless.
    const slowPage = await withSim(t, { role: 'backup', statusDelayMs: 60_000 });
    t.equal(
      (await httpRequest(slowPage.webPort, '/sim/role', { timeoutMs: 5000 })).body,
      'backup\n',
      'not /sim/*',
    );
  });

  t.test('garbage: non-HTTP bytes, then close', async (t) => {
    const sim = await withSim(t, { role: 'primary' });
    sim.setStatusMode('garbage');
    const code = await errCode(httpRequest(sim.webPort, '/csp/mirror_status.cxw'));
    t.match(code, /^HPE_/, `HTTP parser rejects it (${code})`);
    const raw = await connect(sim.webPort);
    t.teardown(() => raw.destroy());
    raw.write('GET /csp/mirror_status.cxw HTTP/1.1\r\nHost: x\r\n\r\n');
    const r = await readUpTo(raw, Infinity, 5000);
    t.ok(r.ended, 'closed');
    t.notOk(r.data.toString('latin1').startsWith('HTTP/'), 'not an HTTP answer');
  });

  t.test('huge: status line, then a body that never ends', async (t) => {
    const sim = await withSim(t, { role: 'primary' });
    sim.setStatusMode('huge');
    const seen = await new Promise<{ status: number; bytes: number; head: string }>((resolve, reject) => {
      const req = http.get({
        host: '127.0.0.1',
        port: sim.webPort,
        path: '/csp/mirror_status.cxw',
        agent: false,
      });
      req.on('response', (res) => {
        let bytes = 0;
        let head = '';
        res.on('data', (c: Buffer) => {
          if (head.length < 7) head += c.toString().slice(0, 7);
          bytes += c.length;
          if (bytes > 4 * 1024 * 1024) {
            req.destroy();
            resolve({ status: res.statusCode ?? 0, bytes, head });
          }
        });
        res.on('end', () => reject(new Error('huge body ended')));
      });
      req.on('error', (e) => (req.destroyed ? undefined : reject(e)));
      req.setTimeout(15000, () => reject(new Error('too slow')));
    });
    t.equal(seen.status, 200);
    t.equal(seen.head.slice(0, 7), 'SUCCESS');
    t.ok(seen.bytes > 4 * 1024 * 1024, 'more than 4 MiB and still going');
  });

  t.test('redirect: 302 elsewhere', async (t) => {
    const sim = await withSim(t, { role: 'primary' });
    sim.setStatusMode('redirect');
    const r = await httpRequest(sim.webPort, '/ap1a/csp/mirror_status.cxw');
    t.equal(r.status, 302);
    const loc = new URL(String(r.headers.location));
    t.equal(loc.port, String(sim.webPort));
    t.not(loc.pathname, '/ap1a/csp/mirror_status.cxw');
    // The target answers like a status page, so a prober that wrongly follows redirects is caught.
    t.equal((await httpRequest(sim.webPort, loc.pathname)).body, 'SUCCESS');
  });

  t.test('POST /sim/status sets the mode over HTTP', async (t) => {
    const sim = await withSim(t, { role: 'primary' });
    const r = await httpRequest(sim.webPort, '/sim/status', { method: 'POST', body: 'slow:250' });
    t.equal(r.status, 200);
    t.ok(await eventually(() => sim.statusMode === 'slow', 2000));
    t.equal(await errCode(httpRequest(sim.webPort, '/csp/mirror_status.cxw', { timeoutMs: 100 })), 'TIMEOUT');
    t.equal((await httpRequest(sim.webPort, '/sim/status')).body, 'slow\n');
  });

  t.test('parseStatusMode', async (t) => {
    t.same(parseStatusMode('slow:1500\n'), { mode: 'slow', delayMs: 1500 });
    t.same(parseStatusMode('huge'), { mode: 'huge' });
    t.equal(parseStatusMode('dead:5'), null);
    t.equal(parseStatusMode('slow:-1'), null);
    t.equal(parseStatusMode(''), null);
  });
});

t.test('control port answers while down and brings the sim back', async (t) => {
  const sim = await withSim(t, { role: 'primary', controlPort: 0 });
  const control = sim.controlPort!;
  t.ok(control > 0);
  t.equal((await httpRequest(control, '/sim/role', { method: 'POST', body: 'down' })).status, 200);
  t.ok(await eventually(() => sim.role === 'down', 2000));
  await sim.settled();
  t.equal(await errCode(httpRequest(sim.webPort, '/csp/mirror_status.cxw')), 'ECONNREFUSED');
  t.equal((await httpRequest(control, '/sim/role')).body, 'down\n');
  t.equal((await httpRequest(control, '/csp/mirror_status.cxw')).status, 404, 'control serves /sim/* only');

  await httpRequest(control, '/sim/role', { method: 'POST', body: 'hang' });
  t.ok(await eventually(() => sim.role === 'hang', 2000));
  t.equal(
    (await httpRequest(control, '/sim/role', { timeoutMs: 5000 })).body,
    'hang\n',
    'answers while hung',
  );

  await httpRequest(control, '/sim/status', { method: 'POST', body: 'dead' });
  await httpRequest(control, '/sim/role', { method: 'POST', body: 'primary' });
  t.ok(await eventually(() => sim.role === 'primary', 2000));
  await sim.settled();
  t.equal(await errCode(httpRequest(sim.webPort, '/csp/mirror_status.cxw')), 'ECONNREFUSED', 'still dead');
  await httpRequest(control, '/sim/status', { method: 'POST', body: 'normal' });
  t.ok(
    await eventually(
      async () => (await errCode(httpRequest(sim.webPort, '/csp/mirror_status.cxw'))) === 'OK',
    ),
    'web port back',
  );
});

t.test('lifecycle: start twice fails, stop is idempotent, role changes are logged', async (t) => {
  const lines: Record<string, unknown>[] = [];
  const sink = new PassThrough();
  sink.on('data', (c: Buffer) => {
    for (const l of c.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
  });
  const sim = new SimMember({ name: 'life', superserverPort: 0, webPort: 0, logger: pino(sink) });
  await sim.start();
  await t.rejects(sim.start(), { code: 'MLB_ERR_SIM_STATE' });
  await sim.setRole('primary');
  await sim.setRole('primary');
  await new Promise((r) => setImmediate(r));
  const changes = lines.filter((l) => l.msg === 'sim role changed');
  t.same(
    changes.map((l) => [l.sim, l.from, l.to]),
    [['life', 'backup', 'primary']],
    'one line per actual change',
  );
  const port = sim.superserverPort;
  await sim.stop();
  await sim.stop();
  t.equal(await errCode(connect(port)), 'ECONNREFUSED');
  t.throws(() => new SimMember({ name: 'a\nb', superserverPort: 0, webPort: 0 }), {
    code: 'MLB_ERR_SIM_OPTIONS',
  });
});

t.test('stop destroys every socket, including a held hang request and a huge body', async (t) => {
  const sim = new SimMember({ name: 's', superserverPort: 0, webPort: 0, role: 'primary' });
  await sim.start();
  const s = await connect(sim.superserverPort);
  await readGreeting(s);
  sim.setStatusMode('huge');
  const huge = errCode(httpRequest(sim.webPort, '/csp/mirror_status.cxw', { timeoutMs: 10000 }));
  await new Promise((r) => setTimeout(r, 100));
  const ended = readUpTo(s, Infinity, 5000);
  await sim.stop();
  t.notOk((await ended).timedOut);
  t.not(await huge, 'TIMEOUT');
  t.equal(sim.openSessions(), 0);
});

t.test('runSim', async (t) => {
  const collect = () => {
    const stream = new PassThrough();
    const box = { text: '', stream };
    stream.on('data', (c: Buffer) => (box.text += c.toString()));
    return box;
  };

  t.test('usage errors exit 2 with a message and the usage', async (t) => {
    const base = ['--name', 'x', '--superserver', '1', '--web', '1'];
    const cases: Array<[string[], RegExp]> = [
      [[], /^mirrorlb sim: --name is required\n/],
      [['--name', 'x', '--superserver', '1972'], /^mirrorlb sim: --web is required\n/],
      [
        ['--name', 'x', '--superserver', '70000', '--web', '1'],
        /--superserver must be an integer from 0 to 65535/,
      ],
      [[...base, '--role', 'down'], /--role must be primary or backup \(later roles: POST \/sim\/role/],
      [[...base, '--bogus'], /^mirrorlb sim: unknown option --bogus\n/],
      [[...base, '--web', '2'], /^mirrorlb sim: --web given twice\n/],
      [[...base, '--host'], /^mirrorlb sim: --host needs an address\n/],
      [[...base, '--host', '[::1]:1972'], /--host takes no port/],
      [[...base, 'extra'], /^mirrorlb sim: unexpected argument extra\n/],
    ];
    for (const [argv, message] of cases) {
      const err = collect();
      t.equal(await runSim(argv, { stderr: err.stream, stdout: new PassThrough() }), 2, argv.join(' '));
      t.match(err.text, message, argv.join(' '));
      t.match(err.text, /\nUsage: mirrorlb sim --name N/);
    }
  });

  t.test('--help prints the usage, which says how roles change', async (t) => {
    for (const argv of [['--help'], ['-h'], ['--name', 'x', '--help']]) {
      const out = collect();
      t.equal(await runSim(argv, { stdout: out.stream, stderr: new PassThrough() }), 0, argv.join(' '));
      t.match(out.text, /^Usage: mirrorlb sim --name N --superserver PORT --web PORT/);
      t.match(out.text, /Roles change at run time with POST \/sim\/role/);
      t.match(out.text, /curl -d backup http:\/\/HOST:WEB\/sim\/role/);
      t.match(out.text, /down = stops answering/);
    }
  });

  t.test('--host [::1] binds IPv6 loopback, as the config format writes it', async (t) => {
    const out = collect();
    const ac = new AbortController();
    const done = runSim(['--name', 'v6', '--superserver', '0', '--web', '0', '--host', '[::1]'], {
      stdout: out.stream,
      signal: ac.signal,
    });
    t.ok(await eventually(() => out.text.includes('sim listening'), 5000), out.text);
    const line = JSON.parse(out.text.split('\n').find((l) => l.includes('sim listening'))!) as {
      host: string;
      superserverPort: number;
    };
    t.equal(line.host, '::1');
    const s = await connect(line.superserverPort, '::1');
    t.equal(await readGreeting(s), 'v6');
    s.destroy();
    ac.abort();
    t.equal(await done, 0);
  });

  t.test('starts, prints its ports as JSON, stops on abort', async (t) => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (c: Buffer) => (text += c.toString()));
    const ac = new AbortController();
    const done = runSim(
      ['sim', '--name', 'cli1', '--superserver', '0', '--web', '0', '--control', '0', '--role', 'primary'],
      { stdout: out, signal: ac.signal },
    );
    t.ok(await eventually(() => text.includes('sim listening'), 5000));
    const line = JSON.parse(text.split('\n').find((l) => l.includes('sim listening'))!) as Record<
      string,
      number
    >;
    t.ok(line.superserverPort! > 0 && line.webPort! > 0 && line.controlPort! > 0);
    t.equal((await httpRequest(line.webPort!, '/csp/mirror_status.cxw')).status, 200);
    const s = await connect(line.superserverPort!);
    t.teardown(() => s.destroy());
    t.equal(await readGreeting(s), 'cli1');
    ac.abort();
    t.equal(await done, 0);
    t.equal(await errCode(connect(line.superserverPort!)), 'ECONNREFUSED');
  });

  t.test('a real process exits 0 on SIGTERM', async (t) => {
    const cli = fileURLToPath(new URL('../src/cli/sim.ts', import.meta.url));
    const script =
      `const { runSim } = await import(${JSON.stringify(cli)});` +
      `process.exitCode = await runSim(['--name','proc','--superserver','0','--web','0']);`;
    const tsImport = process.execArgv.filter((a) => a.includes('typescript'));
    const child = spawn(process.execPath, [...tsImport, '--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    t.teardown(() => child.kill('SIGKILL'));
    let out = '';
    let errText = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (errText += c.toString()));
    const up = await eventually(() => out.includes('sim listening'), 30000, 50);
    t.ok(up, `child started ${errText}`);
    if (!up) return;
    const line = JSON.parse(out.split('\n').find((l) => l.includes('sim listening'))!) as Record<
      string,
      number
    >;
    const s = await connect(line.superserverPort!);
    t.equal(await readGreeting(s), 'proc');
    const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const ended = readUpTo(s, Infinity, 5000);
    child.kill('SIGTERM');
    t.equal(await exit, 0);
    t.ok((await ended).ended, 'its sessions are closed on the way out');
    s.destroy();
    t.match(out, /sim stopped/);
  });
});
