import type { Config, MirrorConfig } from '../config/types.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { Route } from '../mirror/mirror.js';
import type { PrimaryPlan } from '../mirror/plan.js';
import type { RouterOwner } from '../mirror/router.js';
import { LoopMetrics, processMetrics } from './loop-metrics.js';
import { LoopRoute } from './loop-route.js';
import { LoopSet } from './loops.js';

/** One data-plane loop's client connections: open now, and accepted since it started serving. */
export interface LoopConnections {
  open: number;
  accepted: number;
}

/**
 * The daemon's side of several data-plane loops: the loops themselves, the route each mirror
 * is given instead of a Router on the main thread, and the figures that show the process as
 * one. The daemon holds one of these only when `workers` is above 1.
 */
export class DataPlane {
  private readonly routes = new Set<LoopRoute>();

  private constructor(
    private readonly loops: LoopSet,
    private readonly metrics: LoopMetrics,
    private readonly own: Metrics,
  ) {}

  static async start(config: Config, metrics: Metrics, log: Logger): Promise<DataPlane> {
    let plane: DataPlane | null = null;
    const loopMetrics = new LoopMetrics(metrics.registry, config.workers, () => plane?.accepted() ?? []);
    const loops = new LoopSet(config.workers, {
      log,
      logLevel: config.log.level,
      sessionLog: config.log.sessions,
      hotPath: config.metrics.enabled,
      metrics: loopMetrics,
    });
    plane = new DataPlane(loops, loopMetrics, metrics);
    await loops.start();
    return plane;
  }

  /** MirrorDeps.route: a mirror's route over every loop. */
  readonly route = (config: MirrorConfig, plan: PrimaryPlan, owner: RouterOwner, log: Logger): Route => {
    const r = new LoopRoute(config, plan, this.loops, owner, this.metrics, log);
    this.routes.add(r);
    return r;
  };

  /** Per loop: connections accepted so far, over every mirror it served. */
  accepted(): number[] {
    return this.perLoop().map((l) => l.accepted);
  }

  /** Per loop, over every mirror: client connections open now, and accepted so far. */
  perLoop(): LoopConnections[] {
    const sums = [...Array(this.loops.count).keys()].map(() => ({ open: 0, accepted: 0 }));
    for (const r of this.routes)
      r.perLoop().forEach((l, i) => {
        sums[i]!.open += l.open;
        sums[i]!.accepted += l.accepted;
      });
    return sums;
  }

  metricsText(): Promise<string> {
    return processMetrics(this.own.registry, this.loops);
  }

  stop(): Promise<void> {
    return this.loops.stop();
  }
}
