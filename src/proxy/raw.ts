import { writeSync } from 'node:fs';
import type net from 'node:net';
import { errnoName } from '../errno.js';
import { sharedReadBuffer } from './fastpath.js';
import { bindings } from './raw-bindings.js';
export { rawAvailable } from './raw-bindings.js';
import type { Link, LinkEnd, LinkHooks } from './link.js';
import { REPLAY_MAX_BYTES } from './link.js';

/**
 * The raw data path: a session between two libuv TCP handles, with no `net.Socket`, no
 * stream and no event emitter in between. Under connection churn a `net.Socket` pair costs
 * more than everything else a session does (two Duplex streams, their listeners, their
 * finish and destroy machinery: ~170 µs of CPU per short session against ~40 µs here,
 * measured with wrk `Connection: close`, bench/datapath-quick.mjs). The steady-state path is
 * the same as the fast path's (link.ts): every read lands in the one shared buffer and goes
 * to the kernel at once with a non-blocking write(2); what the kernel does not take is
 * copied and queued, and the source stops reading until it is written.
 *
 * Only the common case runs here: a client accepted while a primary is accepting, dialled
 * at once, linked. Anything else (no primary, a connect that fails, a session given back
 * for another member) wraps the client handle into a fast `net.Socket` (sockets.ts) and
 * goes on the stream path, which has every rule for it. The handle is not read before it
 * is linked, so wrapping it loses nothing.
 *
 * This is the one module that uses Node's TCP and stream bindings (`process.binding`,
 * stable in their shape since Node 12 and checked at load). `MIRRORLB_DATAPATH=stream`
 * (fast net.Socket path) or `=plain` (Node's own streams) at start turns it off, and so does
 * a Node whose bindings do not look as expected.
 */

/** A libuv TCP handle (Node's TCPWrap), as much of it as this module uses. */
export interface RawTcp {
  readStart(): number;
  readStop(): number;
  useUserBuffer(buf: Buffer): void;
  writeBuffer(req: WriteReq, buf: Buffer): number;
  shutdown(req: ShutdownReq): number;
  connect(req: ConnectReq, host: string, port: number): number;
  connect6(req: ConnectReq, host: string, port: number): number;
  setNoDelay(on: boolean): number;
  close(): void;
  readonly fd: number;
  /** Set-only in practice: Node's setter takes a function and asserts on anything else. */
  onread: (this: RawTcp) => void;
  [kWay]?: Way | undefined;
  /** Reading since the connect started (rawDial): the link does not start it again. */
  [kReading]?: boolean;
}

export interface WriteReq {
  handle: RawTcp;
  oncomplete: (this: WriteReq, status: number) => void;
  way: Way;
  buffer: Buffer;
}

/**
 * No `oncomplete`: Node calls a request's completion only when it is a function, and a
 * shutdown's outcome needs no handling (an error shows up on the next read or write of the
 * same socket). That spares one call into JS per connection.
 */
export interface ShutdownReq {
  handle: RawTcp;
}

export interface ConnectReq {
  oncomplete: (this: ConnectReq, status: number) => void;
  attempt: RawAttempt<unknown>;
}

const UV_EOF = -4095;
const kWay = Symbol('mirrorlb.rawWay');
const kReading = Symbol('mirrorlb.rawReading');

const B = bindings;

function rawError(status: number, what: string): Error & { code: string } {
  const code = errnoName(status);
  return Object.assign(new Error(`${what} ${code}`), { code });
}

// ---------------------------------------------------------------- connect

/** Who is told when a raw connect completes (the route's dialer, src/mirror/dial.ts). */
export interface RawDialer<T> {
  /** status 0: connected; else a negative errno. Called once per attempt, never after `abandon`. */
  dialed(attempt: RawAttempt<T>, status: number): void;
}

/** One backend connect for an accepted client handle that nothing has read yet. */
export class RawAttempt<T> {
  /** Completed, timed out or abandoned: a late completion does nothing. */
  done = false;
  /** Its place in the dialer's DeadlineQueue of connect timeouts. */
  queueSlot = -1;

  constructor(
    readonly client: RawTcp,
    readonly backend: RawTcp,
    /** Whose connect it is (the route's client). */
    readonly owner: T,
    /** When the connect counts as timed out (performance.now() ms). */
    readonly deadline: number,
    private readonly dialer: RawDialer<T>,
  ) {}

  completed(status: number): void {
    if (this.done) return;
    this.done = true;
    this.dialer.dialed(this, status);
  }

