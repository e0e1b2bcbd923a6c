import net from 'node:net';
import type { HostPort } from '../config/types.js';

/**
 * Whether a member's SuperServer port still accepts a TCP connect. Asked by the prober
 * only after every status URL failed, so a dead status page can be told apart from a
 * dead member (contract rule 3). Nothing is sent: the socket is closed as soon as the
 * connect succeeds. Resolves false on refusal, any socket error, the timeout, or when
 * `signal` aborts (the prober is closing); never rejects.
 */
export function checkSuperserver(addr: HostPort, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve(false);
      return;
    }
    const socket = net.connect({ host: addr.host, port: addr.port });
    // Errors after the answer (a member that resets at once) must not become uncaught.
    socket.on('error', () => {});
    let done = false;
    const finish = (ok: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve(ok);
    };
    const onAbort = (): void => finish(false);
    const timer = setTimeout(() => finish(false), timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => finish(true));
    socket.once('error', () => finish(false));
  });
}
