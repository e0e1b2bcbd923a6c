import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { pino, type Logger } from 'pino';
import { handleControl, reply } from './control.js';
import {
  isSimRole,
  SimError,
  STATUS_MODES,
  type AcceptedConnection,
  type SimOptions,
  type SimRole,
  type StatusMode,
} from './types.js';
import { replicaAnswer } from './replica-status.js';

export * from './types.js';

/**
 * A simulated IRIS mirror member: a SuperServer port that greets with its name and
 * echoes, and a web port serving `mirror_status.cxw` the way IRIS does (200 SUCCESS on
 * the primary, 503 FAILED elsewhere). It stands in for IRIS in tests, the demo and the
 * license-free compose stack, and can be made to fail in the ways real members fail
 * (crash, hang, broken or slow status page) so the balancer can be tested against them.
 *
 * Owned by whoever constructs it; `stop()` releases every port and socket.
 */

/** `slow` mode answers after this long unless told otherwise. */
const DEFAULT_SLOW_MS = 2000;
const HUGE_CHUNK = Buffer.alloc(64 * 1024, 'x');
const GARBAGE = Buffer.from('\u0000\u00ff\u00feSIMGARBAGE this is not HTTP\r\n\u0007\u0000');
// IRIS serves the page under /csp/, /csp/bin/ and /csp/user/; a Web Gateway puts its
// application path (/ap1a, ...) in front, and the seed's own examples use `csp//`.
const STATUS_PATH = /^(?:\/[^/]+)*\/csp\/+(?:(?:bin|user)\/+)?mirror_status\.cxw$/;
const REDIRECT_TARGET = '/sim/redirect-target';

interface PendingRequest {
  req: http.IncomingMessage;
  res: http.ServerResponse;
}

export class SimMember {
  readonly name: string;
  readonly host: string;
  private ssPort: number;
  private wPort: number;
  private cPort: number | null;
  private readonly statusDelayMs: number;
  private readonly log: Logger;

  /** The sim's logger (control.ts logs a role change that failed). */
  get logger(): Logger {
    return this.log;
  }

  private currentRole: SimRole;
  /** Replay lag a backup reports on `GET /replica` (POST /sim/lag sets it). */
  lagBytes = 0;
  private mode: StatusMode = 'normal';
  private slowMs = DEFAULT_SLOW_MS;
  private state: 'new' | 'running' | 'stopped' = 'new';
  /** Serialises listener changes so quick role/mode flips apply in order. */
  private chain: Promise<void> = Promise.resolve();

  private readonly superserver: net.Server;
  private readonly web: http.Server;
  private readonly control: http.Server | null;
  private ssListening = false;
  private webListening = false;

  private readonly ssSockets = new Set<net.Socket>();
  private readonly greeted = new WeakSet<net.Socket>();
  private readonly webSockets = new Set<net.Socket>();
  private readonly controlSockets = new Set<net.Socket>();
  private readonly hungRequests = new Set<PendingRequest>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly acceptedLog: AcceptedConnection[] = [];

