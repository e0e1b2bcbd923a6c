import net from 'node:net';

/**
 * The one place that touches Node's semi-private server internals. Node 20 gives accepted
 * sockets no way to take `onread`, so we wrap `server._handle.onconnection` (the libuv
 * accept callback) and build the `net.Socket` ourselves, doing what `net.js`'s own
 * `onconnection` does: count the connection on the server, link the socket to it, emit
 * 'connection'. Anything unexpected (no handle, an error, `maxConnections`) goes to the
 * original callback, and a Node whose internals differ simply keeps the plain path.
 */

interface ServerHandle {
  onconnection: (this: ServerHandle, err: number, clientHandle: unknown) => void;
  /** TCPWrap's uv_tcp_nodelay; 0 on success. */
  setNoDelay?: (on: boolean) => number;
}

interface ServerInternals {
  _handle?: ServerHandle | null;
  _connections?: number;
}

interface SocketInternals {
  server: net.Server | null;
  _server: net.Server | null;
}

/**
 * Builds the socket for one accepted handle (the caller's options, e.g. `onread`).
 * `noDelay` is true when the listening socket has TCP_NODELAY, which Linux copies to every
 * socket it accepts: then the accepted socket needs no setsockopt of its own.
 */
export type SocketFactory = (handle: unknown, noDelay: boolean) => net.Socket;

/**
 * Offered each accepted handle before a socket is made for it: returns true when it took the
 * handle (the raw path, raw.ts), false to have the socket made as usual.
 */
export type HandleTaker = (handle: unknown) => boolean;

const kHooked = Symbol('mirrorlb.acceptHooked');

/**
 * Installs the hook every time the server starts listening (each listen has a new handle).
 * `onHooked(true|false)` reports whether the fast accept path is in use for that listen.
 */
export function hookAccept(
  server: net.Server,
  makeSocket: SocketFactory,
  onHooked?: (ok: boolean) => void,
  take?: HandleTaker,
): void {
  // Prepended so it runs before any 'listening' listener that could already trigger accepts.
  server.prependListener('listening', () => {
    const ok = wrap(server, makeSocket, take);
    onHooked?.(ok);
  });
}

function wrap(server: net.Server, makeSocket: SocketFactory, take: HandleTaker | undefined): boolean {
  const internals = server as unknown as ServerInternals;
  const handle = internals._handle as (ServerHandle & { [kHooked]?: true }) | null | undefined;
  if (!handle || typeof handle.onconnection !== 'function' || typeof internals._connections !== 'number') {
    return false;
  }
  if (handle[kHooked]) return true;
  const original = handle.onconnection;
  // One setsockopt on the listener instead of one per accepted socket (Linux only: other
  // systems do not promise that accepted sockets inherit it).
  const noDelay = process.platform === 'linux' && handle.setNoDelay?.(true) === 0;
  // The raw path needs TCP_NODELAY inherited from the listener (it makes no socket to set it on).
  const taker = noDelay ? take : undefined;
  handle.onconnection = function onconnection(this: ServerHandle, err: number, clientHandle: unknown): void {
    if (err !== 0 || !clientHandle || server.maxConnections) return original.call(this, err, clientHandle);
    let socket: net.Socket;
    try {
      // A handle the taker keeps is not counted in the server's _connections: nothing here
      // waits for the server's 'close', and the raw path closes its handles itself.
      if (taker?.(clientHandle)) return;
      socket = makeSocket(clientHandle, noDelay);
    } catch (e) {
      // Never an exception out of libuv's accept callback (it would take the process down).
      (clientHandle as { close?: () => void }).close?.();
      server.emit('error', e);
      return;
    }
    (internals._connections as number)++;
    // Both fields are what net.js reads when the socket is destroyed (to update _connections).
    (socket as unknown as SocketInternals).server = server;
    (socket as unknown as SocketInternals)._server = server;
    server.emit('connection', socket);
  };
  handle[kHooked] = true;
  return true;
}
