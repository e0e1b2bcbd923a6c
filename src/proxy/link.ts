import { writeSync } from 'node:fs';
import type { Socket } from 'node:net';
import { clearReadSink, isFast, readSinkOf, setReadSink, type ReadSink } from './fastpath.js';

/**
 * A link joins two connected sockets and forwards bytes both ways, unchanged and in
 * order, with backpressure and half-close honoured: a database protocol tolerates no
 * altered, dropped or reordered byte. It owns both sockets from the moment it is made:
 * it ends them, destroys them, and reports once.
 *
 * This is the data path; the router (src/mirror/) decides when to make and cut links.
 */
export interface Link {
  /** Bytes forwarded client → backend. */
  readonly bytesIn: number;
  /** Bytes forwarded backend → client. */
  readonly bytesOut: number;
  /**
   * The side whose FIN, reset or close came first (the session log's client_closed or
   * server_closed), null while neither did; `given_back` once the client was detached
   * (its session goes on with another member: this one is no end of it).
   */
  readonly firstEnd: LinkEnd;
  /** Cuts both sockets at once (a demoted member, a disabled member, shutdown). */
  destroy(): void;
  /**
   * Gives the client back, untouched, when the member never sent it a byte: the backend is
   * closed and the client's bytes so far are returned for replay to another member. Null
   * once the member answered, the client ended, or it sent more than REPLAY_MAX_BYTES.
   */
  detachClient(): { readonly socket: Socket; readonly replay: readonly Buffer[] } | null;
}

/**
 * Client bytes kept until the member's first byte. A member that never answered cannot have
 * completed a handshake, so nothing the client sent can have been acted on; replaying those
 * bytes to the new primary is safe, and beyond a handshake's size nothing is kept.
 */
export const REPLAY_MAX_BYTES = 16 * 1024;

export type LinkEnd = 'client' | 'server' | 'given_back' | null;

export interface LinkHooks {
  /** Called exactly once, when both sockets are closed. */
  onClose(result: { error: Error | null }): void;
  /**
   * The member closed or reset the connection before sending a byte, while the client is
   * still there (a dying primary accepts for a moment, then resets). The client is given
   * back with its bytes so far, to be retried like a failed connect instead of being closed;
   * onClose is still called once for the session. Without this hook the client is closed.
   */
  onBackendLost?(socket: Socket, replay: readonly Buffer[], code: string): void;
}

/** The direction a socket is the source of (its reads, its 'end', its errors, its close). */
function directionOf(socket: Socket): Direction {
  return readSinkOf(socket) as Direction;
}

/**
 * One way of a link. Bytes from a fast socket sit in the process-wide read buffer, which
 * the next read of any socket overwrites, so they are written to the kernel at once with
 * a non-blocking write(2) on the destination's fd; whatever the kernel does not take is
 * copied before it is queued on the destination stream. The shared buffer is therefore
 * never referenced by a pending write. Reading stops while the destination's queue is
 * above its high-water mark and resumes on 'drain'.
 */
class Direction implements ReadSink {
  bytes = 0;
  /** Client → backend only: copies of what was read, until the backend's first byte (see detachClient). */
  replay: Buffer[] | null = null;
  private replayBytes = 0;
  /** The destination's fd for direct writes, or -1 to always write through the stream. */
  private readonly fd: number;
  private waiting = false;

  constructor(
    readonly session: Session,
    readonly src: Socket,
    readonly dst: Socket,
  ) {
    this.fd = isFast(dst) ? fdOf(dst) : -1;
  }

  onFastRead(buf: Buffer, n: number): boolean {
    return this.forward(buf, n, false);
  }

