import t from 'tap';
import net from 'node:net';
import { getSystemErrorName } from 'node:util';
import { link } from '../src/proxy/link.js';
import { rawAvailable, rawDial, rawLink, type RawAttempt, type RawTcp } from '../src/proxy/raw.js';
import { connectBackend, createProxyServer, isFastSocket, socketForHandle } from '../src/proxy/sockets.js';
import { connectTo, waitFor, withBackend, within } from './helpers/datapath.js';

// The raw path's own rules (raw.ts): what happens at its edges, where a handle goes back to
// the socket path. Its data path is under test/datapath*.test.ts with every other mode.

t.ok(rawAvailable(), 'the raw path is available on this Node (the daemon logs data_path raw)');

/** A listener whose accepted handles are given to `take`, never made into sockets. */
async function rawServer(t: Tap.Test, take: (h: RawTcp) => void): Promise<number> {
  const server = createProxyServer(() => t.fail('no socket expected'), {
    fastPath: true,
    takeHandle: (h) => {
      take(h as RawTcp);
      return true;
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as net.AddressInfo).port;
}

type Dialed = { attempt: RawAttempt<string>; status: number };

function dialer(): { dialed(a: RawAttempt<string>, status: number): void; next: Promise<Dialed> } {
  let resolve!: (d: Dialed) => void;
  const next = new Promise<Dialed>((r) => (resolve = r));
  return { dialed: (attempt, status) => resolve({ attempt, status }), next };
}

t.test('a refused raw connect reports its errno, and the client becomes a working socket', async (t) => {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const closedPort = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const echoPort = await withBackend(t, (s) => s.pipe(s));
  const d = dialer();
  const port = await rawServer(t, (h) => {
    const a = rawDial(h, '127.0.0.1', 4, closedPort, 'm', Infinity, d);
    t.type(a, 'object', 'the connect started');
  });
  const c = await connectTo(port);
  c.write('before the socket existed;');
  const { attempt, status } = await within(d.next, 5000, 'the dial result');
  t.ok(status < 0, 'a negative status');
  t.equal(getSystemErrorName(status), 'ECONNREFUSED');
  attempt.backend.close();
  // The socket path takes over the untouched client handle: nothing it sent is lost.
  const socket = socketForHandle(attempt.client);
  t.ok(isFastSocket(socket), 'a fast socket');
  const backend = await connectBackend({ host: '127.0.0.1', port: echoPort }, 5000);
  link(socket, backend, { onClose: () => undefined });
  let got = '';
  c.on('data', (b: Buffer) => (got += b.toString()));
  c.end('after');
  await waitFor(() => got === 'before the socket existed;after', 5000, 'the echo');
  t.pass('every byte arrived through the socket path');
});

t.test('detachClient: a member that never answered gives the client back with its bytes', async (t) => {
  // The first member reads and never answers (a hung member); the second echoes.
  let silentGot = '';
  const silentPort = await withBackend(t, (s) => s.on('data', (b: Buffer) => (silentGot += b.toString())));
  const echoPort = await withBackend(t, (s) => s.pipe(s));
  const d = dialer();
  const port = await rawServer(t, (h) => void rawDial(h, '127.0.0.1', 4, silentPort, 'm', Infinity, d));
  const c = await connectTo(port);
  const { attempt, status } = await within(d.next, 5000, 'the dial');
  t.equal(status, 0);
  const closes: unknown[] = [];
  const l = rawLink(attempt.client, attempt.backend, { onClose: (r) => closes.push(r) }, socketForHandle);
  c.write('hello ');
  await waitFor(() => silentGot === 'hello ', 5000, 'the silent member to get the first bytes');
  const detached = l.detachClient();
  t.ok(detached, 'given back');
  t.same(closes, [{ error: null }], 'the session reported closed once');
  t.equal(l.detachClient(), null, 'only once');
  t.same(Buffer.concat(detached!.replay).toString(), 'hello ', 'its bytes so far, for replay');
  const backend = await connectBackend({ host: '127.0.0.1', port: echoPort }, 5000);
  for (const b of detached!.replay) backend.write(b);
  link(detached!.socket, backend, { onClose: () => undefined });
  let got = '';
  c.on('data', (b: Buffer) => (got += b.toString()));
  c.end('world');
  await waitFor(() => got === 'hello world', 5000, 'the echo from the second member');
  t.pass('replayed bytes first, then the rest, in order');
});

t.test('detachClient: null once the member answered', async (t) => {
  const port0 = await withBackend(t, (s) => s.write('greeting'));
  const d = dialer();
  const port = await rawServer(t, (h) => void rawDial(h, '127.0.0.1', 4, port0, 'm', Infinity, d));
  const c = await connectTo(port);
  let got = '';
  c.on('data', (b: Buffer) => (got += b.toString()));
  const { attempt } = await within(d.next, 5000, 'the dial');
  const closes: unknown[] = [];
  const l = rawLink(attempt.client, attempt.backend, { onClose: (r) => closes.push(r) }, socketForHandle);
  await waitFor(() => got === 'greeting', 5000, 'the greeting');
  t.equal(l.detachClient(), null, 'a member that answered keeps its client');
  t.equal(l.bytesOut, 8);
  l.destroy();
  l.destroy();
  t.equal(closes.length, 1, 'destroy reports once');
  // Half-open allowed on the test client: the FIN shows as 'end'.
  await within(new Promise((r) => c.once('end', r)), 5000, 'the FIN to reach the client');
});

t.test('MIRRORLB_DATAPATH=stream or plain at start turns the raw path off', async (t) => {
  const saved = process.env.MIRRORLB_DATAPATH;
  t.teardown(() => {
    if (saved === undefined) delete process.env.MIRRORLB_DATAPATH;
    else process.env.MIRRORLB_DATAPATH = saved;
  });
  for (const [env, expected] of [
    ['stream', false],
    ['plain', false],
    ['raw', true],
  ] as const) {
    process.env.MIRRORLB_DATAPATH = env;
    // The bindings are checked once, when raw-bindings.ts loads: a fresh copy of it sees the variable.
    const fresh = await t.mockImport<typeof import('../src/proxy/raw-bindings.js')>(
      '../src/proxy/raw-bindings.js',
    );
    t.equal(fresh.rawAvailable(), expected, `MIRRORLB_DATAPATH=${env}`);
  }
});
