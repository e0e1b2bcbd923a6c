import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { withBalancer, yamlFor } from './helpers/balancer.js';
import { withBackend } from './helpers/datapath.js';
import { connect, readGreeting, readUpTo, withSim } from './helpers/sim.js';

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

t.test('10 MB of random bytes each way arrive unchanged and in order', async (t) => {
  const a = await withSim(t, { name: 'ap1a', role: 'primary' });
  const b = await withSim(t, { name: 'ap1b', role: 'backup' });
  const lb = await withBalancer(t, yamlFor({ ap1: [a, b] }));
  const s = await connect(lb.port('ap1'));
  t.equal(await readGreeting(s), 'ap1a');
  const payload = randomBytes(10 * 1024 * 1024);
  const received: Buffer[] = [];
  let got = 0;
  const done = new Promise<void>((resolve) => {
    s.on('data', (c: Buffer) => {
      received.push(c);
      got += c.length;
      if (got >= payload.length) resolve();
    });
    s.resume(); // readGreeting left the socket paused
  });
  // Written in uneven slices so chunk boundaries differ on each hop.
  for (let off = 0; off < payload.length;) {
    const n = 1 + Math.floor(Math.random() * 200_000);
    if (!s.write(payload.subarray(off, off + n))) await new Promise((r) => s.once('drain', r));
    off += n;
  }
  await done;
  const back = Buffer.concat(received);
  t.equal(back.length, payload.length);
  t.equal(sha(back), sha(payload), 'checksums equal');
  s.destroy();
});

t.test('half-close client → backend: the FIN is forwarded and the reply still arrives', async (t) => {
  const sim = await withSim(t, { name: 'ap1a', role: 'primary' });
  const port = await withBackend(t, (s) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    // Answers only after the client half-closed: proves the FIN went through and our side stays writable.
    s.on('end', () => s.end(`got ${Buffer.concat(chunks).length} bytes then FIN`));
  });
  const lb = await withBalancer(t, yamlFor({ ap1: [{ name: 'ap1a', port, webPort: sim.webPort }] }));
  const c = await connect(lb.port('ap1'));
  c.end('hello');
  const r = await readUpTo(c, 1e6, 5000);
  t.equal(r.data.toString(), 'got 5 bytes then FIN');
  t.ok(r.ended);
});

t.test('half-close backend → client: the client still sends after the backend ended', async (t) => {
  const sim = await withSim(t, { name: 'ap1a', role: 'primary' });
  let backendGot = '';
  const backendDone = new Promise<void>((resolve) => {
    void withBackend(t, (s) => {
      s.end('bye-from-backend');
      s.on('data', (c: Buffer) => (backendGot += c.toString()));
      s.on('end', () => resolve());
    }).then((port) => ready(port));
  });
  let ready!: (p: number) => void;
  const port = await new Promise<number>((r) => (ready = r));
  const lb = await withBalancer(t, yamlFor({ ap1: [{ name: 'ap1a', port, webPort: sim.webPort }] }));
  const c = await connect(lb.port('ap1'));
  const r = await readUpTo(c, 1e6, 5000);
  t.equal(r.data.toString(), 'bye-from-backend');
  t.ok(r.ended, 'client saw the backend FIN');
  c.end('late-words');
  await backendDone;
  t.equal(backendGot, 'late-words', 'the half-open client → backend direction still works');
});

t.test('one session’s trouble never touches another', async (t) => {
  const a = await withSim(t, { name: 'ap1a', role: 'primary' });
  const lb = await withBalancer(t, yamlFor({ ap1: [a] }));
  const good = await connect(lb.port('ap1'));
  t.equal(await readGreeting(good), 'ap1a');
  for (let i = 0; i < 20; i++) {
    const bad = await connect(lb.port('ap1'));
    bad.write('x');
    bad.resetAndDestroy();
  }
  good.write('ok?');
  t.equal((await readUpTo(good, 3, 3000)).data.toString(), 'ok?');
  good.destroy();
});

