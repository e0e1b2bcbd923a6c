import t from 'tap';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { hookAccept } from '../src/proxy/accept-hook.js';
import { isFast } from '../src/proxy/fastpath.js';
import { link } from '../src/proxy/link.js';
import { connectBackend, ConnectError, createProxyServer } from '../src/proxy/sockets.js';
import {
  connectTo,
  receiveStream,
  sendStream,
  waitFor,
  withBackend,
  withProxy,
  DATA_PATH_MODES,
  within,
} from './helpers/datapath.js';

/** Reads until end or close; resolves with the bytes and whether a FIN arrived. */
function readAll(s: net.Socket, ms = 5000): Promise<{ data: string; ended: boolean }> {
  return within(
    new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let ended = false;
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('error', () => undefined);
      const done = (): void => resolve({ data: Buffer.concat(chunks).toString(), ended });
      s.on('end', () => {
        ended = true;
        done();
      });
      s.on('close', done);
    }),
    ms,
    'the socket to end',
  );
}

function echo(s: net.Socket): void {
  s.pipe(s);
}

// The raw path (raw.ts: libuv handles, no net.Socket) and the two socket paths under the same tests.
for (const { mode, fastPath, raw } of DATA_PATH_MODES) {
  t.test(`${mode}: sockets read the way the mode says`, async (t) => {
    const proxy = await withProxy(t, await withBackend(t, echo), { fastPath, raw });
    const c = await connectTo(proxy.port);
    c.end('ping');
    t.equal((await readAll(c)).data, 'ping');
    t.same(proxy.fastSockets, [fastPath, fastPath], 'client and backend sockets');
  });

  for (const way of ['client → backend', 'backend → client'] as const) {
    t.test(`${mode}: backpressure ${way}: a reader that stops stalls the writer, nothing lost`, async (t) => {
      const total = 96 << 20;
      const up = way === 'client → backend';
      let backendSocket: net.Socket | null = null;
      let sentHash: Promise<string> | null = null;
      const port = await withBackend(t, (s) => {
        backendSocket = s;
        s.pause();
        if (!up) sentHash = sendStream(s, 77, total);
      });
      const proxy = await withProxy(t, port, { fastPath, raw });
      const c = await connectTo(proxy.port);
      if (up) sentHash = sendStream(c, 77, total);
      else c.pause();
      await waitFor(() => proxy.links.size === 1 && backendSocket !== null, 5000, 'the session');
      const l = [...proxy.links][0];
      const forwarded = (): number => (up ? l.bytesIn : l.bytesOut);
      // Forwarding stops once kernel buffers and one high-water mark are full.
      let last = -1;
      let steadySince = Date.now();
      await waitFor(
        () => {
          const now = forwarded();
          if (now !== last) {
            last = now;
            steadySince = Date.now();
          }
          return now > 0 && Date.now() - steadySince > 500;
        },
        20_000,
        'forwarding to stall',
      );
      t.ok(last < 64 << 20, `the proxy stalled after ${(last / 1048576).toFixed(1)} MB of ${total >> 20} MB`);
      const reader = up ? (backendSocket as unknown as net.Socket) : c;
      const got = receiveStream(reader);
      reader.resume();
      if (up) (backendSocket as unknown as net.Socket).end();
      else c.end();
      const r = await within(got, 30_000, 'the rest of the stream');
      t.equal(r.bytes, total, 'every byte arrived once the reader resumed');
      t.equal(r.hash, await sentHash, 'same hash');
    });
  }

  t.test(
    `${mode}: half-close client → backend: the FIN is forwarded and the reply still arrives`,
    async (t) => {
      const port = await withBackend(t, (s) => {
        const chunks: Buffer[] = [];
        s.on('data', (c: Buffer) => chunks.push(c));
        // Answers only after the client half-closed: proves the FIN went through and the way back stays open.
        s.on('end', () => setTimeout(() => s.end(`got ${Buffer.concat(chunks).length} bytes then FIN`), 50));
      });
      const proxy = await withProxy(t, port, { fastPath, raw });
      const c = await connectTo(proxy.port);
      c.end('hello');
      const r = await readAll(c);
      t.equal(r.data, 'got 5 bytes then FIN');
      t.ok(r.ended, 'the backend FIN reached the client');
      await waitFor(() => proxy.closes.length === 1, 5000, 'onClose');
      t.same(proxy.closes, [{ error: null }]);
    },
  );

  t.test(
    `${mode}: half-close backend → client: the client still sends after the backend ended`,
    async (t) => {
      let backendGot = '';
      let backendEnded = false;
      const port = await withBackend(t, (s) => {
        s.end('bye-from-backend');
        s.on('data', (c: Buffer) => (backendGot += c.toString()));
        s.on('end', () => (backendEnded = true));
      });
      const proxy = await withProxy(t, port, { fastPath, raw });
      const c = await connectTo(proxy.port);
      const r = readAll(c);
      await waitFor(() => c.readableEnded, 5000, 'the client to see the FIN');
      c.write('late-1 ');
      await new Promise((resolve) => setTimeout(resolve, 30));
      c.end('late-2');
      t.equal((await r).data, 'bye-from-backend');
      await waitFor(() => backendEnded, 5000, 'the backend to see the client FIN');
      t.equal(backendGot, 'late-1 late-2');
      await waitFor(() => proxy.closes.length === 1, 5000, 'onClose');
      t.same(proxy.closes, [{ error: null }], 'onClose once, no error');
    },
  );

  // The raw path has no socket to put a timer on: its idle timeout is the session table's
  // wheel, tested through the daemon (proxy-data.test.ts, sessions.test.ts).
  if (!raw)
    t.test(`${mode}: an idle timer on the client sees the member's writes as activity`, async (t) => {
      const port = await withBackend(t, (s) => {
        let n = 0;
        const timer = setInterval(() => {
          if (s.destroyed) return clearInterval(timer);
          s.write('tick.');
          if (++n === 24) {
            clearInterval(timer);
            s.end();
          }
        }, 50);
      });
      const proxy = await withProxy(t, port, { fastPath, idleMs: 300 });
      const c = await connectTo(proxy.port);
      // The client never writes: only the member's bytes (backend → client) keep the session busy.
      const r = await readAll(c, 10_000);
      t.equal(r.data, 'tick.'.repeat(24), 'every tick arrived');
      t.ok(r.ended, 'ended by the member, not cut');
      t.same(proxy.idleCuts, [], 'never cut as idle');
      c.destroy();
    });

  if (!raw)
    t.test(`${mode}: an idle timer on the client cuts a quiet session`, async (t) => {
      const proxy = await withProxy(t, await withBackend(t, () => undefined), { fastPath, idleMs: 300 });
      const c = await connectTo(proxy.port);
      const started = Date.now();
      await readAll(c, 5000);
      t.equal(proxy.idleCuts.length, 1, 'cut once');
      t.ok(Date.now() - started >= 250, 'not before the idle timeout');
    });

  t.test(`${mode}: destroy() cuts both sockets and reports once`, async (t) => {
    let backendClosed = false;
    const port = await withBackend(t, (s) => {
      // The proxy's close arrives as a FIN (or a reset): either ends this side.
      s.on('end', () => (backendClosed = true));
      s.on('close', () => (backendClosed = true));
      s.write('hi');
    });
    const proxy = await withProxy(t, port, { fastPath, raw });
    const c = await connectTo(proxy.port);
    const r = readAll(c);
    await waitFor(() => proxy.links.size === 1, 5000, 'the link');
    const l = [...proxy.links][0];
    await waitFor(() => l.bytesOut === 2, 5000, 'the greeting to pass');
    l.destroy();
    l.destroy();
    t.equal((await r).data, 'hi');
    await waitFor(() => backendClosed && proxy.closes.length === 1, 5000, 'both sides closed');
    await new Promise((resolve) => setTimeout(resolve, 50));
    t.equal(proxy.closes.length, 1, 'onClose exactly once');
    t.equal(l.bytesOut, 2);
    t.equal(l.bytesIn, 0);
  });

  t.test(`${mode}: a backend reset mid-stream ends that session only`, async (t) => {
    const port = await withBackend(t, (s) => {
      let first = true;
      s.on('data', (c: Buffer) => {
        // The "victim" session announces itself with a first byte of 0xff. Only a session's first
        // chunk counts: a later chunk of the healthy random stream may start with 0xff too.
        if (first && c[0] === 0xff) setTimeout(() => s.resetAndDestroy(), 20);
        first = false;
      });
      s.pipe(s);
    });
    const proxy = await withProxy(t, port, { fastPath, raw });
    const healthy = await connectTo(proxy.port);
    const healthyDown = receiveStream(healthy, { slow: true });
    const sent = sendStream(healthy, 42, 6 << 20);
    const victim = await connectTo(proxy.port);
    victim.on('error', () => undefined);
    victim.write(Buffer.from([0xff]));
    const victimSend = sendStream(victim, 43, 50 << 20, false);
    const victimClosed = within(
      new Promise((resolve) => victim.on('close', resolve)),
      10_000,
      'the victim to close',
    );
    await victimClosed;
    await victimSend;
    const r = await within(healthyDown, 20_000, 'the healthy session');
    t.equal(r.bytes, 6 << 20, 'healthy session: every byte');
    t.equal(r.hash, await sent, 'healthy session: same hash');
    await waitFor(() => proxy.closes.length === 2, 5000, 'both links to report');
    const errors = proxy.closes.map((c) => (c.error as NodeJS.ErrnoException | null)?.code ?? null);
    t.ok(
      errors.includes('ECONNRESET') || errors.includes('EPIPE'),
      `the victim's link reports the reset (${errors})`,
    );
    t.ok(errors.includes(null), 'the healthy link closed without error');
  });

  t.test(`${mode}: a client reset mid-stream closes its backend`, async (t) => {
    let backendClosed = false;
    const port = await withBackend(t, (s) => {
      s.on('close', () => (backendClosed = true));
      void sendStream(s, 9, 64 << 20);
    });
    const proxy = await withProxy(t, port, { fastPath, raw });
    const c = await connectTo(proxy.port);
    let got = 0;
    c.on('data', (d: Buffer) => {
      got += d.length;
      if (got > 1 << 20 && !c.destroyed) c.resetAndDestroy();
    });
    c.on('error', () => undefined);
    await waitFor(() => backendClosed, 10_000, 'the backend to close');
    await waitFor(() => proxy.closes.length === 1, 5000, 'onClose');
    t.pass('backend closed after the client reset');
  });

  t.test(`${mode}: a held client's early bytes arrive first and in order`, async (t) => {
    const port = await withBackend(t, echo);
    const proxy = await withProxy(t, port, { fastPath, raw, holdMs: 150 });
    const c = await connectTo(proxy.port);
    c.write('one,');
    c.write('two,');
    await new Promise((resolve) => setTimeout(resolve, 50));
    c.end('three');
    t.equal((await readAll(c)).data, 'one,two,three');
  });

  t.test(`${mode}: 300 concurrent echo sessions, each intact`, async (t) => {
    const proxy = await withProxy(t, await withBackend(t, echo), { fastPath, raw });
    const one = async (i: number): Promise<boolean> => {
      const c = await connectTo(proxy.port, 10_000);
      const down = receiveStream(c);
      const sent = await sendStream(c, 5000 + i, 20_000 + i * 37);
      const r = await down;
      return r.hash === sent && r.bytes === 20_000 + i * 37;
    };
    const ok = await within(
      Promise.all(Array.from({ length: 300 }, (_, i) => one(i))),
      30_000,
      '300 sessions',
    );
    t.equal(ok.filter(Boolean).length, 300);
    await waitFor(() => proxy.closes.length === 300, 5000, 'every link to report');
    t.equal(proxy.links.size, 0, 'no link left');
  });

  // Socket-level (link, connectBackend): the same for the raw mode as for the fast one.
  if (!raw)
    t.test(
      `${mode}: link() on a client that already vanished reports once and closes the backend`,
      async (t) => {
        let backendClosed = false;
        const port = await withBackend(t, (s) => {
          s.on('end', () => (backendClosed = true));
          s.on('close', () => (backendClosed = true));
        });
        const server = createProxyServer(() => undefined, { fastPath, raw });
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
        const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
        const c = await connectTo((server.address() as net.AddressInfo).port);
        const client = await accepted;
        client.destroy();
        c.destroy();
        const backend = await connectBackend({ host: '127.0.0.1', port }, 5000, { fastPath, raw });
        const closes: unknown[] = [];
        link(client, backend, { onClose: (r) => closes.push(r) });
        await waitFor(() => backendClosed && closes.length === 1, 5000, 'the backend to close');
        await new Promise((resolve) => setTimeout(resolve, 50));
        t.equal(closes.length, 1, 'onClose exactly once');
      },
    );

  if (!raw)
    t.test(`${mode}: connectBackend rejects a refused connect with its errno`, async (t) => {
      const probe = net.createServer();
      await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
      const port = (probe.address() as net.AddressInfo).port;
      await new Promise<void>((resolve) => probe.close(() => resolve()));
      const err = await connectBackend({ host: '127.0.0.1', port }, 5000, { fastPath, raw }).then(
        () => null,
        (e: unknown) => e,
      );
      t.ok(err instanceof ConnectError);
      t.equal((err as ConnectError).code, 'ECONNREFUSED');
    });
}

