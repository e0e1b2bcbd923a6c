import net from 'node:net';
import type { HostPort } from '../config/types.js';

/**
 * Socket creation for the data path, kept in one module so a faster path (pooled read
 * buffers, raw handles) can replace it behind the same two functions.
 */

/** A listening server whose accepted sockets are ready for `link()`; half-open allowed. */
export function createProxyServer(onConnection: (socket: net.Socket) => void): net.Server {
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, onConnection);
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
 * Connects to a backend. Resolves with a connected socket, or rejects with a ConnectError
 * whose code is the errno (ECONNREFUSED, ...) or MLB_ERR_CONNECT_TIMEOUT.
 * `host` should already be an IP literal (resolved once per config), so no lookup runs here.
 */
export function connectBackend(addr: HostPort, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: addr.host, port: addr.port, allowHalfOpen: true, noDelay: true });
    socket.pause();
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new ConnectError('MLB_ERR_CONNECT_TIMEOUT', `connect to ${addr.host}:${addr.port} timed out`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new ConnectError(err.code ?? 'MLB_ERR_CONNECT', err.message));
    });
  });
}
