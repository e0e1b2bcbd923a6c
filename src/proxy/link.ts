import type { Socket } from 'node:net';

/**
 * A link joins two connected sockets and forwards bytes both ways, unchanged and in
 * order, with backpressure and half-close honoured (contract rule 7). It owns both
 * sockets from the moment it is made: it ends them, destroys them, and reports once.
 *
 * This is the data path; `src/proxy/session.ts` decides when to make and cut links.
 */
export interface Link {
  /** Bytes forwarded client → backend. */
  readonly bytesIn: number;
  /** Bytes forwarded backend → client. */
  readonly bytesOut: number;
  /** Cuts both sockets at once (a demoted member, a disabled member, shutdown). */
  destroy(): void;
}

export interface LinkHooks {
  /** Called exactly once, when both sockets are closed. */
  onClose(result: { error: Error | null }): void;
}

export function link(client: Socket, backend: Socket, hooks: LinkHooks): Link {
  let bytesIn = 0;
  let bytesOut = 0;
  let firstError: Error | null = null;
  let open = 2;
  let reported = false;

  const finish = (): void => {
    if (--open > 0 || reported) return;
    reported = true;
    hooks.onClose({ error: firstError });
  };
  const fail = (err: Error): void => {
    firstError ??= err;
    // One side's failure ends the session: the other side must not wait forever.
    client.destroy();
    backend.destroy();
  };

  client.setNoDelay(true);
  backend.setNoDelay(true);
  client.on('data', (chunk: Buffer) => {
    bytesIn += chunk.length;
    if (!backend.write(chunk)) client.pause();
  });
  backend.on('data', (chunk: Buffer) => {
    bytesOut += chunk.length;
    if (!client.write(chunk)) backend.pause();
  });
  backend.on('drain', () => client.resume());
  client.on('drain', () => backend.resume());
  // Half-close: a FIN from one side is forwarded as a FIN to the other (allowHalfOpen on both).
  client.on('end', () => backend.end());
  backend.on('end', () => client.end());
  client.on('error', fail);
  backend.on('error', fail);
  client.on('close', finish);
  backend.on('close', finish);
  // A socket that closed before we attached (e.g. a client that vanished while held) still counts.
  if (client.destroyed) setImmediate(() => client.emit('close'));
  if (backend.destroyed) setImmediate(() => backend.emit('close'));
  client.resume();
  backend.resume();

  return {
    get bytesIn() {
      return bytesIn;
    },
    get bytesOut() {
      return bytesOut;
    },
    destroy() {
      client.destroy();
      backend.destroy();
    },
  };
}
