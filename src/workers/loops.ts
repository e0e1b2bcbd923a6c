import { Worker } from 'node:worker_threads';
import type { Logger } from '../log.js';
import type { LogLevel } from '../config/types.js';
import type { FromLoop, LoopData, ToLoop } from './protocol.js';
import type { LoopMetrics } from './loop-metrics.js';

type Answer = Exclude<FromLoop, { t: 'ready' | 'applied' | 'connectFailed' }>;

/** What the loops tell their mirrors' routes (loop-route.ts). */
export interface LoopClient {
  readonly name: string;
  applied(m: FromLoop & { t: 'applied' }, loop: number): void;
  connectFailed(member: string): void;
  /** A replacement loop `loop` started: bind and serve this mirror there again. */
  restore(loop: number): Promise<void>;
  /** Loop `loop` died: its share of the counts goes with it. */
  clearLoop(loop: number): void;
}

export interface LoopSetDeps {
  readonly log: Logger;
  readonly logLevel: LogLevel;
  readonly sessionLog: boolean;
  readonly hotPath: boolean;
  readonly metrics: LoopMetrics;
}

/**
 * The data-plane loops, as the control plane (main thread) sees them: N worker threads
 * (worker_threads, not processes: only threads share memory, and the routing state and the
 * process-wide limits live in SharedArrayBuffers read on every accept). Requests carry an id
 * the answer repeats. A loop that dies (an uncaught error) is logged, counted and replaced;
 * its clients are gone, its rows of the shared counts zeroed, every mirror bound and served
 * on the replacement again; the other loops never stop serving.
 */
export class LoopSet {
  private readonly workers: (Worker | null)[];
  private readonly incarnations: number[];
  private readonly pending = new Map<number, { loop: number; resolve: (a: Answer | null) => void }>();
  private readonly clients = new Map<string, LoopClient>();
  private nextId = 1;
  private stopping = false;

  constructor(
    readonly count: number,
    private readonly deps: LoopSetDeps,
  ) {
    this.workers = new Array<Worker | null>(count).fill(null);
    this.incarnations = new Array<number>(count).fill(0);
  }

  /** Starts every loop; resolves once each is ready for requests. */
  async start(): Promise<void> {
    await Promise.all(this.workers.map((_, i) => this.spawn(i)));
    this.deps.log.info(
      { loops: this.count },
      'data-plane loops started (worker threads, reusePort listeners)',
    );
  }

  /** The mirror `client` is told what the loops report for it (until `forget`). */
  register(client: LoopClient): void {
    this.clients.set(client.name, client);
  }

  forget(name: string): void {
    this.clients.delete(name);
  }

  post(loop: number, m: ToLoop): void {
    this.workers[loop]?.postMessage(m);
  }

  broadcast(m: ToLoop): void {
    for (let i = 0; i < this.count; i++) this.post(i, m);
  }

  /** One request; null when the loop died before answering. */
  request(loop: number, make: (id: number) => ToLoop): Promise<Answer | null> {
    const w = this.workers[loop];
    if (!w) return Promise.resolve(null);
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, { loop, resolve });
      w.postMessage(make(id));
    });
  }

  /** Every loop's metrics as prom-client JSON, for the control plane to add up with its own. */
  async metrics(): Promise<Array<NonNullable<(Answer & { t: 'metrics' })['metrics']>>> {
    const all = await Promise.all(
      this.workers.map((_, i) => this.request(i, (id) => ({ t: 'metrics', id }))),
    );
    return all.flatMap((a) => (a?.t === 'metrics' ? [a.metrics] : []));
  }

  /** After the drain: every loop ends. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.workers.map((w) => w?.terminate()));
  }

  private spawn(loop: number): Promise<void> {
    const data: LoopData = {
      loop,
      loops: this.count,
      incarnation: this.incarnations[loop]!,
      logLevel: this.deps.logLevel,
      sessionLog: this.deps.sessionLog,
      hotPath: this.deps.hotPath,
    };
    const w = new Worker(new URL('./loop.js', import.meta.url), { workerData: data });
    this.workers[loop] = w;
    return new Promise((ready, failed) => {
      w.on('message', (m: FromLoop) => {
        if (m.t === 'ready') return ready();
        this.received(loop, m);
      });
      w.on('error', (err) => {
        this.deps.metrics.loopDeaths.inc({ loop: String(loop) });
        this.deps.log.error(
          { loop, err: err.message, stack: err.stack },
          'data-plane loop died; its sessions are lost, a new loop replaces it',
        );
      });
      w.on('exit', (code) => {
        failed(new Error(`data-plane loop ${loop} exited (${code}) before it was ready`));
        if (this.workers[loop] === w) this.died(loop);
      });
    });
  }

  private received(loop: number, m: FromLoop): void {
    if (m.t === 'applied') return this.clients.get(m.mirror)?.applied(m, loop);
    if (m.t === 'connectFailed') return this.clients.get(m.mirror)?.connectFailed(m.member);
    if (m.t === 'ready') return;
    const p = this.pending.get(m.id);
    this.pending.delete(m.id);
    p?.resolve(m);
  }

  /** A loop is gone: its requests answered with null, and (unless stopping) a new one serves. */
  private died(loop: number): void {
    this.workers[loop] = null;
    for (const [id, p] of this.pending)
      if (p.loop === loop) {
        this.pending.delete(id);
        p.resolve(null);
      }
    for (const c of this.clients.values()) c.clearLoop(loop);
    if (this.stopping) return;
    this.incarnations[loop]!++;
    this.spawn(loop).then(
      async () => {
        for (const c of [...this.clients.values()]) await c.restore(loop);
        this.deps.log.info({ loop }, 'data-plane loop replaced');
      },
      (err: Error) =>
        this.deps.log.error({ loop, err: err.message }, 'data-plane loop could not be replaced'),
    );
  }
}
