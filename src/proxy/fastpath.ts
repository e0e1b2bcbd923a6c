import type { Socket } from 'node:net';

/**
 * The fast read path: sockets made by `sockets.ts` read through `onread` into one buffer
 * shared by every socket of the process, instead of a Readable stream that allocates a
 * chunk per read. Whoever consumes a read (a `ReadSink`, set by `link()`) must be done
 * with the bytes before it returns: the next read of any socket overwrites them. That is
 * why `link()` never hands this buffer to a write that could stay pending: Node keeps a
 * reference to a pending write's buffer, and the next read would change the bytes still
 * to be sent (test/datapath-integrity.test.ts hashes bulk transfers to catch exactly that).
 *
 * `MIRRORLB_DATAPATH=plain` in the environment at start turns the fast path off (the
 * fallback path: plain `net.Socket` streams, no semi-private API anywhere).
 */

/** Large enough for bulk transfers (fewer reads), small enough to stay in cache. */
export const READ_BUFFER_SIZE = 64 * 1024;

/** One buffer for every fast socket and raw handle (raw.ts): reads on one event loop happen one at a time. */
export const sharedReadBuffer = Buffer.allocUnsafeSlow(READ_BUFFER_SIZE);

/** Consumes the bytes of one read synchronously; returns false to stop reading (backpressure). */
export interface ReadSink {
  onFastRead(buf: Buffer, n: number): boolean;
}

const kSink = Symbol('mirrorlb.readSink');
const kEarly = Symbol('mirrorlb.earlyReads');
const kFast = Symbol('mirrorlb.fastSocket');

interface FastSocket extends Socket {
  [kSink]?: ReadSink;
  [kEarly]?: Buffer[];
  [kFast]?: true;
}

// Read once: an env lookup per connect is measurable on the connection-churn path.
const envFastPath = process.env.MIRRORLB_DATAPATH !== 'plain';

/** Whether the fast path is the default for new sockets (env MIRRORLB_DATAPATH at start). */
export function fastPathDefault(): boolean {
  return envFastPath;
}

function onFastRead(this: FastSocket, n: number, buf: Buffer): boolean {
  const sink = this[kSink];
  if (sink !== undefined) return sink.onFastRead(buf, n);
  // Nothing consumes this socket yet (it should be paused until linked): keep a copy, stop reading.
  const copy = Buffer.allocUnsafe(n);
  buf.copy(copy, 0, 0, n);
  (this[kEarly] ??= []).push(copy);
  return false;
}

/** The `onread` option for `net.Socket` / `net.connect`; the socket must then be `markFast`ed. */
export const fastReadOption = Object.freeze({ buffer: sharedReadBuffer, callback: onFastRead });

export function markFast(socket: Socket): void {
  (socket as FastSocket)[kFast] = true;
}

export function isFast(socket: Socket): boolean {
  return (socket as FastSocket)[kFast] === true;
}

/**
 * Routes the socket's reads to `sink` (any socket may carry one: `link()` finds its state
 * there, one property per socket); returns bytes a fast socket read before a sink was set
 * (owned copies, in order), which the caller must forward first.
 */
export function setReadSink(socket: Socket, sink: ReadSink): Buffer[] {
  const s = socket as FastSocket;
  s[kSink] = sink;
  const early = s[kEarly];
  if (early === undefined) return NONE;
  s[kEarly] = undefined;
  return early;
}

const NONE: Buffer[] = [];

/** Detaches the socket from its sink: later reads are kept (as before a link) until the next `setReadSink`. */
export function clearReadSink(socket: Socket): void {
  (socket as FastSocket)[kSink] = undefined;
}

/** The sink set by `setReadSink` (undefined before). */
export function readSinkOf(socket: Socket): ReadSink | undefined {
  return (socket as FastSocket)[kSink];
}
