import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { yamlFor } from './helpers/balancer.js';
import { runCli, type CliProc } from './helpers/cli-proc.js';
import { within } from './helpers/http.js';
import { connect, readGreeting, readUpTo, withSim } from './helpers/sim.js';

// Which data path the daemon takes on the Node.js that runs this file, against what this
// Node's internals can really do. The raw path and the accept hook rest on Node's internal
// bindings (src/proxy/raw.ts, accept-hook.ts), which a Node release may change; the daemon
// must then fall back, and say so. The probes below use those internals themselves, with
// code of their own (nothing from src/proxy), and move bytes through them: the expected path
// is what works here, not what the daemon's own self-check concluded.
// `npm run test:node-matrix` runs this file on each supported Node line and sets
// MIRRORLB_EXPECT_NODE to the major it meant to run.

const expectedMajor = process.env.MIRRORLB_EXPECT_NODE;
t.comment(`node ${process.version} (${process.execPath})`);
if (expectedMajor !== undefined) {
  t.equal(process.version.split('.')[0], `v${expectedMajor}`, `this test runs on Node ${expectedMajor}`);
}

type Probe = { ok: true } | { ok: false; why: string };

/** Settles with the probe's outcome, or a failure after `ms` (a probe that hangs has failed). */
function bounded(ms: number, body: (done: (p: Probe) => void) => void | Promise<void>): Promise<Probe> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ ok: false, why: `no outcome in ${ms} ms` }), ms);
    const done = (p: Probe): void => {
      clearTimeout(timer);
      resolve(p);
    };
    Promise.resolve()
      .then(() => body(done))
      .catch((err: unknown) => done({ ok: false, why: String((err as Error)?.message ?? err) }));
  });
}