  /** Returns false when the source must stop reading until the destination drains. */
  forward(buf: Buffer, n: number, owned: boolean): boolean {
    const dst = this.dst;
    if (!dst.writable) return false; // the session is ending; its close path tears it down
    // The member's first byte ends any chance of a replay: free the client's kept bytes now
    // rather than hold them for the life of an idle session.
    if (this.bytes === 0 && this === this.session.out) this.session.in.replay = null;
    this.bytes += n;
    if (this.replay !== null) this.keep(buf, n, owned);
    let start = 0;
    // Direct only when nothing is queued on the stream: bytes must reach the kernel in order.
    if (this.fd >= 0 && dst.writableLength === 0) {
      try {
        start = writeSync(this.fd, buf, 0, n);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
        if (code !== 'EAGAIN') {
          // A write into a member that is already gone, before it said anything.
          if (!(this === this.session.in && this.session.giveBack(code))) this.session.fail(err as Error);
          return false;
        }
      }
      // A write through the stream re-arms the socket's idle timer (setTimeout); one that
      // bypasses it must do so too, or a session busy only this way would be cut as idle.
      if (dst.timeout) refreshIdleTimer(dst);
      if (start === n) return true;
    }
    let chunk: Buffer;
    if (owned) {
      chunk = start === 0 && n === buf.length ? buf : buf.subarray(start, n);
    } else {
      chunk = Buffer.allocUnsafe(n - start);
      buf.copy(chunk, 0, start, n);
    }
    if (dst.write(chunk)) return true;
    this.waitForDrain();
    return false;
  }

  private keep(buf: Buffer, n: number, owned: boolean): void {
    this.replayBytes += n;
    if (this.session.out.bytes > 0 || this.replayBytes > REPLAY_MAX_BYTES) {
      this.replay = null; // the member answered, or this is no handshake: nothing will be replayed
      return;
    }
    this.replay!.push(owned ? buf.subarray(0, n) : Buffer.from(buf.subarray(0, n)));
  }

  private waitForDrain(): void {
    if (this.waiting) return;
    this.waiting = true;
    // Made only under backpressure: an idle session carries no closure for it.
    this.dst.once('drain', () => this.onDrain());
  }

  private onDrain(): void {
    this.waiting = false;
    const src = this.src;
    if (!src.destroyed && !src.readableEnded) src.resume();
  }

  /** Starts reading the source; bytes a fast socket read before the link go first. */
  start(): void {
    const src = this.src;
    const early = setReadSink(src, this);
    // A source whose FIN was read before the link (a client read while held, then gone while
    // its backend connect ran) emitted 'end' already: forward it now, or both sides stay open.
    if (src.readableEnded) process.nextTick(forwardFin, this.dst);
    else src.on('end', onSourceEnd);
    src.off('error', ignoreUntilLinked);
    src.on('error', onSocketError);
    if (!isFast(src)) src.on('data', onSourceData);
    let flowing = true;
    for (const chunk of early) flowing = this.forward(chunk, chunk.length, true) && flowing;
    if (flowing) src.resume(); // else resumed on drain
  }
}

// Listeners shared by every socket (`this` is the socket): no closures per session.

/**
 * The error listener of a socket no link owns yet (accepted and held, or connected and not
 * yet linked): one shared function, which `link()` takes off again, so a linked socket
 * carries no closure and no listener array for it.
 */
export function ignoreUntilLinked(): void {}

function onSourceData(this: Socket, chunk: Buffer): void {
  if (!directionOf(this).forward(chunk, chunk.length, true)) this.pause();
}

/**
 * Half-close: a FIN from one side becomes a FIN to the other (allowHalfOpen on both).
 * Forwarded one tick later: when both FINs arrive in one loop turn (the usual end of a
 * connection), the other side's 'end' has been emitted by then and both sockets are simply
 * closed, with no shutdown(2) and no trip through the stream's finish machinery.
 */
function onSourceEnd(this: Socket): void {
  const d = directionOf(this);
  d.session.firstEnd ??= d === d.session.in ? 'client' : 'server';
  // The member's FIN before any byte of it: the client may go to a member that answers.
  if (d === d.session.out && d.session.giveBack('MLB_ERR_BACKEND_CLOSED')) return;
  process.nextTick(forwardFin, d.dst);
}

