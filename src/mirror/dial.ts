import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { MemberConfig } from '../config/types.js';
import { DeadlineQueue } from '../proxy/deadline-queue.js';
import { rawAvailable, rawDial, type RawAttempt, type RawDialer, type RawTcp } from '../proxy/raw.js';
import type { Resolver } from '../proxy/resolver.js';
import { connectSocket, socketForHandle, type ConnectError } from '../proxy/sockets.js';
import { errnoName as errnoOf } from '../errno.js';
import type { Client } from './client.js';

/** A connected backend: a raw handle (the client is one too) or a paused socket. */
export type Backend =
  { readonly handle: RawTcp; readonly socket: null } | { readonly handle: null; readonly socket: net.Socket };

/** One backend connect under way for a client (its `dial` while `connecting`). */
export interface Dial {
  readonly member: string;
  /** Gives the connect up at once (its member lost the role, shutdown): nothing is reported. */
  cancel(): void;
}

/** Who hears how a connect ended: the route. Exactly one call per dial that was not cancelled. */
export interface DialOwner {
  connected(c: Client, member: string, backend: Backend): void;
  failed(c: Client, member: string, code: string): void;
}

/** The raw path's connect, as a Dial. */
class RawDial implements Dial {
  constructor(
    readonly member: string,
    readonly attempt: RawAttempt<Client>,
    private readonly queue: DeadlineQueue<RawAttempt<Client>>,
  ) {}

  cancel(): void {
    this.queue.remove(this.attempt);
    this.attempt.abandon();
  }
}

/** The socket path's connect, as a Dial. */
class SocketDial implements Dial {
  constructor(
    readonly member: string,
    private readonly socket: net.Socket,
  ) {}

  cancel(): void {
    this.socket.destroy();
  }
}

/**
 * One way to connect a client to a member, over either data path: a client that is still a
 * raw handle is dialled on the raw path when the member's address is a resolved IP (no socket
 * is made for either side); anything else connects a socket (a raw client is wrapped first).
 * Connect timeouts of raw dials share one timer (DeadlineQueue); socket dials time out on
 * their own.
 */
export class Dialer implements RawDialer<Client> {
  private readonly deadlines = new DeadlineQueue<RawAttempt<Client>>(
    (a) => this.timedOut(a),
    () => performance.now(),
  );

  constructor(
    private readonly owner: DialOwner,
    private readonly resolver: Resolver,
  ) {}

  /** Starts the connect of `c` to `member`; sets `c.dial`. */
  start(c: Client, member: MemberConfig, timeoutMs: number): void {
    if (c.handle !== null && rawAvailable()) {
      const addr = this.resolver.dial(member.address);
      if (addr.family !== 0) {
        const a = rawDial(
          c.handle,
          addr.host,
          addr.family,
          addr.port,
          c,
          performance.now() + timeoutMs,
          this,
        );
        // A connect that cannot even start goes the socket way, which reports its failure as usual.
        if (typeof a !== 'string') {
          this.deadlines.push(a);
          c.dial = new RawDial(member.name, a, this.deadlines);
          return;
        }
      }
    }
    toSocket(c);
    const name = member.name;
    const socket = connectSocket(
      this.resolver.get(member.address),
      timeoutMs,
      (err: ConnectError | null, s) => {
        if (err === null) this.owner.connected(c, name, { handle: null, socket: s });
        else this.owner.failed(c, name, err.code);
      },
    );
    c.dial = new SocketDial(name, socket);
  }

  /** RawDialer: a raw connect completed (0) or failed (a negative errno). */
  dialed(a: RawAttempt<Client>, status: number): void {
    this.deadlines.remove(a);
    const c = a.owner;
    const member = c.dial!.member;
    if (status === 0) return this.owner.connected(c, member, { handle: a.backend, socket: null });
    a.backend.close();
    this.owner.failed(c, member, errnoOf(status));
  }

  /** Stops the timer (every dial is cancelled by its route first). */
  close(): void {
    this.deadlines.clear();
  }

  private timedOut(a: RawAttempt<Client>): void {
    a.abandon();
    this.owner.failed(a.owner, a.owner.dial!.member, 'MLB_ERR_CONNECT_TIMEOUT');
  }
}

/** Makes the socket of a client that is still a raw handle (to wait, or to take the socket path). */
export function toSocket(c: Client): net.Socket {
  if (c.socket === null) {
    c.socket = socketForHandle(c.handle);
    c.handle = null;
  }
  return c.socket;
}