async function listening(server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

/**
 * The accept internals: a listening server's libuv handle has an `onconnection` callback that
 * can be replaced, gets each accepted client's handle, and the server counts connections in
 * `_connections` (what the daemon's hook keeps up to date).
 */
function probeAccept(): Promise<Probe> {
  const server = net.createServer();
  return bounded(5000, async (done) => {
    const port = await listening(server);
    const internals = server as unknown as {
      _handle?: { onconnection?: (err: number, h: unknown) => void } | null;
      _connections?: unknown;
    };
    const handle = internals._handle;
    const original = handle?.onconnection;
    if (!handle || typeof original !== 'function') return done({ ok: false, why: 'no _handle.onconnection' });
    let accepted: unknown = null;
    handle.onconnection = function (this: unknown, err: number, h: unknown): void {
      accepted = h;
      original.call(this, err, h);
    };
    server.once('connection', (s: net.Socket) => {
      const readable = typeof (accepted as { readStart?: unknown } | null)?.readStart === 'function';
      const counted = internals._connections === 1;
      s.destroy();
      if (!readable) done({ ok: false, why: 'the accepted handle is not a stream handle' });
      else if (!counted) done({ ok: false, why: `_connections is ${String(internals._connections)}` });
      else done({ ok: true });
    });
    net.connect(port, '127.0.0.1').on('error', () => undefined);
  }).finally(() => server.close());
}

/**
 * The TCP and stream bindings: a handle made from `tcp_wrap.TCP` connects, reads into a
 * buffer of ours (the read's size in `streamBaseState`), and writes with a `WriteWrap`.
 */
function probeBindings(): Promise<Probe> {
  let server: net.Server | null = null;
  let handle: { close(): void } | null = null;
  return bounded(5000, async (done) => {
    type Req = Record<string, unknown>;
    type Handle = {
      connect(req: Req, host: string, port: number): number;
      useUserBuffer(b: Buffer): void;
      readStart(): number;
      writeBuffer(req: Req, b: Buffer): number;
      close(): void;
      onread: () => void;
    };
    const binding = (process as unknown as { binding(n: string): Record<string, unknown> }).binding;
    const tcp = binding('tcp_wrap') as {
      TCP: new (type: number) => Handle;
      TCPConnectWrap: new () => Req;
      constants: { SOCKET: number };
    };
    const stream = binding('stream_wrap') as {
      WriteWrap: new () => Req;
      streamBaseState: Int32Array;
      kReadBytesOrError: number;
    };
    let answered = '';
    server = net.createServer((s) => {
      s.write('ping');
      s.on('data', (b: Buffer) => {
        answered += b.toString();
        if (answered === 'pong') done({ ok: true });
      });
      s.on('error', () => undefined);
    });
    const port = await listening(server);
    const h = new tcp.TCP(tcp.constants.SOCKET);
    handle = h;
    const buf = Buffer.alloc(1024);
    let read = '';
    const req = new tcp.TCPConnectWrap();
    req.oncomplete = (status: number): void => {
      if (status !== 0) return done({ ok: false, why: `connect status ${status}` });
      h.onread = (): void => {
        const n = stream.streamBaseState[stream.kReadBytesOrError]!;
        if (n <= 0) return done({ ok: false, why: `read status ${n}` });
        read += buf.toString('latin1', 0, n);
        if (read !== 'ping') return;
        const w = new stream.WriteWrap();
        w.handle = h;
        w.oncomplete = (): void => undefined;
        const err = h.writeBuffer(w, Buffer.from('pong'));
        if (err !== 0) done({ ok: false, why: `writeBuffer ${err}` });
      };
      h.useUserBuffer(buf);
      const err = h.readStart();
      if (err !== 0) done({ ok: false, why: `readStart ${err}` });
    };
    const err = h.connect(req, '127.0.0.1', port);
    if (err !== 0) done({ ok: false, why: `connect ${err}` });
  }).finally(() => {
    handle?.close();
    server?.close();
  });
}

/** Waits for the first log record that `match` accepts. */
async function logged(p: CliProc, match: (r: Record<string, unknown>) => boolean, what: string) {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const r = p.lines.find(match);
    if (r) return r;
    if (p.child.exitCode !== null) throw new Error(`the daemon exited (${p.child.exitCode}): ${p.stderr()}`);
    if (Date.now() > deadline) throw new Error(`no "${what}" log line in 15 s: ${p.stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

t.test(
  'the daemon takes the data path this Node can run, says why when not raw, and moves bytes',
  async (t) => {
    const accept = await probeAccept();
    const bindings = await probeBindings();
    t.comment(
      `probes: accept ${accept.ok ? 'works' : accept.why}; bindings ${bindings.ok ? 'work' : bindings.why}`,
    );
    const mode = process.env.MIRRORLB_DATAPATH;
    const expected =
      mode === 'plain' || !accept.ok ? 'plain' : mode === 'stream' || !bindings.ok ? 'fast' : 'raw';
    if (mode === undefined || mode === '') {
      // The machine's Node and every line of the matrix are expected to keep the raw path;
      // a fallback is not an error of the daemon, but it is one of our compatibility.
      t.ok(accept.ok, 'the accept internals work on this Node', accept);
      t.ok(bindings.ok, 'the TCP and stream bindings work on this Node', bindings);
    }

    const sim = await withSim(t, { name: 'ap1a', role: 'primary' });
    const dir = mkdtempSync(path.join(tmpdir(), 'mlb-node-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'mirrorlb.yml');
    writeFileSync(file, yamlFor({ ap1: [sim] }));
    const daemon = runCli(t, ['--config', file]);

    const line = await logged(daemon, (r) => r.msg === 'data path', 'data path');
    t.equal(line.data_path, expected, `data_path ${String(line.data_path)} on ${process.version}`);
    if (line.data_path === 'raw') t.equal(line.reason, null, 'no reason when raw');
    else t.match(line.reason, /\S/, 'a fallback says why');

    const listen = await logged(daemon, (r) => r.msg === 'listening' && r.mirror === 'ap1', 'listening');
    const port = Number(/:(\d+)$/.exec(String(listen.listen))![1]);
    const c = await connect(port);
    t.equal(await readGreeting(c, 10_000), 'ap1a', 'the client reaches the primary');
    // Larger than the shared read buffer and a socket buffer: reads, writes and backpressure.
    const payload = Buffer.alloc(4 * 1024 * 1024);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 7919) >>> 13;
    c.write(payload);
    const echoed = await readUpTo(c, payload.length, 20_000);
    t.equal(echoed.data.length, payload.length, 'every byte comes back');
    t.ok(echoed.data.equals(payload), 'unchanged');
    c.end();
    t.ok((await readUpTo(c, 1, 5000)).ended, 'the FIN goes through both ways');

    daemon.child.kill('SIGTERM');
    t.equal(await within(daemon.exited, 15_000, 'exit on SIGTERM'), 0, 'a clean exit on SIGTERM');
  },
);
