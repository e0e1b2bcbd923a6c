import type { Socket } from 'node:net';

/**
 * A client waiting for a primary: accepted, paused (its bytes wait in the kernel), and
 * bounded by a deadline fixed when it arrived.
 */
export interface PendingClient {
  readonly socket: Socket;
  /** Monotonic ms after which the client is released to a suspect primary or closed. */
  readonly deadline: number;
  readonly acceptedAt: number;
  /** Backend connects tried so far (for the retry backoff). */
  attempts: number;
  /** Bytes the client sent to a member that never answered, to send first to the next one. */
  readonly replay?: readonly Buffer[];
}

/**
 * How a held client's socket is watched so that a client that leaves is seen at once:
 * `fast` sockets read once into their early-bytes stash and stop (fastpath.ts), so the
 * caller only resumes them; `plain` sockets are read here, their bytes kept (up to
 * PLAIN_STASH_MAX, then reading stops) and handed back as `replay` when the client leaves
 * the queue, so they are sent to the member first and in order.
 */
export type HoldWatch = 'fast' | 'plain';

/** Bytes read from a held plain socket at most; beyond it the socket is paused again. */
export const PLAIN_STASH_MAX = 64 * 1024;

interface Entry {
  client: PendingClient;
  readonly timer: NodeJS.Timeout | undefined;
  readonly onClose: () => void;
  readonly onData: ((b: Buffer) => void) | null;
  readonly stash: Buffer[];
}

/**
 * The hold queue of one mirror: bounded in count (the caller checks `size` against
 * max_held) and in time (each entry wakes at its own time). Released in arrival order.
 * A client that disconnects while held leaves the queue at once and is never released.
 * The proxy also keeps the clients waiting at its connect gate in one (no timer: connect-gate.ts).
 */
export class HoldQueue {
  /** By socket, which stays the same when an entry's client gains its replay. */
  private readonly entries = new Map<Socket, Entry>();

  /** `onGone` runs when a held client leaves by itself (closed, reset): the held gauge and the count of clients that left. */
  constructor(private readonly onGone: (c: PendingClient) => void = () => {}) {}

  get size(): number {
    return this.entries.size;
  }

  /** Holds `client` until `release()`, `take()` or until `wakeInMs` (null: no timer), then calls `onWake`. */
  add(
    client: PendingClient,
    wakeInMs: number | null,
    onWake: (c: PendingClient) => void,
    watch: HoldWatch = 'fast',
  ): void {
    const stash: Buffer[] = [];
    let stashed = 0;
    const entry: Entry = {
      client,
      stash,
      timer:
        wakeInMs === null
          ? undefined
          : setTimeout(
              () => {
                onWake(this.remove(entry));
              },
              Math.max(0, wakeInMs),
            ),
      // A client that gives up while held leaves the queue at once. A FIN before any byte
      // ('end' can only come first when nothing was read) is a client that left: close it too.
      onClose: () => {
        if (this.entries.get(client.socket) !== entry) return;
        const c = this.remove(entry);
        c.socket.destroy();
        this.onGone(c);
      },
      onData:
        watch === 'plain'
          ? (b: Buffer) => {
              stash.push(b);
              stashed += b.length;
              if (stashed >= PLAIN_STASH_MAX) client.socket.pause();
            }
          : null,
    };
    client.socket.once('close', entry.onClose);
    client.socket.once('end', entry.onClose);
    if (entry.onData) client.socket.on('data', entry.onData).resume();
    else client.socket.resume();
    this.entries.set(client.socket, entry);
  }

  /** Takes an entry out; a plain socket is paused again and its bytes read so far become replay. */
  private remove(e: Entry): PendingClient {
    this.entries.delete(e.client.socket);
    clearTimeout(e.timer);
    e.client.socket.off('close', e.onClose);
    e.client.socket.off('end', e.onClose);
    if (e.onData) {
      e.client.socket.off('data', e.onData);
      e.client.socket.pause();
      if (e.stash.length > 0) e.client = { ...e.client, replay: [...(e.client.replay ?? []), ...e.stash] };
    }
    return e.client;
  }

  /** Removes and returns every held client, oldest first. */
  release(): PendingClient[] {
    return [...this.entries.values()].map((e) => this.remove(e));
  }

  /** Removes and returns the client of `socket`, or undefined when it is not held (it left). */
  take(socket: Socket): PendingClient | undefined {
    const e = this.entries.get(socket);
    return e === undefined ? undefined : this.remove(e);
  }
}