  /** Gives up the connect (timed out, or its member lost the role): the backend handle is closed. */
  abandon(): void {
    this.done = true;
    this.backend.close();
  }
}

function onConnected(this: ConnectReq, status: number): void {
  try {
    this.attempt.completed(status);
  } catch {
    // As in onRead: never out of libuv's callback. The attempt's handles are closed.
    this.attempt.client.close();
    this.attempt.backend.close();
  }
}

/**
 * Starts a connect to `host` (an IP literal of `family` 4 or 6) for `client`. Returns the
 * attempt, or the errno name when the connect could not even start (the backend handle is
 * then closed and the client is the caller's again).
 */
export function rawDial<T>(
  client: RawTcp,
  host: string,
  family: 4 | 6,
  port: number,
  owner: T,
  deadline: number,
  dialer: RawDialer<T>,
): RawAttempt<T> | string {
  const b = B!;
  const backend = new b.TCP(b.SOCKET);
  // Applied by libuv when it creates the socket: no extra syscall.
  backend.setNoDelay(true);
  const attempt = new RawAttempt(client, backend, owner, deadline, dialer);
  const req = new b.TCPConnectWrap();
  req.oncomplete = onConnected;
  req.attempt = attempt;
  const err = family === 4 ? backend.connect(req, host, port) : backend.connect6(req, host, port);
  if (err !== 0) {
    backend.close();
    return errnoName(err);
  }
  // Reading is armed with the connect, so libuv registers the socket for both in one epoll_ctl;
  // armed after the connect completed it costs an ADD that fails (EEXIST) and a MOD. Nothing is
  // read early: libuv completes the connect (and the link is made in its callback) before it
  // serves the socket's first read, and a connect that fails closes the handle.
  backend.onread = onRead;
  backend.useUserBuffer(sharedReadBuffer);
  if (backend.readStart() === 0) backend[kReading] = true;
  return attempt;
}

// ---------------------------------------------------------------- link

/** Turns a handle the raw path gives up into a fast, paused `net.Socket` (sockets.ts). */
export type SocketFromHandle = (handle: RawTcp) => net.Socket;

/** One way of a raw session: reads `src`, writes `dst`. */
class Way {
  bytes = 0;
  /** Client → backend only: copies of what was read, until the backend's first byte. */
  replay: Buffer[] | null = null;
  private replayBytes = 0;
  /** The source's FIN was read. */
  ended = false;
  /** Writes queued on `dst` that the kernel has not taken yet (the source is stopped meanwhile). */
  pending = 0;
  private readonly dstFd: number;

  constructor(
    readonly session: RawSession,
    readonly src: RawTcp,
    readonly dst: RawTcp,
  ) {
    this.dstFd = dst.fd;
    src[kWay] = this;
  }

  data(n: number): void {
    const s = this.session;
    if (s.closed) return;
    if (this.bytes === 0 && this === s.out) s.in.replay = null;
    this.bytes += n;
    if (this.replay !== null) this.keep(n);
    let done = 0;
    if (this.pending === 0) {
      try {
        done = writeSync(this.dstFd, sharedReadBuffer, 0, n);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
        if (code !== 'EAGAIN') return this === s.in && s.giveBack(code) ? undefined : s.fail(err as Error);
      }
      if (done === n) return;
    }
    // The rest is copied: the shared buffer is overwritten by the next read of any handle.
    const rest = Buffer.allocUnsafe(n - done);
    sharedReadBuffer.copy(rest, 0, done, n);
    const b = B!;
    const req = new b.WriteWrap();
    req.handle = this.dst;
    req.oncomplete = onWritten;
    req.way = this;
    req.buffer = rest;
    const err = this.dst.writeBuffer(req, rest);
    if (err !== 0) return s.fail(rawError(err, 'write'));
    if (b.state[b.kLastWriteWasAsync] !== 0 && this.pending++ === 0) this.src.readStop();
  }

  written(status: number): void {
    this.pending--;
    const s = this.session;
    if (s.closed) return;
    if (status < 0) return s.fail(rawError(status, 'write'));
    if (this.pending > 0) return;
    if (!this.ended) this.src.readStart();
    s.settle();
  }

