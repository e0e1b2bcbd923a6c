import { once } from 'node:events';
import type net from 'node:net';
import type { HostPort } from '../config/types.js';
import { MlbError } from '../errors.js';
import { bindPausable, type PausableListen } from '../proxy/listen-handle.js';
import { rawAvailable, type RawTcp } from '../proxy/raw.js';
import { createProxyServer } from '../proxy/sockets.js';
import type { FdBudget, Pausable } from './fd-budget.js';

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
export class Listener implements Pausable {
  phase: 'new' | 'bound' | 'listening' | 'closed' = 'new';
  /** Whether accepted sockets take the fast data path (null until listening). */
  fastAccept: boolean | null = null;
  private readonly server: net.Server;
  /** The handle that stops and resumes accepting at the descriptor ceiling; null where it cannot. */
  private pausable: PausableListen | null = null;

  constructor(
    private readonly name: string,
    acceptor: Acceptor,
    private readonly budget: FdBudget | null = null,
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
    try {
      // A pausable handle is bound here, before Node could set SO_REUSEPORT on it: loops that
      // share a port listen the usual way (the budget then refuses past the ceiling instead).
      this.pausable = this.budget === null || this.reusePort ? null : await bindPausable(at.host, at.port);
      if (this.pausable !== null) this.server.listen(this.pausable.handle, 4096);
      // reusePort is not in @types/node 20's ListenOptions; Node 20 ignores it (check refuses workers there).
      else
        this.server.listen({
          host: at.host,
          port: at.port,
          backlog: 4096,
          ...(this.reusePort ? { reusePort: true } : {}),
        });
      await once(this.server, 'listening');
    } catch (err) {
      this.phase = 'closed';
      throw err;
    }
    // close() may have come while the bind was under way: then the listener goes at once.
    if ((this.phase as Listener['phase']) === 'closed') return void this.server.close();
    this.phase = 'bound';
    if (this.pausable?.arm()) this.budget!.add(this);
  }

  /** At the descriptor ceiling: new clients wait in the kernel's listen queue (listen-handle.ts). */
  pause(): void {
    this.pausable?.pause();
  }

  resume(): void {
    this.pausable?.resume();
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
    this.budget?.remove(this);
    if (wasListening) this.server.close();
  }
}
