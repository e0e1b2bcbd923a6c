import { AggregatorRegistry, Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { LoopSet } from './loops.js';

/** Per loop: connections it accepted so far, summed over mirrors (shared-state.ts rows). */
export type AcceptedByLoop = () => readonly number[];

/**
 * The control plane's own figures about its loops, in the daemon's registry: per-loop
 * connections (how evenly the kernel spreads them), deaths, and how long a decision took to
 * be acted on by every loop (the disagreement between loops in a switchover).
 */
export class LoopMetrics {
  readonly loopDeaths: Counter<'loop'>;
  readonly applyLag: Histogram<'mirror'>;
  private readonly exported: number[] = [];

  constructor(registry: Registry, loops: number, accepted: AcceptedByLoop) {
    const r = [registry];
    new Gauge({ name: 'mirrorlb_loops', help: 'Data-plane event loops (workers)', registers: r }).set(loops);
    this.loopDeaths = new Counter({
      name: 'mirrorlb_loop_deaths_total',
      help: 'Data-plane loops that died (an uncaught error) and were replaced',
      labelNames: ['loop'],
      registers: r,
    });
    this.applyLag = new Histogram({
      name: 'mirrorlb_loop_apply_lag_seconds',
      help: 'From a decision stored in shared memory to the last loop acting on it (cuts, releases)',
      labelNames: ['mirror'],
      buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
      registers: r,
    });
    const exported = this.exported;
    new Counter({
      name: 'mirrorlb_loop_connections_total',
      help: 'Client connections each data-plane loop accepted (the kernel spreads them over the loops)',
      labelNames: ['loop'],
      registers: r,
      collect() {
        accepted().forEach((n, loop) => {
          const delta = n - (exported[loop] ?? 0);
          if (delta > 0) this.inc({ loop: String(loop) }, delta);
          exported[loop] = n;
        });
      },
    });
  }
}

/**
 * The process as one: every metric the loops export (the data path's) added up over the
 * loops and the control plane (prom-client's aggregator); the control plane's own metrics
 * (health, failovers, process and Node.js figures) as they are, none of them dropped by an
 * aggregator that does not know how to sum them.
 */
export async function processMetrics(own: Registry, loops: LoopSet): Promise<string> {
  const fromLoops = await loops.metrics();
  const shared = new Set(fromLoops.flatMap((l) => l.map((m) => m.name)));
  const mine = await own.getMetricsAsJSON();
  const summed = AggregatorRegistry.aggregate([mine.filter((m) => shared.has(m.name)), ...fromLoops]);
  const rest = await Promise.all(
    mine.filter((m) => !shared.has(m.name)).map((m) => own.getSingleMetricAsString(m.name)),
  );
  return `${rest.join('\n\n')}\n\n${await summed.metrics()}`;
}
