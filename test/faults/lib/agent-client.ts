import http from 'node:http';
import net from 'node:net';

/**
 * The test side of agent.mjs: TCP connections and HTTP requests made from inside the
 * agent's namespace, from the test process that stays outside.
 */
export class Agent {
  constructor(readonly socketPath: string) {}

  /** A socket to host:port as seen from the agent's namespace; rejects with the error code. */
  connect(host: string, port: number, timeoutMs = 5000): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ path: this.socketPath, allowHalfOpen: true });
      let head = Buffer.alloc(0);
      const fail = (code: string): void => {
        clearTimeout(timer);
        s.destroy();
        reject(Object.assign(new Error(`agent connect ${host}:${port}: ${code}`), { code }));
      };
      const timer = setTimeout(() => fail('TIMEOUT'), timeoutMs);
      s.on('error', (e: NodeJS.ErrnoException) => fail(e.code ?? 'ERROR'));
      s.once('connect', () => s.write(`${host} ${port}\n`));
      const onData = (c: Buffer): void => {
        head = Buffer.concat([head, c]);
        const nl = head.indexOf(10);
        if (nl < 0) return;
        s.off('data', onData);
        s.off('end', onEnd);
        const line = head.subarray(0, nl).toString();
        if (line !== 'OK') return fail(line.replace(/^ERR /, ''));
        clearTimeout(timer);
        s.pause();
        const rest = head.subarray(nl + 1);
        if (rest.length > 0) s.unshift(rest);
        s.removeAllListeners('error');
        s.on('error', () => undefined);
        resolve(s);
      };
      const onEnd = (): void => fail('CLOSED');
      s.on('data', onData);
      s.once('end', onEnd);
    });
  }

  /** One HTTP request through the agent (no keep-alive); rejects on a socket error or after `timeoutMs`. */
  request(
    url: string,
    opts: { method?: string; body?: string; headers?: Record<string, string>; timeoutMs?: number } = {},
  ): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
    const u = new URL(url);
    const port = Number(u.port || 80);
    const timeoutMs = opts.timeoutMs ?? 5000;
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          method: opts.method ?? 'GET',
          host: u.hostname,
          port,
          path: `${u.pathname}${u.search}`,
          headers: { connection: 'close', ...(opts.headers ?? {}) },
          createConnection: ((_o: unknown, cb: (err: Error | null, s?: net.Socket) => void) => {
            this.connect(u.hostname, port, timeoutMs).then(
              (s) => {
                // connect() hands sockets over paused; the HTTP parser only adds a 'data' listener.
                s.resume();
                cb(null, s);
              },
              (e: Error) => cb(e),
            );
            return undefined;
          }) as unknown as http.ClientRequestArgs['createConnection'],
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            clearTimeout(timer);
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: Buffer.concat(chunks).toString(),
            });
          });
          res.on('error', (e) => {
            clearTimeout(timer);
            reject(e);
          });
        },
      );
      const timer = setTimeout(
        () =>
          req.destroy(
            Object.assign(new Error(`${url}: no answer within ${timeoutMs} ms`), { code: 'TIMEOUT' }),
          ),
        timeoutMs,
      );
      req.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      req.end(opts.body);
    });
  }
}