t.test('a refused backend connect is retried while the hold lasts, then the client is closed', async (t) => {
  const sim = await withSim(t, { name: 'ap1a', role: 'primary' });
  const closed = net.createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const deadPort = (closed.address() as net.AddressInfo).port;
  await new Promise<void>((r) => closed.close(() => r()));
  const lb = await withBalancer(
    t,
    yamlFor(
      { ap1: [{ name: 'ap1a', port: deadPort, webPort: sim.webPort }] },
      'proxy:\n  hold_timeout: 600ms',
    ),
  );
  const c = await connect(lb.port('ap1'));
  const r = await readUpTo(c, 1, 5000);
  t.ok(r.ended && r.data.length === 0, 'closed without a byte');
  const refused = (await lb.daemon.metrics.connectionErrors.get()).values.filter(
    (v) => v.labels.mirror === 'ap1' && v.value > 0,
  );
  t.same(
    refused.map((v) => [v.labels.reason, v.value]),
    [['connect_refused', 1]],
    'one client failed, counted once (its retries are not client errors)',
  );
  const retries = (await lb.daemon.metrics.connectRetries.get()).values.find(
    (v) => v.labels.mirror === 'ap1' && v.labels.member === 'ap1a',
  );
  t.ok((retries?.value ?? 0) >= 1, `the connect was retried (${retries?.value} retries counted apart)`);
});

t.test('a member that resets before its first byte: the client is retried, not closed', async (t) => {
  // A dying primary's listener still accepts for a moment and then resets. Here the member
  // resets its first two connections without a byte (the third is served by the sim behind).
  const sim = await withSim(t, { name: 'ap1a', role: 'primary' });
  let resets = 0;
  const gotBefore: string[] = [];
  const front = net.createServer((s) => {
    s.on('error', () => undefined);
    if (resets < 2) {
      resets++;
      // The client's first bytes reached this member; it resets without answering.
      s.once('data', (b: Buffer) => {
        gotBefore.push(b.toString());
        s.resetAndDestroy();
      });
      return;
    }
    const b = net.connect(sim.superserverPort, '127.0.0.1');
    b.on('error', () => s.destroy());
    s.pipe(b).pipe(s);
  });
  await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => front.close(() => r())));
  const frontPort = (front.address() as net.AddressInfo).port;
  const lb = await withBalancer(
    t,
    yamlFor({ ap1: [{ name: 'ap1a', port: frontPort, webPort: sim.webPort }] }, 'proxy:\n  hold_timeout: 5s'),
  );
  const c = await connect(lb.port('ap1'));
  c.write('hello\n');
  const greeting = await readGreeting(c);
  t.match(greeting, /ap1a/, 'greeted by the member once it serves');
  t.equal(resets, 2, 'two connects were reset first');
  t.same(gotBefore, ['hello\n', 'hello\n'], 'the reset member got the bytes each time (replayed)');
  const errors = (await lb.daemon.metrics.connectionErrors.get()).values.filter(
    (v) => v.labels.mirror === 'ap1' && v.value > 0,
  );
  t.same(errors, [], 'no client counted as failed');
  const retries = (await lb.daemon.metrics.connectRetries.get()).values.find(
    (v) => v.labels.mirror === 'ap1' && v.labels.member === 'ap1a',
  );
  t.equal(retries?.value, 2, 'two retries counted');
  c.destroy();
});

t.test('reload adds and removes a mirror while another carries traffic', async (t) => {
  const a = await withSim(t, { name: 'ap1a', role: 'primary' });
  const c2 = await withSim(t, { name: 'ap2a', role: 'primary' });
  const d2 = await withSim(t, { name: 'ap3a', role: 'primary' });
  const lb = await withBalancer(t, yamlFor({ ap1: [a], ap2: [c2] }));
  const { parseConfig } = await import('../src/config/load.js');
  const s = await connect(lb.port('ap1'));
  t.equal(await readGreeting(s), 'ap1a');
  const ap2Port = lb.port('ap2');
  await lb.daemon.reload(parseConfig(yamlFor({ ap1: [a], ap3: [d2] }), 'next.yml', process.env));
  t.notOk(lb.daemon.snapshots().has('ap2'), 'ap2 removed');
  await t.rejects(connect(ap2Port, '127.0.0.1', 2000), 'ap2 no longer listens');
  const s3 = await connect(lb.port('ap3'));
  t.equal(await readGreeting(s3), 'ap3a', 'ap3 added and routing');
  s.write('same session');
  t.equal(
    (await readUpTo(s, 12, 3000)).data.toString(),
    'same session',
    'the ap1 session survived the reload',
  );
  t.equal(a.accepted.length, 1, 'ap1 was not reconnected');
  s.destroy();
  s3.destroy();
});

