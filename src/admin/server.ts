import { timingSafeEqual, createHash } from 'node:crypto';
import { once } from 'node:events';
import { adminMaxConnections } from '../mirror/fd-budget.js';
import { readOpenFilesLimit } from '../proxy/fd-limit.js';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AdminConfig } from '../config/types.js';
import type { AdminAction, Daemon } from '../daemon.js';
import { httpStatusOf, MlbError, type ErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import { VERSION } from '../version.js';
import { loadPage } from './page.js';
import { buildStatus } from './status.js';

type Handler = (
  req: http.IncomingMessage,
  res: http.ServerResponse,
  params: string[],
) => void | Promise<void>;

interface Route {
  readonly pattern: RegExp;
  readonly methods: Readonly<Record<string, Handler>>;
}

/**
 * The admin HTTP listener: health, readiness, status, metrics, events and maintenance
 * actions. A thin shell over the Daemon; every answer is JSON or text, every error has a
 * status and a stable code, and no request body is ever read (bodies are ignored).
 */
export class AdminServer {
  private readonly server: http.Server;
  private readonly routes: Route[];

  constructor(
    private readonly daemon: Daemon,
    private config: AdminConfig,
    private readonly log: Logger,
  ) {
    this.routes = this.buildRoutes();
    // Slow clients are timed out (checked every second, not Node's 30 s) and capped, so a flood
    // of them holds at most adminMaxConnections descriptors, the part of the budget kept for
    // the admin (fd-budget.ts): the rest stay the proxy's.
    this.server = http.createServer(
      { connectionsCheckingInterval: 1000 },
      (req, res) => void this.handle(req, res),
    );
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 30_000;
    this.server.maxConnections = adminMaxConnections(readOpenFilesLimit());
    // Unparseable HTTP gets a plain 400 when the socket can still take it, never a crash.
    // CONNECT never reaches the request handler; answer it like any other unsupported method.
    this.server.on('connect', (_req, socket) =>
      socket.end('HTTP/1.1 405 Method Not Allowed\r\nConnection: close\r\nContent-Length: 0\r\n\r\n'),
    );
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      if (!socket.writable) return void socket.destroy();
      const status =
        err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      // A peer that never reads must not keep the socket: end() alone waits for it.
      setTimeout(() => socket.destroy(), 1000).unref();
    });
  }

  setConfig(config: AdminConfig): void {
    this.config = config;
  }

  async listen(): Promise<void> {
    if (this.server.listening) {
      throw new MlbError('MLB_ERR_ALREADY_STARTED', 'admin server already listening');
    }
    const { host, port } = this.config.listen;
    this.server.listen({ host, port });
    await once(this.server, 'listening');
    this.server.on('error', (err) => this.log.error({ err: err.message }, 'admin server error'));
  }

  address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  async close(): Promise<void> {
    if (!this.server.listening) return;
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private buildRoutes(): Route[] {
    const d = this.daemon;
    const json = (res: http.ServerResponse, status: number, body: unknown): void =>
      send(res, status, 'application/json', JSON.stringify(body));
    const action =
      (a: AdminAction): Handler =>
      (req, res, [mirror, member]) => {
        const verdict = this.authorized(req);
        if (verdict === 'no-token') {
          return sendError(
            res,
            'MLB_ERR_FORBIDDEN',
            'maintenance actions are refused on a non-loopback admin listener without a token: ' +
              'set admin.token (e.g. token: ${MIRRORLB_ADMIN_TOKEN:-}) and send Authorization: Bearer <token>',
          );
        }
        if (verdict !== 'ok') {
          res.setHeader('WWW-Authenticate', 'Bearer');
          return sendError(res, 'MLB_ERR_UNAUTHORIZED', 'missing or wrong bearer token');
        }
        if (!d.adminAction(mirror!, member!, a)) {
          return sendError(res, 'MLB_ERR_NOT_FOUND', `no member ${member} in mirror ${mirror}`);
        }
        json(res, 200, { mirror, member, action: a, ok: true });
      };
    return [
      {
        pattern: /^\/$/,
        methods: {
          GET: async (_q, res) => {
            const page = await loadPage();
            res.setHeader('Content-Security-Policy', page.csp);
            res.setHeader('X-Content-Type-Options', 'nosniff');
            send(res, 200, 'text/html; charset=utf-8', page.html);
          },
        },
      },
      { pattern: /^\/healthz$/, methods: { GET: (_q, res) => send(res, 200, 'text/plain', 'ok\n') } },
      {
        pattern: /^\/readyz$/,
        methods: {
          GET: (req, res) => {
            // Replica readiness for an outer load balancer; ?mirror=NAME asks about one mirror.
            const mirror = new URL(req.url ?? '/', 'http://x').searchParams.get('mirror');
            if (mirror === null) {
              return d.ready()
                ? send(res, 200, 'text/plain', 'ready\n')
                : send(res, 503, 'text/plain', `not ready: ${notReadyReason(d.phase)}\n`);
            }
            const pool = new URL(req.url ?? '/', 'http://x').searchParams.get('pool');
            if (pool !== null) {
              const p = d.poolReady(mirror, pool);
              if (p === null)
                return json(res, 404, {
                  error: 'MLB_ERR_NOT_FOUND',
                  message: `no pool ${pool} in mirror ${mirror}`,
                });
              return p
                ? send(res, 200, 'text/plain', `ready: pool ${pool} of mirror ${mirror} takes clients\n`)
                : send(
                    res,
                    503,
                    'text/plain',
                    `not ready: pool ${pool} of mirror ${mirror} sends new clients nowhere\n`,
                  );
            }
            const r = d.mirrorReady(mirror);
            if (r === null)
              return json(res, 404, { error: 'MLB_ERR_NOT_FOUND', message: `no mirror ${mirror}` });
            if (r)
              return send(res, 200, 'text/plain', `ready: mirror ${mirror} has a primary taking clients\n`);
            const why = d.ready()
              ? `mirror ${mirror} has no primary taking clients (new clients are held)`
              : notReadyReason(d.phase);
            send(res, 503, 'text/plain', `not ready: ${why}\n`);
          },
        },
      },
      { pattern: /^\/status$/, methods: { GET: (_q, res) => json(res, 200, buildStatus(d, VERSION)) } },
      { pattern: /^\/events$/, methods: { GET: (_q, res) => json(res, 200, d.events.list()) } },
      {
        pattern: /^\/metrics$/,
        methods: {
          GET: async (_q, res) => {
            send(res, 200, d.metrics.registry.contentType, await d.metricsText());
          },
        },
      },
      { pattern: /^\/mirrors\/([^/]+)\/members\/([^/]+)\/drain$/, methods: { POST: action('drain') } },
      { pattern: /^\/mirrors\/([^/]+)\/members\/([^/]+)\/disable$/, methods: { POST: action('disable') } },
      { pattern: /^\/mirrors\/([^/]+)\/members\/([^/]+)\/enable$/, methods: { POST: action('enable') } },
    ];
  }

  /**
   * Adds a route after the built-in table (the page, /status, /metrics... are all in
   * buildRoutes); tests use it to mount handlers that fail, to check the 500 path.
   */
  addRoute(pattern: RegExp, methods: Record<string, Handler>): void {
    this.routes.push({ pattern, methods });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    // Bodies are ignored: never buffer them, and close the connection so nothing lingers.
    if (
      (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0') ||
      req.headers['transfer-encoding']
    ) {
      res.setHeader('Connection', 'close');
      req.resume();
    }
    let path: string;
    try {
      path = decodePath(req.url ?? '/');
    } catch {
      return sendError(res, 'MLB_ERR_BAD_REQUEST', 'bad path');
    }
    for (const r of this.routes) {
      const m = r.pattern.exec(path);
      if (!m) continue;
      const method = req.method === 'HEAD' && r.methods.GET ? 'GET' : (req.method ?? '');
      const h = r.methods[method];
      if (!h) {
        const allowed = Object.keys(r.methods);
        res.setHeader('Allow', (allowed.includes('GET') ? [...allowed, 'HEAD'] : allowed).join(', '));
        return sendError(res, 'MLB_ERR_METHOD', `${req.method} not allowed on ${path}`);
      }
      try {
        await h(
          req,
          res,
          m.slice(1).map((p) => decodeURIComponent(p)),
        );
      } catch (err) {
        this.log.error({ err: (err as Error).message, path }, 'admin handler failed');
        if (!res.headersSent) sendError(res, 'MLB_ERR_INTERNAL', 'internal error');
        else res.destroy();
      }
      return;
    }
    sendError(res, 'MLB_ERR_NOT_FOUND', `no such path: ${path}`);
  }

  /**
   * 'ok', 'wrong-token' (401), or 'no-token' (403): without admin.token the actions are
   * open only on a loopback listener (contract, admin section), judged by the address
   * actually bound, so `localhost` or `0.0.0.0` cannot be mistaken either way.
   */
  private authorized(req: http.IncomingMessage): 'ok' | 'wrong-token' | 'no-token' {
    const token = this.config.token;
    if (token === null) return isLoopback(this.address().address) ? 'ok' : 'no-token';
    // The scheme name is case-insensitive (RFC 9110 section 11.1).
    const m = /^bearer +(\S+) *$/i.exec(req.headers.authorization ?? '');
    const given = m ? m[1]! : '';
    // Compare digests so the comparison is constant-time whatever the lengths.
    const a = createHash('sha256').update(given).digest();
    const b = createHash('sha256').update(token).digest();
    return timingSafeEqual(a, b) && given.length > 0 ? 'ok' : 'wrong-token';
  }
}

function notReadyReason(phase: Daemon['phase']): string {
  switch (phase) {
    case 'grace':
      return 'shutting down (still accepting for the grace period)';
    case 'stopping':
    case 'stopped':
      return 'shutting down';
    case 'new':
      return 'starting';
    case 'running':
      return 'a listener is not bound';
    default: {
      const never: never = phase;
      return never;
    }
  }
}

/** 127.0.0.0/8, ::1 and their IPv4-mapped form: only this machine can connect. */
function isLoopback(address: string): boolean {
  return /^(::ffff:)?127\.\d+\.\d+\.\d+$/i.test(address) || address === '::1';
}

function decodePath(url: string): string {
  const q = url.indexOf('?');
  const raw = q === -1 ? url : url.slice(0, q);
  decodeURIComponent(raw); // throws on malformed escapes
  return raw.length > 1 && raw.endsWith('/') ? raw.slice(0, -1) : raw;
}

/** An error answer: its status comes from the catalogue (src/errors.ts), the body names the code. */
function sendError(res: http.ServerResponse, code: ErrorCode, message: string): void {
  send(res, httpStatusOf(code), 'application/json', JSON.stringify({ error: code, message }));
}

function send(res: http.ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, {
    'Content-Type': type,
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
  });
  res.end(body);
}