function forwardFin(dst: Socket): void {
  if (dst.destroyed) return;
  // It sent its FIN already and has nothing left to receive from us: close(2) sends our FIN
  // (no unread bytes, so no RST).
  if (dst.readableEnded && dst.writableLength === 0) dst.destroy();
  else dst.end();
}

function onSocketError(this: Socket, err: Error): void {
  const d = directionOf(this);
  d.session.firstEnd ??= d === d.session.in ? 'client' : 'server';
  const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
  if (d === d.session.out && d.session.giveBack(code)) return;
  d.session.fail(err);
}

function onSocketClose(this: Socket): void {
  directionOf(this).session.closed(this);
}

class Session implements Link {
  readonly in: Direction;
  readonly out: Direction;
  private error: Error | null = null;
  private detached = false;
  private clientClosed = false;
  private backendClosed = false;
  private reported = false;
  firstEnd: LinkEnd = null;

  constructor(
    private readonly client: Socket,
    private readonly backend: Socket,
    private readonly hooks: LinkHooks,
  ) {
    this.in = new Direction(this, client, backend);
    this.out = new Direction(this, backend, client);
    this.in.replay = [];
  }

  get bytesIn(): number {
    return this.in.bytes;
  }

  get bytesOut(): number {
    return this.out.bytes;
  }

  destroy(): void {
    this.client.destroy();
    this.backend.destroy();
  }

  /** LinkHooks.onBackendLost: the member is gone before its first byte, the client is given back. */
  giveBack(code: string): boolean {
    if (this.hooks.onBackendLost === undefined) return false;
    const d = this.detachClient(true);
    if (d === null) return false;
    this.hooks.onBackendLost(d.socket, d.replay, code);
    return true;
  }

  /** `backendGone`: the member's FIN or reset is why (else a FIN of the member forbids it). */
  detachClient(backendGone = false): { readonly socket: Socket; readonly replay: readonly Buffer[] } | null {
    const c = this.client;
    const replay = this.in.replay;
    if (this.detached || replay === null || this.out.bytes > 0) return null;
    if (c.destroyed || c.readableEnded || this.clientClosed || this.error) return null;
    if (this.backend.readableEnded && !backendGone) return null;
    this.detached = true;
    this.firstEnd = 'given_back';
    c.off('end', onSourceEnd);
    c.off('error', onSocketError);
    // Unowned again until its next link: an error must still never go uncaught.
    c.on('error', ignoreUntilLinked);
    c.off('data', onSourceData);
    c.off('close', onSocketClose);
    clearReadSink(c);
    c.pause();
    this.clientClosed = true;
    this.backend.destroy(); // its close reports the session; the client lives on elsewhere
    return { socket: c, replay };
  }

  /** One side's failure ends the session: the other side must not wait forever. */
  fail(err: Error): void {
    this.error ??= err;
    this.destroy();
  }

  closed(socket: Socket): void {
    this.firstEnd ??= socket === this.client ? 'client' : 'server';
    if (socket === this.client) this.clientClosed = true;
    else this.backendClosed = true;
    // A socket that closed before its FIN (a reset, or destroyed by someone else) takes its
    // peer with it. After its FIN it closes on its own or by onSourceEnd; its peer goes on.
    if (!socket.readableEnded && !this.detached) this.destroy();
    if (this.clientClosed && this.backendClosed && !this.reported) {
      this.reported = true;
      this.hooks.onClose({ error: this.error });
    }
  }

  start(): void {
    for (const d of [this.in, this.out]) {
      const s = d.src;
      // A socket already destroyed (a client that vanished while held) counts as closed now.
      if (s.destroyed) process.nextTick(() => this.closed(s));
      else s.on('close', onSocketClose);
    }
    this.in.start();
    this.out.start();
  }
}

export function link(client: Socket, backend: Socket, hooks: LinkHooks): Link {
  const session = new Session(client, backend, hooks);
  session.start();
  return session;
}

function refreshIdleTimer(socket: Socket): void {
  (socket as unknown as { _unrefTimer?: () => void })._unrefTimer?.();
}

function fdOf(socket: Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}