t.test('idle_timeout closes a quiet session, not a busy one', async (t) => {
  const a = await withSim(t, { name: 'ap1a', role: 'primary' });
  const lb = await withBalancer(t, yamlFor({ ap1: [a] }, 'proxy:\n  idle_timeout: 300ms'));
  const quiet = await connect(lb.port('ap1'));
  const busy = await connect(lb.port('ap1'));
  t.equal(await readGreeting(quiet), 'ap1a');
  t.equal(await readGreeting(busy), 'ap1a');
  for (let i = 0; i < 8; i++) {
    await new Promise((r) => setTimeout(r, 100));
    busy.write('.');
    await readUpTo(busy, 1, 1000);
  }
  t.ok((await readUpTo(quiet, 1, 3000)).ended, 'the quiet session was closed');
  busy.write('still');
  t.equal((await readUpTo(busy, 5, 2000)).data.toString(), 'still', 'the busy one lives on');
  busy.destroy();
});

/**
 * A port whose SYNs go unanswered: a listener that never accepts, its one-slot queue filled.
 * The listener is a node child whose event loop is blocked right after it bound, so it
 * never calls accept (no python3 or other tool needed).
 */
async function withBlackholePort(t: Tap.Test): Promise<number> {
  const child = spawn(
    process.execPath,
    [
      '-e',
      "const s=require('net').createServer();s.listen(0,'127.0.0.1',1,()=>{" +
        "require('fs').writeSync(1,s.address().port+'\\n');" +
        'Atomics.wait(new Int32Array(new SharedArrayBuffer(4)),0,0,120000);});',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  t.teardown(() => void child.kill('SIGKILL'));
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('exit', (code) => reject(new Error(`blackhole listener exited (${code})`)));
  });
  const fillers: net.Socket[] = [];
  // Fill the accept queue; later SYNs are dropped by the kernel, so connects hang as across a blackhole.
  // Backlog 1 holds two (node turns a backlog of 0 into 511): wait until two got in, bounded.
  let connected = 0;
  const full = new Promise<void>((resolve, reject) => {
    setTimeout(() => reject(new Error(`${connected} fillers connected, not 2`)), 5000).unref();
    for (let i = 0; i < 4; i++) {
      const f = net.connect(port, '127.0.0.1');
      f.on('error', () => undefined);
      f.once('connect', () => ++connected === 2 && resolve());
      fillers.push(f);
    }
  });
  t.teardown(() => fillers.forEach((f) => f.destroy()));
  await full;
  return port;
}

t.test(
  'a connect hanging on a primary that loses the role is abandoned: the client goes to the new primary at once',
  async (t) => {
    const a = await withSim(t, { name: 'ap1a', role: 'primary' });
    const b = await withSim(t, { name: 'ap1b', role: 'backup' });
    const hole = await withBlackholePort(t);
    const lb = await withBalancer(
      t,
      yamlFor(
        { ap1: [{ name: 'ap1a', port: hole, webPort: a.webPort }, b] },
        'proxy:\n  connect_timeout: 20s',
      ),
    );
    const started = Date.now();
    const c = await connect(lb.port('ap1'));
    const greeting = readGreeting(c, 15000);
    await new Promise((r) => setTimeout(r, 300));
    await a.setRole('backup');
    await b.setRole('primary');
    t.equal(await greeting, 'ap1b', 'the client reached the new primary');
    t.ok(Date.now() - started < 10000, 'long before the 20 s connect timeout');
    c.destroy();
  },
);
