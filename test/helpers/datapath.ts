import { createHash } from 'node:crypto';
import net from 'node:net';
import { isFast } from '../../src/proxy/fastpath.js';
import { link, type Link } from '../../src/proxy/link.js';
import { rawDial, rawLink, type RawAttempt, type RawTcp } from '../../src/proxy/raw.js';
import { connectBackend, createProxyServer, socketForHandle } from '../../src/proxy/sockets.js';

type Test = { teardown(fn: () => unknown): void };

/** The raw path (raw.ts: libuv handles, no net.Socket) and the two socket paths, for tests that run each. */
export const DATA_PATH_MODES = [
  { mode: 'raw path', fastPath: true, raw: true },
  { mode: 'fast path', fastPath: true, raw: false },
  { mode: 'plain fallback', fastPath: false, raw: false },
] as const;

/** What a data-path proxy under test saw: its links, their close reports, how its sockets read. */
export interface ProxyUnderTest {
  readonly port: number;
  readonly links: Set<Link>;
  readonly closes: Array<{ error: Error | null }>;
  /** For each accepted client and each backend: did it read through the fast path? */
  readonly fastSockets: boolean[];
  readonly server: net.Server;
  /** Links cut by the idle timeout. */
  readonly idleCuts: number[];
}

export interface ProxyOptions {
  readonly fastPath?: boolean;
  /**
   * The raw path (raw.ts) as the router's dialer uses it (src/mirror/dial.ts): each accepted handle is taken before any
   * socket is made, dialled with rawDial and linked with rawLink. Implies the fast path.
   */
  readonly raw?: boolean;
  /** Delay before connecting the backend (a client held while there is no primary). */
  readonly holdMs?: number;
  /** An idle timeout on the client socket that cuts the link, as the router's idle_timeout does. */
  readonly idleMs?: number;
}

/**
 * The smallest proxy built from the data-path modules exactly as the router uses them:
 * a paused accepted socket, a backend connect, then `link()`.
 */
export async function withProxy(
  t: Test,
  backendPort: number,
  opts: ProxyOptions = {},
): Promise<ProxyUnderTest> {
  const links = new Set<Link>();
  const closes: Array<{ error: Error | null }> = [];
  const fastSockets: boolean[] = [];
  const idleCuts: number[] = [];
  const dpOpts = opts.fastPath === undefined ? {} : { fastPath: opts.fastPath };
  const clients = new Set<net.Socket>();
  const rawPending = new Set<RawTcp>();
  const dialer = {
    dialed(a: RawAttempt<string>, status: number): void {
      rawPending.delete(a.client);
      if (status !== 0) {
        a.backend.close();
        a.client.close();
        return;
      }
      fastSockets.push(true, true);
      const l: Link = rawLink(
        a.client,
        a.backend,
        {
          onClose: (r) => {
            closes.push(r);
            links.delete(l);
          },
        },
        socketForHandle,
      );
      links.add(l);
    },
  };
  const takeHandle = opts.raw
    ? (handle: unknown): boolean => {
        const h = handle as RawTcp;
        rawPending.add(h);
        const dial = (): void => {
          const a = rawDial(h, '127.0.0.1', 4, backendPort, 'm', Infinity, dialer);
          if (typeof a === 'string') {
            rawPending.delete(h);
            h.close();
          }
        };
        if (opts.holdMs) setTimeout(dial, opts.holdMs);
        else dial();
        return true;
      }
    : undefined;
  const server = createProxyServer(
    (client) => {
      client.on('error', () => undefined);
      clients.add(client);
      client.on('close', () => clients.delete(client));
      fastSockets.push(isFast(client));
      const dial = (): void => {
        connectBackend({ host: '127.0.0.1', port: backendPort }, 5000, dpOpts).then(
          (backend) => {
            fastSockets.push(isFast(backend));
            if (client.destroyed) return void backend.destroy();
            const l: Link = link(client, backend, {
              onClose: (r) => {
                closes.push(r);
                links.delete(l);
              },
            });
            links.add(l);
            if (opts.idleMs) {
              client.setTimeout(opts.idleMs, () => {
                idleCuts.push(Date.now());
                l.destroy();
              });
            }
          },
          () => client.destroy(),
        );
      };
      if (opts.holdMs) setTimeout(dial, opts.holdMs);
      else dial();
    },
    { ...dpOpts, ...(takeHandle ? { takeHandle, fastPath: true } : {}) },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const l of links) l.destroy();
    for (const c of clients) c.destroy();
    for (const h of rawPending) h.close();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { port: (server.address() as net.AddressInfo).port, links, closes, fastSockets, server, idleCuts };
}

