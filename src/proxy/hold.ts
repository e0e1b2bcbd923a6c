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

interface Entry {
  readonly client: PendingClient;
  readonly timer: NodeJS.Timeout;
  readonly onClose: () => void;
}

/**
 * The hold queue of one mirror: bounded in count (the caller checks `size` against
 * max_held) and in time (each entry wakes at its own time). Released in arrival order.
 */
export class HoldQueue {
  private readonly entries = new Set<Entry>();

  /** `onGone` runs when a held client leaves by itself (closed, reset), for the held gauge. */
  constructor(private readonly onGone: () => void = () => {}) {}

  get size(): number {
    return this.entries.size;
  }

  /** Holds `client` until `release()` or until `wakeInMs`, then calls `onWake`. */
  add(client: PendingClient, wakeInMs: number, onWake: (c: PendingClient) => void): void {
    const entry: Entry = {
      client,
      timer: setTimeout(
        () => {
          this.remove(entry);
          onWake(client);
        },
        Math.max(0, wakeInMs),
      ),
      // A client that gives up while held leaves the queue at once. A FIN before any byte
      // ('end' can only come first when nothing was read) is a client that left: close it too.
      onClose: () => {
        if (!this.entries.has(entry)) return;
        this.remove(entry);
        client.socket.destroy();
        this.onGone();
      },
    };
    client.socket.once('close', entry.onClose);
    client.socket.once('end', entry.onClose);
    this.entries.add(entry);
  }

  private remove(e: Entry): void {
    this.entries.delete(e);
    clearTimeout(e.timer);
    e.client.socket.off('close', e.onClose);
    e.client.socket.off('end', e.onClose);
  }

  /** Removes and returns every held client, oldest first. */
  release(): PendingClient[] {
    const out: PendingClient[] = [];
    for (const e of [...this.entries]) {
      this.remove(e);
      out.push(e.client);
    }
    return out;
  }
}
