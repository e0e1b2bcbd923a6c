import http from 'node:http';
import net from 'node:net';

type Test = { teardown(fn: () => unknown): void };

/** A loopback server started for one test; it counts the TCP connections it accepted. */
export interface TestServer<S extends net.Server> {
  readonly server: S;
  readonly port: number;
  /** TCP connections accepted so far. */
  connections(): number;
  /** Resolves when `n` accepted connections have closed (bounded by `within`). */
  closedConnections(n: number): Promise<void>;
  url(path?: string): string;
}

async function start<S extends net.Server>(t: Test, server: S): Promise<TestServer<S>> {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  let closed = 0;
  const waiters: Array<() => void> = [];
  server.on('connection', (socket: net.Socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.once('close', () => {
      sockets.delete(socket);
      closed++;
      for (const w of waiters.splice(0)) w();
    });
  });
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  const closedConnections = async (n: number): Promise<void> => {
    while (closed < n) await new Promise<void>((resolve) => waiters.push(resolve));
  };
  return {
    server,
    port,
    connections: () => accepted,
    closedConnections,
    url: (path = '/csp/mirror_status.cxw') => `http://127.0.0.1:${port}${path}`,
  };
}

/** An HTTP server on a free loopback port, closed (with all its sockets) in teardown. */
export function withHttpServer(t: Test, handler: http.RequestListener): Promise<TestServer<http.Server>> {
  return start(t, http.createServer(handler));
}

/**
 * A raw TCP server on a free loopback port: `onSocket` decides what it says, if anything.
 * The default reads and ignores everything and never answers (a hung member); it reads so
 * that it notices when the client closes.
 */
export function withTcpServer(
  t: Test,
  onSocket: (socket: net.Socket) => void = (socket) => socket.resume(),
): Promise<TestServer<net.Server>> {
  return start(t, net.createServer(onSocket));
}

/** A loopback port that nothing listens on (bound once, then released). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Settles like `p`, or rejects after `ms` so that a broken test fails instead of hanging. */
export function within<T>(p: Promise<T>, ms: number, what = 'operation'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}
