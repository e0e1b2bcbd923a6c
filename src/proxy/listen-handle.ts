import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { errnoName } from '../errno.js';

/**
 * A listening TCP handle that can stop accepting and start again without closing: while it is
 * paused, new connections wait in the kernel's listen queue (as haproxy does at its maxconn)
 * instead of being accepted into a process that has no descriptor left for them, where
 * libuv's EMFILE path accepts and closes them without a byte.
 *
 * Node has no API for it. What works (Node 20, libuv 1.46): libuv's `uv_read_stop` on a
 * listening handle stops its poll for incoming connections, and accepting stops at once,
 * even in the middle of a burst; `uv_read_start` resumes it. Both act only on a handle libuv
 * counts as readable, which a handle Node binds itself is not (readStart answers ENOTCONN),
 * so the handle is bound here and opened on its own descriptor (`uv_tcp_open` of the same
 * fd only sets that flag), then given to `net.Server.listen(handle)`. Closing the server
 * and listening again instead would drop every connection in the queue.
 *
 * Null (the caller listens the usual way, without pausing) when the bindings are not as
 * expected; the listen address is resolved first when it is a name.
 */
interface ServerTcp {
  bind(host: string, port: number): number;
  bind6(host: string, port: number, flags: number): number;
  open(fd: number): number;
  readStart(): number;
  readStop(): number;
  close(): void;
  readonly fd: number;
}

type ServerTcpClass = new (type: number) => ServerTcp;

function loadTcp(): { TCP: ServerTcpClass; SERVER: number } | null {
  try {
    const binding = (process as unknown as { binding(name: string): Record<string, unknown> }).binding;
    const tcp = binding('tcp_wrap') as { TCP?: ServerTcpClass; constants?: { SERVER?: number } };
    const proto = tcp.TCP?.prototype as Record<string, unknown> | undefined;
    const ok = ['bind', 'bind6', 'open', 'readStart', 'readStop', 'close'].every(
      (m) => typeof proto?.[m] === 'function',
    );
    if (!tcp.TCP || typeof tcp.constants?.SERVER !== 'number' || !ok) return null;
    return { TCP: tcp.TCP, SERVER: tcp.constants.SERVER };
  } catch {
    return null;
  }
}

const B = loadTcp();

export class PausableListen {
  private armed = false;

  constructor(readonly handle: ServerTcp) {}

  /** After the server listens on it: true when pause and resume work. */
  arm(): boolean {
    this.armed = this.handle.readStart() === 0;
    return this.armed;
  }

  pause(): void {
    if (this.armed) this.handle.readStop();
  }

  resume(): void {
    if (this.armed) this.handle.readStart();
  }
}

/** Binds `host:port` for a pausable listen; throws a bind error (EADDRINUSE) as Node's listen would. */
export async function bindPausable(host: string, port: number): Promise<PausableListen | null> {
  if (B === null) return null;
  let address = host;
  let family = net.isIP(host);
  if (family === 0) ({ address, family } = await lookup(host));
  const h = new B.TCP(B.SERVER);
  const err = family === 6 ? h.bind6(address, port, 0) : h.bind(address, port);
  if (err !== 0) {
    h.close();
    const code = errnoName(err);
    throw Object.assign(new Error(`listen ${code}: ${address}:${port}`), {
      code,
      errno: err,
      syscall: 'listen',
      address,
      port,
    });
  }
  if (h.open(h.fd) !== 0) {
    h.close();
    return null;
  }
  return new PausableListen(h);
}
