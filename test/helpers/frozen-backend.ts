/**
 * A member's SuperServer port that does not accept until told: a child process listens with
 * a small backlog and blocks its event loop, so the kernel queues `backlog + 1` connections
 * and drops every later SYN (the overflow a reconnect storm causes). Connects to it stay in
 * SYN_SENT until it thaws, which makes the balancer's connects in flight countable from
 * /proc/net/tcp (`synSent`). Once thawed it accepts, greets with `slow` and echoes.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';

type Test = { teardown(fn: () => unknown): void };

const CHILD = `
const net = require('node:net');
const fs = require('node:fs');
let accepted = 0;
const srv = net.createServer((s) => {
  accepted++;
  s.on('error', () => {});
  s.write('slow\\n');
  s.pipe(s);
});
srv.listen({ host: '127.0.0.1', port: 0, backlog: Number(process.argv[1]) }, () => {
  process.stdout.write('port ' + srv.address().port + '\\n');
  // Frozen: the event loop never runs, so nothing is accepted until the parent writes a byte.
  const one = Buffer.alloc(1);
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    try { if (fs.readSync(0, one) === 1) break; } catch (e) { if (e.code !== 'EAGAIN') throw e; }
    Atomics.wait(nap, 0, 0, 5);
  }
  // Thawed: every later byte from the parent asks how many connections were accepted.
  process.stdin.on('data', () => process.stdout.write('accepted ' + accepted + '\\n'));
});
`;

export interface FrozenBackend {
  readonly port: number;
  /** Starts accepting (the queued connections, then the retransmitted SYNs). */
  thaw(): void;
  /** Connections accepted so far (after thaw). */
  accepted(): Promise<number>;
  /** Sockets of this process in SYN_SENT towards the backend: connects in flight. */
  synSent(): number;
}

export async function withFrozenBackend(t: Test, backlog: number): Promise<FrozenBackend> {
  const child = spawn(process.execPath, ['-e', CHILD, String(backlog)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  const lines: string[] = [];
  const waiters: Array<(line: string) => void> = [];
  let buf = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => {
    buf += d;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      const w = waiters.shift();
      if (w) w(line);
      else lines.push(line);
    }
  });
  const exited = once(child, 'exit').then(() => {
    throw new Error('the frozen backend exited');
  });
  exited.catch(() => undefined); // only the waits below care (after teardown's kill it is expected)
  const nextLine = (timeoutMs = 10_000): Promise<string> => {
    const l = lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    let timer: NodeJS.Timeout | undefined;
    let waiter: ((line: string) => void) | undefined;
    return Promise.race([
      new Promise<string>((resolve) => waiters.push((waiter = resolve))),
      exited,
      new Promise<string>((_, reject) => {
        timer = setTimeout(() => reject(new Error('the frozen backend did not answer')), timeoutMs);
      }),
    ]).finally(() => {
      clearTimeout(timer);
      // A wait that timed out must not swallow the next line, meant for the next wait.
      const i = waiters.indexOf(waiter!);
      if (i >= 0) waiters.splice(i, 1);
    });
  };
  const first = await nextLine();
  const port = Number(/^port (\d+)$/.exec(first)?.[1]);
  if (!port) throw new Error(`unexpected line from the frozen backend: ${first}`);
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  return {
    port,
    thaw: () => child.stdin.write('g'),
    async accepted() {
      child.stdin.write('?');
      const line = await nextLine();
      return Number(/^accepted (\d+)$/.exec(line)?.[1] ?? NaN);
    },
    synSent() {
      // Fields: sl local rem st ...; st 02 is SYN_SENT; rem is HEXIP:HEXPORT.
      let n = 0;
      for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
        const f = line.trim().split(/\s+/);
        if (f[3] === '02' && f[2] === `0100007F:${hexPort}`) n++;
      }
      return n;
    },
  };
}