t.test('fast path: bytes read before link() are kept and forwarded first', async (t) => {
  const port = await withBackend(t, (s) => s.end('early bytes'));
  let received = '';
  let ended = false;
  const probePort = await withBackend(t, (s) => {
    s.on('data', (c: Buffer) => (received += c.toString()));
    s.on('end', () => {
      ended = true;
      s.end();
    });
  });
  // Resumed before any link: its reads land with no sink and must be kept, not dropped.
  const backend = await connectBackend({ host: '127.0.0.1', port }, 5000, { fastPath: true });
  backend.resume();
  await new Promise((resolve) => setTimeout(resolve, 100));
  const out = await connectBackend({ host: '127.0.0.1', port: probePort }, 5000, { fastPath: true });
  const closes: unknown[] = [];
  link(out, backend, { onClose: (r) => closes.push(r) });
  await waitFor(() => ended, 5000, 'the FIN after the early bytes');
  t.equal(received, 'early bytes');
  await waitFor(() => closes.length === 1, 5000, 'onClose');
});

t.test('MIRRORLB_DATAPATH=plain at start turns the fast path off', async (t) => {
  const saved = process.env.MIRRORLB_DATAPATH;
  t.teardown(() => {
    if (saved === undefined) delete process.env.MIRRORLB_DATAPATH;
    else process.env.MIRRORLB_DATAPATH = saved;
  });
  type Sockets = typeof import('../src/proxy/sockets.js');
  const port = await withBackend(t, echo);
  for (const [env, expected] of [
    ['plain', false],
    ['fast', true],
  ] as const) {
    process.env.MIRRORLB_DATAPATH = env;
    // Fresh module instances read the environment as a starting daemon would.
    const fastpath =
      await t.mockImport<typeof import('../src/proxy/fastpath.js')>('../src/proxy/fastpath.js');
    const fresh = await t.mockImport<Sockets>('../src/proxy/sockets.js', {
      '../src/proxy/fastpath.js': fastpath,
    });
    const server = fresh.createProxyServer((s) => s.destroy());
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const c = await connectTo((server.address() as net.AddressInfo).port);
    t.equal(fresh.isFastSocket(await accepted), expected, `accepted socket with MIRRORLB_DATAPATH=${env}`);
    const backend = await fresh.connectBackend({ host: '127.0.0.1', port }, 5000);
    t.equal(fresh.isFastSocket(backend), expected, `backend socket with MIRRORLB_DATAPATH=${env}`);
    backend.destroy();
    c.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

t.test('the accept hook keeps the server honest: connections counted, close waits for them', async (t) => {
  const proxy = await withProxy(t, await withBackend(t, echo), { fastPath: true });
  const c = await connectTo(proxy.port);
  c.write('a');
  await waitFor(() => proxy.links.size === 1, 5000, 'the link');
  const count = await new Promise<number>((resolve, reject) =>
    proxy.server.getConnections((err, n) => (err ? reject(err) : resolve(n))),
  );
  t.equal(count, 1, 'getConnections sees the hooked socket');
  let closed = false;
  proxy.server.close(() => (closed = true));
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.notOk(closed, 'close waits while a session is open');
  c.end();
  await waitFor(() => closed, 5000, 'the server to close after the session');
  t.ok(isFast(c) === false, 'the test client itself is a plain socket');
});

t.test('onListening reports whether accepted sockets take the fast path', async (t) => {
  for (const fastPath of [true, false]) {
    const seen: boolean[] = [];
    const server = createProxyServer((s) => s.destroy(), { fastPath, onListening: (ok) => seen.push(ok) });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => server.close(() => resolve()));
    // A listener that is closed and opened again gets a new handle, hooked again.
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    const c = await connectTo((server.address() as net.AddressInfo).port);
    t.equal(isFast(await accepted), fastPath, `re-listened server, fastPath ${fastPath}`);
    c.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    t.same(seen, [fastPath, fastPath]);
  }
});

t.test('a socket factory that throws costs that client only: error event, connection closed', async (t) => {
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
  let calls = 0;
  hookAccept(server, (handle) => {
    if (++calls === 1) throw new Error('factory failed');
    return new net.Socket({ handle, allowHalfOpen: true } as net.SocketConstructorOpts);
  });
  const errors: string[] = [];
  server.on('error', (e: Error) => errors.push(e.message));
  server.on('connection', (s: net.Socket) => s.end('welcome'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const port = (server.address() as net.AddressInfo).port;
  const first = await connectTo(port);
  const r1 = await readAll(first);
  t.equal(r1.data, '', 'the first client is closed without a byte');
  t.same(errors, ['factory failed']);
  const second = await connectTo(port);
  t.equal((await readAll(second)).data, 'welcome', 'the next client is served');
  first.destroy();
  second.destroy();
});

t.test('the accept hook declines a server without the expected internals', async (t) => {
  const fake = new EventEmitter() as unknown as net.Server;
  const results: boolean[] = [];
  hookAccept(
    fake,
    () => new net.Socket(),
    (ok) => results.push(ok),
  );
  fake.emit('listening');
  t.same(results, [false]);
});

for (const fastPath of [true, false]) {
  const mode = fastPath ? 'fast path' : 'plain fallback';
  // A client that was read while held (a fast socket is, so a reset is seen) and sent its FIN
  // after leaving the hold queue but before its backend connect completed: its 'end' has been
  // emitted before link() listens. The FIN must still reach the member, or both sides stay open
  // for ever (seen as leaked sessions when connects were retried under load).
  t.test(`${mode}: a client whose FIN came before link() has it forwarded`, async (t) => {
    let backendEnded = false;
    const port = await withBackend(t, (s) => {
      s.resume();
      s.on('end', () => {
        backendEnded = true;
        s.end();
      });
    });
    let accepted: net.Socket | null = null;
    const server = createProxyServer((s) => (accepted = s), { fastPath });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const c = await connectTo((server.address() as net.AddressInfo).port);
    c.on('error', () => undefined);
    await waitFor(() => accepted !== null, 5000, 'the accept');
    const client = accepted as unknown as net.Socket;
    let clientEnded = false;
    client.once('end', () => (clientEnded = true));
    client.resume();
    c.end();
    await waitFor(() => clientEnded, 5000, "the client's FIN read before any link");
    const backend = await connectBackend({ host: '127.0.0.1', port }, 5000, { fastPath });
    const closes: unknown[] = [];
    link(client, backend, { onClose: (r) => closes.push(r) });
    await waitFor(() => backendEnded, 5000, 'the FIN forwarded to the member');
    await waitFor(() => closes.length === 1, 5000, 'the session to close');
    t.ok(client.destroyed && backend.destroyed, 'both sockets closed');
  });
}
