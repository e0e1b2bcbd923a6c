import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { connectTo, waitFor, withBackend, within } from './helpers/datapath.js';

/**
 * Running out of file descriptors (EMFILE on accept and on connect) must cost the clients
 * that did not fit, never the process or the sessions already open. The proxy runs in a
 * child process with a low fd limit so the test process itself is not starved.
 */

const fixture = fileURLToPath(new URL('./fixtures/datapath-proxy.ts', import.meta.url));
// Only the TypeScript loader: coverage and mock hooks are for this process.
const loader = process.execArgv.filter((a) => a.includes('typescript'));

interface Child {
  proc: ChildProcess;
  port: number;
  lines: string[];
}

async function startLimitedProxy(
  t: { teardown(fn: () => unknown): void },
  backendPort: number,
  mode: string,
  fdLimit: number,
): Promise<Child> {
  const cmd = [process.execPath, ...loader, fixture, String(backendPort), mode]
    .map((a) => `'${a}'`)
    .join(' ');
  const proc = spawn('sh', ['-c', `ulimit -n ${fdLimit} && exec ${cmd}`], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  t.teardown(() => {
    proc.stdin?.end();
    proc.kill();
  });
  const lines: string[] = [];
  let buf = '';
  proc.stdout?.on('data', (c: Buffer) => {
    buf += c.toString();
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      lines.push(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  });
  await waitFor(() => lines.length > 0 || proc.exitCode !== null, 20_000, 'the proxy child to listen');
  const first = JSON.parse(lines[0]) as { port: number };
  return { proc, port: first.port, lines };
}

/** Connects and round-trips one message; resolves false on any failure. */
async function roundTrip(port: number, msg: string): Promise<{ ok: boolean; socket: net.Socket | null }> {
  try {
    const s = await connectTo(port, 3000);
    s.on('error', () => undefined);
    const echoed = within(
      new Promise<string>((resolve) => {
        let data = '';
        s.on('data', (c: Buffer) => {
          data += c.toString();
          if (data.length >= msg.length) resolve(data);
        });
        s.on('close', () => resolve(data));
      }),
      1500,
      'the echo',
    ).catch(() => '');
    s.write(msg);
    return { ok: (await echoed) === msg, socket: s };
  } catch {
    return { ok: false, socket: null };
  }
}

for (const mode of ['fast', 'plain']) {
  t.test(
    `${mode}: fd exhaustion refuses the excess clients, keeps the process and open sessions`,
    async (t) => {
      const backendPort = await withBackend(t, (s) => s.pipe(s));
      const child = await startLimitedProxy(t, backendPort, mode, 64);
      const open: net.Socket[] = [];
      t.teardown(() => open.forEach((s) => s.destroy()));
      let ok = 0;
      // Each session needs two fds in the proxy: 32 sessions cannot fit in 64 fds (node holds ~20).
      for (let i = 0; i < 32; i++) {
        const r = await roundTrip(child.port, `hello ${i}`);
        if (r.socket) open.push(r.socket);
        if (r.ok) ok++;
      }
      t.ok(ok > 5, `some sessions fit (${ok})`);
      t.ok(ok < 32, `not all sessions fit (${ok})`);
      t.equal(child.proc.exitCode, null, 'the proxy is still running');
      // The sessions that fit still work.
      const survivors = open.filter((s) => !s.destroyed);
      const echoes = await Promise.all(
        survivors.slice(0, 3).map(
          (s, i) =>
            new Promise<string>((resolve) => {
              s.removeAllListeners('data');
              s.once('data', (c: Buffer) => resolve(c.toString()));
              s.write(`again ${i}`);
            }),
        ),
      );
      t.same(
        echoes,
        survivors.slice(0, 3).map((_, i) => `again ${i}`),
        'open sessions unaffected',
      );
      for (const s of open) s.destroy();
      open.length = 0;
      // Once fds are free again, new clients get through.
      let after = false;
      for (let i = 0; i < 50 && !after; i++) {
        const r = await roundTrip(child.port, 'after');
        r.socket?.destroy();
        after = r.ok;
        if (!after) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      t.ok(after, 'a new session works after the fds were released');
      child.proc.stdin?.write('\n');
      await waitFor(() => child.lines.length > 1, 5000, 'the counts');
      const counts = JSON.parse(child.lines[1]) as { acceptErrors: number; connectErrors: number };
      t.ok(counts.acceptErrors + counts.connectErrors > 0, `EMFILE was hit (${JSON.stringify(counts)})`);
      t.equal(child.proc.exitCode, null, 'still running at the end');
    },
  );
}
