import net from 'node:net';
import type { HostPort } from '../config/types.js';
import { hookAccept, type HandleTaker } from './accept-hook.js';
import { fastPathDefault, fastReadOption, isFast, markFast } from './fastpath.js';
import { ignoreUntilLinked } from './link.js';

/**
 * Socket creation for the data path. Sockets made here read through the fast path
 * (`fastpath.ts`) unless it is turned off (option `fastPath: false` or env
 * `MIRRORLB_DATAPATH=plain`); `link()` works with either kind.
 */

export interface DataPathOptions {
  /** Read through the shared buffer (default: true unless MIRRORLB_DATAPATH=plain). */
  readonly fastPath?: boolean;
  /**
   * Server only: told on each listen whether accepted sockets take the fast path (false
   * when it is off, or when this Node's server internals are not the expected ones).
   */
  readonly onListening?: (fastAccept: boolean) => void;
  /**
   * Server only, fast path only: offered each accepted handle first (accept-hook.ts); true
   * when it took it (the raw path). A handle it gives back later becomes a socket through
   * `socketForHandle`.
   */
  readonly takeHandle?: HandleTaker;
}

/** Whether `socket` reads through the fast path (for logs and tests). */
export function isFastSocket(socket: net.Socket): boolean {
  return isFast(socket);
}

/*
 * Both option objects below spell out emitClose, autoDestroy and decodeStrings with the
 * values net.Socket forces anyway. Its constructor copies the options and adds those three
 * to the copy; on Node 20 that addition leaves every copy with a map of its own, so each
 * stream-state lookup on it misses its inline cache: a socket then costs ~10 µs to build
 * instead of ~0.6 µs (measured: new net.Socket({ allowHalfOpen: true }) in a loop).
 * Written out, not spread: a spread would build the object the slow way again.
 */

function acceptedSocket(handle: unknown, noDelay: boolean): net.Socket {
  const socket = new net.Socket({
    handle,
    allowHalfOpen: true,
    // Held clients must not be read: their bytes wait in the kernel until a link owns them.
    pauseOnCreate: true,
    readable: true,
    writable: true,
    onread: fastReadOption,
    emitClose: false,
    autoDestroy: true,
    decodeStrings: false,
  } as net.SocketConstructorOpts);
  markFast(socket);
  // Inherited from the listener when `noDelay` (accept-hook.ts): no syscall here then.
  if (!noDelay) socket.setNoDelay(true);
  return socket;
}

/**
 * The fast, paused socket for a client handle the raw path took and gives back (no primary
 * after all, a failed connect, a session handed to another member). Not counted on the
 * server; an error is ignored until a link owns it, as for any accepted socket.
 */
export function socketForHandle(handle: unknown): net.Socket {
  const socket = acceptedSocket(handle, true);
  socket.on('error', ignoreUntilLinked);
  return socket;
}

/** A listening server whose accepted sockets arrive paused, half-open allowed, ready for `link()`. */
export function createProxyServer(
  onConnection: (socket: net.Socket) => void,
  opts: DataPathOptions = {},
): net.Server {
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, onConnection);
  const report = opts.onListening;
  if (opts.fastPath ?? fastPathDefault()) hookAccept(server, acceptedSocket, report, opts.takeHandle);
  else if (report) server.prependListener('listening', () => report(false));
  return server;
}

export class ConnectError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/**
 * Starts a connect to a backend and returns its socket at once, so the caller can give it
 * up (`destroy()`: `done` is then never called). `done` gets the connected, paused socket,
 * or a ConnectError whose code is the errno (ECONNREFUSED, ...) or MLB_ERR_CONNECT_TIMEOUT.
 * `host` should already be an IP literal (resolved once per config), so no lookup runs here.
 */
export function connectSocket(
  addr: HostPort,
  timeoutMs: number,
  done: (err: ConnectError | null, socket: net.Socket) => void,
  opts: DataPathOptions = {},
): net.Socket {
  const fast = opts.fastPath ?? fastPathDefault();
  const socket = net.connect({
    host: addr.host,
    port: addr.port,
    allowHalfOpen: true,
    noDelay: true,
    onread: fast ? fastReadOption : undefined,
    emitClose: false,
    autoDestroy: true,
    decodeStrings: false,
  } as net.NetConnectOpts);
  if (fast) markFast(socket);
  socket.pause();
  // Until a link owns it, a late error (an RST before link) must not become an uncaught exception.
  socket.on('error', ignoreUntilLinked);
  const onError = (err: NodeJS.ErrnoException): void => {
    clearTimeout(timer);
    socket.destroy();
    done(new ConnectError(err.code ?? 'MLB_ERR_CONNECT', err.message), socket);
  };
  const timer = setTimeout(() => {
    socket.off('error', onError);
    socket.destroy();
    done(
      new ConnectError('MLB_ERR_CONNECT_TIMEOUT', `connect to ${addr.host}:${addr.port} timed out`),
      socket,
    );
  }, timeoutMs);
  // A socket given up by its caller takes its timer with it.
  socket.once('close', () => clearTimeout(timer));
  socket.once('connect', () => {
    clearTimeout(timer);
    socket.off('error', onError);
    done(null, socket);
  });
  socket.once('error', onError);
  return socket;
}

/** connectSocket as a promise: the connected, paused socket, or a rejection with a ConnectError. */
export function connectBackend(
  addr: HostPort,
  timeoutMs: number,
  opts: DataPathOptions = {},
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    connectSocket(addr, timeoutMs, (err, socket) => (err ? reject(err) : resolve(socket)), opts);
  });
}