  constructor(opts: SimOptions) {
    if (!opts.name || /[\r\n]/.test(opts.name)) {
      throw new SimError('MLB_ERR_SIM_OPTIONS', 'sim name must be a non-empty single line');
    }
    this.name = opts.name;
    this.host = opts.host ?? '127.0.0.1';
    this.ssPort = opts.superserverPort;
    this.wPort = opts.webPort;
    this.cPort = opts.controlPort ?? null;
    this.statusDelayMs = opts.statusDelayMs ?? 0;
    this.currentRole = opts.role ?? 'backup';
    this.log = (opts.logger ?? pino({ level: 'silent' })).child({ sim: this.name });

    this.superserver = net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => this.onSuperServer(s));
    this.web = http.createServer({ keepAlive: true }, (req, res) => this.onWebRequest(req, res));
    this.track(this.web, this.webSockets);
    this.control =
      this.cPort === null ? null : http.createServer((req, res) => handleControl(this, req, res));
    if (this.control) this.track(this.control, this.controlSockets);
  }

  get role(): SimRole {
    return this.currentRole;
  }
  get statusMode(): StatusMode {
    return this.mode;
  }
  get superserverPort(): number {
    return this.ssPort;
  }
  get webPort(): number {
    return this.wPort;
  }
  get controlPort(): number | null {
    return this.cPort;
  }
  get accepted(): ReadonlyArray<AcceptedConnection> {
    return this.acceptedLog;
  }

  openSessions(): number {
    return this.ssSockets.size;
  }

  async start(): Promise<void> {
    if (this.state !== 'new') throw new SimError('MLB_ERR_SIM_STATE', `sim ${this.name} already started`);
    this.state = 'running';
    try {
      if (this.control) this.cPort = await listen(this.control, this.host, this.cPort ?? 0);
      await this.enqueue(() => this.reconcile());
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Changes the role. Open SuperServer sessions stay open (closing them is the balancer's job). */
  setRole(role: SimRole): Promise<void> {
    if (!isSimRole(role)) {
      return Promise.reject(new SimError('MLB_ERR_SIM_ROLE', `unknown sim role ${String(role)}`));
    }
    return this.enqueue(async () => {
      const from = this.currentRole;
      if (from === role || this.state === 'stopped') return;
      this.currentRole = role;
      this.log.info({ from, to: role }, 'sim role changed');
      if (role === 'down') this.destroyAll();
      if (role === 'hang') for (const s of this.ssSockets) s.pause();
      await this.reconcile();
      if (from === 'hang' && role !== 'down') this.wakeUp();
    });
  }

  /** Changes how the status page misbehaves; `delayMs` is for `slow`. Listener changes apply in order. */
  setStatusMode(mode: StatusMode, delayMs?: number): void {
    if (!(STATUS_MODES as readonly string[]).includes(mode)) {
      throw new SimError('MLB_ERR_SIM_STATUS_MODE', `unknown status mode ${String(mode)}`);
    }
    const from = this.mode;
    this.mode = mode;
    if (mode === 'slow') this.slowMs = delayMs ?? DEFAULT_SLOW_MS;
    this.log.info({ from, to: mode, delay_ms: mode === 'slow' ? this.slowMs : undefined }, 'sim status mode');
    if (mode === 'dead') this.closeWeb();
    this.enqueue(() => this.reconcile()).catch((err: unknown) => {
      this.log.error({ err }, 'sim could not apply status mode');
    });
  }

  /** Resolves once every role or mode change made so far has reached the listeners. */
  settled(): Promise<void> {
    return this.chain;
  }

  async stop(): Promise<void> {
    if (this.state === 'stopped') return this.chain;
    this.state = 'stopped';
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.destroyAll();
    for (const s of this.controlSockets) s.destroy();
    const closing: Promise<void>[] = [];
    if (this.control?.listening) closing.push(close(this.control));
    closing.push(this.enqueue(() => this.reconcile()));
    await Promise.all(closing);
  }

  private enqueue(step: () => Promise<void>): Promise<void> {
    const next = this.chain.then(step);
    // A failed step must not wedge later ones; the caller still sees its own failure.
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** Brings the listeners in line with role, mode and lifecycle state. */
  private async reconcile(): Promise<void> {
    const running = this.state === 'running';
    const wantSs = running && this.currentRole !== 'down';
    const wantWeb = wantSs && this.mode !== 'dead';
    if (wantSs && !this.ssListening) {
      this.ssPort = await listen(this.superserver, this.host, this.ssPort);
      this.ssListening = true;
    } else if (!wantSs && this.ssListening) {
      this.ssListening = false;
      await close(this.superserver);
    }
    if (wantWeb && !this.webListening) {
      this.wPort = await listen(this.web, this.host, this.wPort);
      this.webListening = true;
    } else if (!wantWeb && this.webListening) {
      await this.closeWebAsync();
    }
  }

  private closeWeb(): void {
    this.closeWebAsync().catch(() => undefined);
  }

  private async closeWebAsync(): Promise<void> {
    for (const s of this.webSockets) s.destroy();
    if (!this.webListening) return;
    this.webListening = false;
    await close(this.web);
  }

  /** Like a crashed process: every socket on both ports is reset. */
  private destroyAll(): void {
    for (const s of this.ssSockets) s.destroy();
    for (const s of this.webSockets) s.destroy();
    this.hungRequests.clear();
  }

  private track(server: net.Server, set: Set<net.Socket>): void {
    server.on('connection', (s: net.Socket) => {
      set.add(s);
      s.on('close', () => set.delete(s));
    });
  }

  private onSuperServer(socket: net.Socket): void {
    if (this.state !== 'running' || this.currentRole === 'down') {
      socket.destroy();
      return;
    }
    this.acceptedLog.push({ at: performance.now(), role: this.currentRole });
    this.ssSockets.add(socket);
    socket.on('close', () => this.ssSockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      if (!socket.write(chunk)) socket.pause();
    });
    socket.on('drain', () => {
      if (this.currentRole !== 'hang') socket.resume();
    });
    // allowHalfOpen: the client's FIN arrives after its data, so ending here flushes every echo first.
    socket.on('end', () => socket.end());
    if (this.currentRole === 'hang') {
      socket.pause();
      return;
    }
    this.greet(socket);
  }

  private greet(socket: net.Socket): void {
    this.greeted.add(socket);
    socket.write(`${this.name}\n`);
  }

  /** A hung process that recovers carries on where it stopped. */
  private wakeUp(): void {
    for (const s of this.ssSockets) {
      if (!this.greeted.has(s)) this.greet(s);
      s.resume();
    }
    const pending = [...this.hungRequests];
    this.hungRequests.clear();
    for (const p of pending) this.onWebRequest(p.req, p.res);
  }

  private onWebRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (this.currentRole === 'hang') {
      const p = { req, res };
      this.hungRequests.add(p);
      res.on('close', () => this.hungRequests.delete(p));
      return;
    }
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (path.startsWith('/sim/') && path !== REDIRECT_TARGET) {
      handleControl(this, req, res);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      reply(res, 405, 'method not allowed\n');
      return;
    }
    if (path === REDIRECT_TARGET) {
      this.answerStatus(res);
      return;
    }
    if (path === '/replica' && this.mode === 'normal') {
      const a = replicaAnswer(this.currentRole === 'primary' ? 'primary' : 'backup', this.lagBytes);
      this.later(this.statusDelayMs, res, () => reply(res, a.status, a.body));
      return;
    }
    if (!STATUS_PATH.test(path)) {
      reply(res, 404, 'not found\n');
      return;
    }
    this.later(this.statusDelayMs, res, () => this.serveStatus(req, res));
  }

  private serveStatus(req: http.IncomingMessage, res: http.ServerResponse): void {
    switch (this.mode) {
      case 'normal':
      case 'dead': // only reached by a request already in flight when the page died
        this.answerStatus(res);
        return;
      case 'slow':
        this.later(this.slowMs, res, () => this.answerStatus(res));
        return;
      case 'garbage':
        req.socket.end(GARBAGE);
        return;
      case 'huge':
        this.answerHuge(res);
        return;
      case 'redirect': {
        const host = this.host.includes(':') ? `[${this.host}]` : this.host;
        res.writeHead(302, {
          Location: `http://${host}:${this.wPort}${REDIRECT_TARGET}`,
          'Content-Length': 0,
        });
        res.end();
        return;
      }
      default: {
        const never: never = this.mode;
        throw new Error(`unhandled mode ${String(never)}`);
      }
    }
  }

  private answerStatus(res: http.ServerResponse): void {
    // IRIS answers exactly this: 200 SUCCESS on the primary, 503 FAILED on any other member.
    if (this.currentRole === 'primary') reply(res, 200, 'SUCCESS');
    else reply(res, 503, 'FAILED');
  }

  /** The role's status with a body that never ends, to prove a prober bounds what it reads. */
  private answerHuge(res: http.ServerResponse): void {
    res.writeHead(this.currentRole === 'primary' ? 200 : 503, { 'Content-Type': 'text/plain' });
    res.write(this.currentRole === 'primary' ? 'SUCCESS' : 'FAILED');
    const pump = (): void => {
      while (!res.destroyed && this.state === 'running') {
        if (!res.write(HUGE_CHUNK)) {
          res.once('drain', pump);
          return;
        }
      }
    };
    pump();
  }

  private later(ms: number, res: http.ServerResponse, fn: () => void): void {
    if (ms <= 0) {
      fn();
      return;
    }
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (!res.destroyed) fn();
    }, ms);
    this.timers.add(timer);
    res.on('close', () => {
      clearTimeout(timer);
      this.timers.delete(timer);
    });
  }
}

async function listen(server: net.Server, host: string, port: number): Promise<number> {
  server.listen({ host, port, exclusive: true });
  await once(server, 'listening');
  return (server.address() as net.AddressInfo).port;
}

function close(server: net.Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    server.close(() => resolve());
  });
}
