import { isFastSocket } from '../proxy/sockets.js';
import type { Client } from './client.js';

/** Bytes read from a waiting plain socket at most; beyond it the socket is paused again. */
export const PLAIN_STASH_MAX = 64 * 1024;

/**
 * How a waiting client (held, or at the connect gate) is watched, so that one that leaves
 * is seen at once: its socket resumed, 'close' and 'end' listened to, and an optional wake-up
 * timer (a retry's backoff, or the hold timeout). A fast socket reads once into its
 * early-bytes stash and stops (fastpath.ts); a plain one is read here, its bytes kept (up to
 * PLAIN_STASH_MAX) and added to the client's replay when the watch ends, so they reach the
 * member first and in order.
 */
export class Watch {
  private readonly timer: NodeJS.Timeout | undefined;
  private readonly stash: Buffer[] = [];
  private stashed = 0;
  private readonly onData: ((b: Buffer) => void) | null;
  private readonly onGone: () => void;

  /**
   * `wakeInMs` null: no timer. `onWake` runs when the timer fires, `onLeft` when the client
   * closes or sends its FIN first (a FIN before any byte is a client that left); the watch is
   * over in both cases (the caller moves the client on).
   */
  constructor(
    private readonly client: Client,
    wakeInMs: number | null,
    onWake: (c: Client) => void,
    onLeft: (c: Client) => void,
  ) {
    const socket = client.socket!;
    this.timer =
      wakeInMs === null
        ? undefined
        : setTimeout(
            () => {
              this.end();
              onWake(client);
            },
            Math.max(0, wakeInMs),
          );
    this.onGone = () => {
      if (client.watch !== this) return;
      this.end();
      socket.destroy();
      onLeft(client);
    };
    this.onData = isFastSocket(socket)
      ? null
      : (b: Buffer) => {
          this.stash.push(b);
          this.stashed += b.length;
          if (this.stashed >= PLAIN_STASH_MAX) socket.pause();
        };
    socket.once('close', this.onGone);
    socket.once('end', this.onGone);
    if (this.onData) socket.on('data', this.onData).resume();
    else socket.resume();
    client.watch = this;
  }

  /**
   * Stops watching: timer cleared, listeners removed, a plain socket paused again with its
   * bytes read so far added to the client's replay. Idempotent.
   */
  end(): void {
    const c = this.client;
    if (c.watch !== this) return;
    c.watch = null;
    clearTimeout(this.timer);
    const socket = c.socket!;
    socket.off('close', this.onGone);
    socket.off('end', this.onGone);
    if (this.onData) {
      socket.off('data', this.onData);
      socket.pause();
      if (this.stash.length > 0) c.replay = [...(c.replay ?? []), ...this.stash];
    }
  }
}