/** A backend whose behaviour the test scripts: `onSocket` gets each accepted socket. */
export async function withBackend(t: Test, onSocket: (s: net.Socket) => void): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    onSocket(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return (server.address() as net.AddressInfo).port;
}

export function connectTo(port: number, timeoutMs = 5000): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('connect timed out'));
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      resolve(s);
    });
    s.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Rejects after `ms` unless `p` settles first (every wait in these tests is bounded). */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Polls `cond` every 10 ms; rejects once `ms` have passed without it holding, and then polls
 * no more (a condition left polling would run on into later tests, or past teardown).
 */
export function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = performance.now() + ms;
  return new Promise<void>((resolve, reject) => {
    const check = (): void => {
      let ok: boolean;
      try {
        ok = cond();
      } catch (e) {
        return reject(e as Error);
      }
      if (ok) return resolve();
      const left = deadline - performance.now();
      if (left <= 0) return reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
      setTimeout(check, Math.min(10, left));
    };
    check();
  });
}

/**
 * A deterministic byte stream (xorshift), so a sender and a checker can agree on
 * megabytes of content without keeping it in memory.
 */
export class ByteStream {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0 || 1;
  }
  next(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    let x = this.state;
    for (let i = 0; i < n; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      b[i] = x & 0xff;
    }
    this.state = x;
    return b;
  }
}

/**
 * Sends `total` bytes of the seeded stream in random-sized writes, honouring backpressure,
 * then ends (unless `end` is false). Resolves with the sha256 of what was written.
 */
export async function sendStream(s: net.Socket, seed: number, total: number, end = true): Promise<string> {
  const src = new ByteStream(seed);
  const h = createHash('sha256');
  let rnd = seed;
  for (let left = total; left > 0 && !s.destroyed;) {
    rnd = (rnd * 1103515245 + 12345) >>> 0;
    const n = Math.min(left, 1 + (rnd % 150_000));
    left -= n;
    const chunk = src.next(n);
    h.update(chunk);
    if (!s.write(chunk)) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          s.off('drain', done);
          s.off('close', done);
          resolve();
        };
        s.on('drain', done);
        s.on('close', done);
      });
    }
  }
  if (end && !s.destroyed) s.end();
  return h.digest('hex');
}

export interface Received {
  bytes: number;
  hash: string;
  ended: boolean;
}

/**
 * Reads everything until end or close, hashing as it goes; when `slow`, it pauses now and
 * then so the sender's side backs up (backpressure through the proxy).
 */
export function receiveStream(
  s: net.Socket,
  opts: { slow?: boolean; seed?: number } = {},
): Promise<Received> {
  return new Promise((resolve) => {
    const h = createHash('sha256');
    let bytes = 0;
    let ended = false;
    let rnd = opts.seed ?? 7;
    s.on('data', (c: Buffer) => {
      h.update(c);
      bytes += c.length;
      if (opts.slow) {
        rnd = (rnd * 1103515245 + 12345) >>> 0;
        if (rnd % 8 === 0) {
          s.pause();
          setTimeout(() => s.resume(), 1 + (rnd % 3));
        }
      }
    });
    s.on('end', () => (ended = true));
    s.on('error', () => undefined);
    s.on('close', () => resolve({ bytes, hash: h.digest('hex'), ended }));
  });
}
