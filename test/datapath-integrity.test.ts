import t from 'tap';
import type net from 'node:net';
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

/**
 * Hashed bulk transfers through the data path under backpressure, many sessions at once,
 * on both read paths. The fast path shares one read buffer between every socket; a write
 * that stays pending while that buffer is read into again corrupts the stream,
 * so slow readers on both ends force partial writes while other sessions keep reading.
 */

interface BackendResult {
  upHash: string;
  upBytes: number;
  downHash: string;
}

/**
 * Each connection starts with an 8-byte header (download seed, download size). The backend
 * answers with that stream while hashing the upload, reading slowly now and then.
 */
async function withStreamBackend(t: Tap.Test, results: Map<number, BackendResult>): Promise<number> {
  return withBackend(t, (s: net.Socket) => {
    let head = Buffer.alloc(0);
    let seed = 0;
    let downHash: Promise<string> | null = null;
    const rest: Buffer[] = [];
    const onHead = (c: Buffer): void => {
      head = Buffer.concat([head, c]);
      if (head.length < 8) return;
      s.off('data', onHead);
      s.pause();
      seed = head.readUInt32BE(0);
      const size = head.readUInt32BE(4);
      rest.push(head.subarray(8));
      downHash = sendStream(s, seed, size);
      const up = receiveStream(s, { slow: true, seed });
      // The bytes after the header in the first chunk are part of the upload.
      if (rest[0].length > 0) s.unshift(rest[0]);
      s.resume();
      void up.then(async (r) => {
        results.set(seed, {
          upHash: r.hash,
          upBytes: r.bytes,
          downHash: await (downHash as Promise<string>),
        });
      });
    };
    s.on('data', onHead);
  });
}

async function session(
  port: number,
  seed: number,
  upBytes: number,
  downBytes: number,
): Promise<{ upHash: string; down: { bytes: number; hash: string; ended: boolean } }> {
  const c = await connectTo(port);
  const head = Buffer.alloc(8);
  head.writeUInt32BE(seed, 0);
  head.writeUInt32BE(downBytes, 4);
  c.write(head);
  const down = receiveStream(c, { slow: true, seed: seed + 1 });
  const upHash = await sendStream(c, seed + 1000, upBytes);
  return { upHash, down: await down };
}

// The raw path (raw.ts) reads into the same shared buffer as the fast path: the same hazard.
for (const { mode, fastPath, raw } of DATA_PATH_MODES) {
  t.test(`${mode}: 6 sessions at once, 8 MB each way each, slow readers, hashes match`, async (t) => {
    const results = new Map<number, BackendResult>();
    const backendPort = await withStreamBackend(t, results);
    const proxy = await withProxy(t, backendPort, { fastPath, raw });
    const sizes = [8, 8, 8, 8, 8, 8].map((mb, i) => ({
      seed: 100 + i * 7,
      up: mb << 20,
      down: (mb << 20) - i * 977,
    }));
    const runs = await within(
      Promise.all(sizes.map((s) => session(proxy.port, s.seed, s.up, s.down))),
      45_000,
      'six bulk sessions',
    );
    await waitFor(() => results.size === sizes.length, 5000, 'the backend to finish every session');
    t.equal(proxy.fastSockets.length, 12);
    t.ok(
      proxy.fastSockets.every((f) => f === fastPath),
      `every socket read through the ${mode}`,
    );
    for (const [i, s] of sizes.entries()) {
      const r = runs[i];
      const b = results.get(s.seed);
      t.ok(b, `backend saw session ${s.seed}`);
      t.equal(r.down.bytes, s.down, `session ${s.seed}: download length`);
      t.ok(r.down.ended, `session ${s.seed}: download ended with a FIN`);
      t.equal(r.down.hash, b?.downHash, `session ${s.seed}: download hash`);
      t.equal(b?.upBytes, s.up, `session ${s.seed}: upload length`);
      t.equal(b?.upHash, r.upHash, `session ${s.seed}: upload hash`);
    }
    await waitFor(() => proxy.closes.length === sizes.length, 5000, 'every link to report its close');
    t.same(
      proxy.closes.map((c) => c.error),
      sizes.map(() => null),
      'every link closed cleanly, once',
    );
  });

  t.test(`${mode}: one 40 MB download to a slow client while 30 small sessions come and go`, async (t) => {
    const results = new Map<number, BackendResult>();
    const backendPort = await withStreamBackend(t, results);
    const proxy = await withProxy(t, backendPort, { fastPath, raw });
    const big = session(proxy.port, 1, 1 << 20, 40 << 20);
    const small: Array<Promise<{ upHash: string; down: { bytes: number; hash: string } }>> = [];
    for (let i = 0; i < 30; i++) {
      small.push(session(proxy.port, 1000 + i, 50_000 + i * 1000, 200_000 + i * 5000));
      await new Promise((r) => setTimeout(r, 5));
    }
    const [bigRun, smallRuns] = await within(Promise.all([big, Promise.all(small)]), 45_000, 'all sessions');
    await waitFor(() => results.size === 31, 5000, 'the backend to finish every session');
    t.equal(bigRun.down.bytes, 40 << 20);
    t.equal(bigRun.down.hash, results.get(1)?.downHash, 'big download hash');
    t.equal(results.get(1)?.upHash, bigRun.upHash, 'big upload hash');
    let ok = 0;
    for (const [i, r] of smallRuns.entries()) {
      const b = results.get(1000 + i);
      if (b && r.down.hash === b.downHash && b.upHash === r.upHash && r.down.bytes === 200_000 + i * 5000)
        ok++;
    }
    t.equal(ok, 30, 'every small session intact both ways');
  });
}
