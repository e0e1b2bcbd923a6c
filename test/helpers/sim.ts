import http from 'node:http';
import net from 'node:net';
import { SimMember, type SimOptions } from '../../src/sim/member.js';

type Test = { teardown(fn: () => unknown): void };

/** Starts a simulated member on free loopback ports; stopped in the test's teardown. */
export async function withSim(
  t: Test,
  opts: Partial<SimOptions> & { name?: string } = {},
): Promise<SimMember> {
  const sim = new SimMember({ name: 'sim', superserverPort: 0, webPort: 0, ...opts });
  t.teardown(() => sim.stop());
  await sim.start();
  return sim;
}

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP request with a bounded wait; rejects with the socket error code or 'TIMEOUT'. */
export function httpRequest(
  port: number,
  path: string,
  opts: {
    method?: string;
    body?: string;
    timeoutMs?: number;
    host?: string;
    agent?: http.Agent;
    headers?: http.OutgoingHttpHeaders;
  } = {},
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: opts.host ?? '127.0.0.1',
        port,
        path,
        method: opts.method ?? 'GET',
        agent: opts.agent ?? false,
        headers: opts.headers,
        timeout: opts.timeoutMs ?? 5000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'TIMEOUT' })));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** The error listener of a test socket: its close or end is what `readUpTo` reports. */
function ignoreError(): void {}

/** Connects to a SuperServer port; rejects with the error code (ECONNREFUSED, ...). */
export function connect(port: number, host = '127.0.0.1', timeoutMs = 5000): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, allowHalfOpen: true });
    const timer = setTimeout(() => {
      s.destroy();
      reject(Object.assign(new Error('connect timed out'), { code: 'TIMEOUT' }));
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      s.removeAllListeners('error');
      // Resets are expected in these tests (down, stop); readUpTo reports them as the end.
      s.on('error', ignoreError);
      resolve(s);
    });
    s.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Collects what a socket sends until `bytes` arrived, it ended, or `timeoutMs` passed. */
export function readUpTo(
  s: net.Socket,
  bytes: number,
  timeoutMs: number,
): Promise<{ data: Buffer; ended: boolean; timedOut: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const finish = (ended: boolean, timedOut: boolean): void => {
      clearTimeout(timer);
      s.off('data', onData);
      s.off('end', onEnd);
      s.off('close', onEnd);
      s.pause();
      resolve({ data: Buffer.concat(chunks), ended, timedOut });
    };
    const onData = (c: Buffer): void => {
      chunks.push(c);
      got += c.length;
      if (got >= bytes) finish(false, false);
    };
    const onEnd = (): void => finish(true, false);
    const timer = setTimeout(() => finish(false, true), timeoutMs);
    // Already closed, or the FIN already read (half-open sockets stay undestroyed after 'end').
    if (s.destroyed || s.readableEnded) {
      setImmediate(onEnd);
      return;
    }
    s.on('data', onData);
    s.once('end', onEnd);
    s.once('close', onEnd);
    // A reset counts as the end; without a listener it would be an uncaught error. One shared
    // listener per socket, however often it is read: one per call piled up past Node's limit
    // of ten (a MaxListenersExceededWarning) on a session read in a loop.
    if (!s.listeners('error').includes(ignoreError)) s.on('error', ignoreError);
    s.resume();
  });
}

/** Reads the one-line greeting a simulated SuperServer sends, i.e. the member's name. */
export async function readGreeting(s: net.Socket, timeoutMs = 5000): Promise<string> {
  const chunks: Buffer[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error('no greeting line in time');
    const r = await readUpTo(s, 1, left);
    chunks.push(r.data);
    const all = Buffer.concat(chunks);
    const nl = all.indexOf(0x0a);
    if (nl >= 0) {
      if (nl + 1 < all.length) s.unshift(all.subarray(nl + 1));
      return all.subarray(0, nl).toString();
    }
    if (r.ended) throw new Error('socket ended before the greeting');
  }
}

/** Polls `fn` until it returns true or `timeoutMs` passes. */
export async function eventually(
  fn: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  stepMs = 20,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