  /** The source sent its FIN: it goes on to the destination after what is queued. */
  end(): void {
    const s = this.session;
    if (this === s.out && s.giveBack('MLB_ERR_BACKEND_CLOSED')) return;
    s.firstEnd ??= this === s.in ? 'client' : 'server';
    this.ended = true;
    const other = this === s.in ? s.out : s.in;
    // Both FINs read: both sockets close once nothing is queued (close(2) sends our FIN).
    if (other.ended) return s.settle();
    const req = new B!.ShutdownWrap();
    req.handle = this.dst;
    const err = this.dst.shutdown(req);
    if (err !== 0) s.fail(rawError(err, 'shutdown'));
  }

  private keep(n: number): void {
    this.replayBytes += n;
    if (this.replayBytes > REPLAY_MAX_BYTES) {
      this.replay = null;
      return;
    }
    this.replay!.push(Buffer.from(sharedReadBuffer.subarray(0, n)));
  }
}

function onRead(this: RawTcp): void {
  const way = this[kWay];
  if (way === undefined) return;
  const n = B!.state[B!.kReadBytesOrError]!;
  // An exception here would leave libuv's callback and end the process: one session's
  // trouble ends that session only.
  try {
    if (n > 0) way.data(n);
    else if (n === UV_EOF) way.end();
    else if (n < 0 && !(way === way.session.out && way.session.giveBack(errnoName(n)))) {
      way.session.firstEnd ??= way === way.session.in ? 'client' : 'server';
      way.session.fail(rawError(n, 'read'));
    }
  } catch (err) {
    way.session.fail(err as Error);
  }
}

function onWritten(this: WriteReq, status: number): void {
  this.way.written(status);
}

class RawSession implements Link {
  readonly in: Way;
  readonly out: Way;
  closed = false;
  firstEnd: LinkEnd = null;
  private error: Error | null = null;

  constructor(
    private readonly client: RawTcp,
    private readonly backend: RawTcp,
    private readonly hooks: LinkHooks,
    private readonly toSocket: SocketFromHandle,
  ) {
    this.in = new Way(this, client, backend);
    this.out = new Way(this, backend, client);
    this.in.replay = [];
    for (const h of [client, backend]) {
      h.onread = onRead;
      h.useUserBuffer(sharedReadBuffer);
    }
  }

  start(): void {
    const a = this.client.readStart();
    const b = this.backend[kReading] === true ? 0 : this.backend.readStart();
    // Failed later, not here: the caller has not got the link back yet.
    if (a !== 0 || b !== 0) process.nextTick(() => this.fail(rawError(a || b, 'read start')));
  }

  get bytesIn(): number {
    return this.in.bytes;
  }

  get bytesOut(): number {
    return this.out.bytes;
  }

  destroy(): void {
    this.close();
  }

  fail(err: Error): void {
    this.error ??= err;
    this.close();
  }

  /** Closes both handles once both FINs are read and nothing is queued either way. */
  settle(): void {
    if (this.in.ended && this.out.ended && this.in.pending === 0 && this.out.pending === 0) this.close();
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    // uv_close closes the fd at once (queued writes are cancelled, their callbacks see closed).
    this.client.close();
    this.backend.close();
    this.hooks.onClose({ error: this.error });
  }

  /**
   * The member is gone before its first byte and the client is still there: the client goes
   * back to the owner (hooks.onBackendLost) instead of being closed. False when that cannot
   * be (no hook, the member answered, the client ended or sent too much to replay).
   */
  giveBack(code: string): boolean {
    if (this.hooks.onBackendLost === undefined) return false;
    const d = this.detachClient();
    if (d === null) return false;
    this.hooks.onBackendLost(d.socket, d.replay, code);
    return true;
  }

  detachClient(): { readonly socket: net.Socket; readonly replay: readonly Buffer[] } | null {
    const replay = this.in.replay;
    if (this.closed || replay === null || this.out.bytes > 0 || this.in.ended || this.out.ended || this.error)
      return null;
    this.closed = true;
    this.firstEnd = 'given_back';
    const c = this.client;
    c.readStop();
    // Its onread (a native setter that takes only functions) is replaced by the socket's.
    c[kWay] = undefined;
    this.backend.close();
    const socket = this.toSocket(c);
    this.hooks.onClose({ error: null });
    return { socket, replay };
  }
}

/** Links two raw handles (the client accepted, the backend just connected); both are the link's from now on. */
export function rawLink(client: RawTcp, backend: RawTcp, hooks: LinkHooks, toSocket: SocketFromHandle): Link {
  const s = new RawSession(client, backend, hooks, toSocket);
  s.start();
  return s;
}
