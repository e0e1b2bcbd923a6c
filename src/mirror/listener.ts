import { once } from 'node:events';
import type net from 'node:net';
import type { HostPort } from '../config/types.js';
import { MlbError } from '../errors.js';
import { rawAvailable, type RawTcp } from '../proxy/raw.js';
import { createProxyServer } from '../proxy/sockets.js';

/** Where a listener hands each client: as a socket, or (raw path) as the bare handle. */
export interface Acceptor {
  acceptSocket(socket: net.Socket): void;
  acceptHandle(handle: RawTcp): void;
  /** An accept failed (EMFILE, ENFILE): counted and logged, never fatal. */
  acceptFailed(err: NodeJS.ErrnoException): void;
}

/**
 * The listening socket of one route and its lifecycle: `new` → `bound` (listening, clients
 * wait: a reload not committed yet) → `listening` (serving) → `closed`. Clients go to the
 * acceptor in every phase; the acceptor asks `phase` what to do with them.
 */
export class Listener {
  phase: 'new' | 'bound' | 'listening' | 'closed' = 'new';
  /** Whether accepted sockets take the fast data path (null until listening). */
  fastAccept: boolean | null = null;
  private readonly server: net.Server;

  constructor(
    private readonly name: string,
    acceptor: Acceptor,
    /** Shares the port with the other data-plane loops' listeners (src/workers/). */
    private readonly reusePort = false,
  ) {
    this.server = createProxyServer((socket) => acceptor.acceptSocket(socket), {
      onListening: (fast) => (this.fastAccept = fast),
      takeHandle: rawAvailable()
        ? (handle) => {
            acceptor.acceptHandle(handle as RawTcp);
            return true;
          }
        : undefined,
    });
    // Accept errors must never kill the daemon; libuv keeps listening.
    this.server.on('error', (err: NodeJS.ErrnoException) => {
      if (this.phase !== 'new') acceptor.acceptFailed(err);
    });
  }

  /** Binds. A bind error (EADDRINUSE) rejects and leaves no trace (the caller decides: a refused reload). */
  async listen(at: HostPort): Promise<void> {
    if (this.phase !== 'new')
      throw new MlbError('MLB_ERR_ALREADY_STARTED', `listener of ${this.name} already ${this.phase}`);
    // reusePort is not in @types/node 20's ListenOptions; Node 20 ignores it (check refuses workers there).
    const opts = {
      host: at.host,
      port: at.port,
      backlog: 4096,
      ...(this.reusePort ? { reusePort: true } : {}),
    };
    this.server.listen(opts);
    try {
      await once(this.server, 'listening');
    } catch (err) {
      this.phase = 'closed';
      throw err;
    }
    // close() may have come while the bind was under way: then the listener goes at once.
    if ((this.phase as Listener['phase']) === 'closed') this.server.close();
    else this.phase = 'bound';
  }

  /** Starts serving; false when it was not bound (nothing to serve). */
  serve(): boolean {
    if (this.phase !== 'bound') return false;
    this.phase = 'listening';
    return true;
  }

  /** The bound address (port 0 in tests becomes a real port); null while not listening. */
  address(): net.AddressInfo | null {
    const a = this.server.address();
    return a !== null && typeof a === 'object' ? a : null;
  }

  /** Stops accepting at once (not awaited: the server's 'close' waits for every session). */
  close(): void {
    if (this.phase === 'closed') return;
    const wasListening = this.phase !== 'new';
    this.phase = 'closed';
    if (wasListening) this.server.close();
  }
}
