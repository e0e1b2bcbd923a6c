/**
 * One data-plane event loop (a worker thread): a Router per mirror, its listener sharing the
 * mirror's port with the other loops' (reusePort), its plan read from the shared routing
 * state (shared-plan.ts), its limits counted process-wide (loop-counts.ts). It decides
 * nothing: the control plane (loops.ts, on the main thread) stores each decision in shared
 * memory and then tells every loop to act on it (cut, move, release).
 */
import { SessionLog } from '../mirror/session-log.js';
import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { Registry } from 'prom-client';
import type { MirrorConfig } from '../config/types.js';
import { createLogger } from '../log.js';
import { Metrics } from '../metrics.js';
import { NO_EFFECT, type RouteEffect } from '../mirror/plan.js';
import { Router } from '../mirror/router.js';
import { Resolver } from '../proxy/resolver.js';
import { LoopCounts } from './loop-counts.js';
import type { FromLoop, LoopData, MirrorPart, ToLoop } from './protocol.js';
import { SharedPlan, slotNames } from './shared-plan.js';
import { SharedMirrorState } from './shared-state.js';

const data = workerData as LoopData;
const port = parentPort!;
const log = createLogger(data.logLevel).child({ loop: data.loop });
const sessionLog = new SessionLog(data.sessionLog);
const metrics = new Metrics(new Registry(), { defaultMetrics: false, hotPath: data.hotPath });
const resolver = new Resolver();

interface Served {
  router: Router;
  state: SharedMirrorState;
  counts: LoopCounts;
  slots: ReadonlyMap<string, number>;
}
const mirrors = new Map<string, Served>();

const send = (m: FromLoop): void => port.postMessage(m);
const loops = (): number => data.loops;

/** `max_connecting` is per loop: the process-wide limit dealt out, never exceeded in sum. */
function loopConfig(c: MirrorConfig): MirrorConfig {
  const max = c.proxy.maxConnecting;
  if (max === 0) return c;
  return { ...c, proxy: { ...c.proxy, maxConnecting: Math.max(1, Math.floor(max / data.loops)) } };
}

function plan(s: Served, reasons = {}): SharedPlan {
  return new SharedPlan(s.state, slotNames(s.slots), s.slots, reasons);
}

async function bind(id: number, part: MirrorPart, at: number): Promise<void> {
  const name = part.config.name;
  const state = new SharedMirrorState(part.state);
  const slots = new Map(part.slots);
  const counts = new LoopCounts(state, data.loop, loops, slots);
  injectFault(counts);
  const config = loopConfig({ ...part.config, listen: { ...part.config.listen, port: at } });
  const served: Served = { state, counts, slots, router: undefined as unknown as Router };
  served.router = new Router(config, plan(served), {
    metrics,
    resolver,
    log: log.child({ mirror: name }),
    owner: { connectFailed: (member) => send({ t: 'connectFailed', mirror: name, member }) },
    shared: counts,
    sessionLog,
  });
  try {
    await served.router.listen();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return send({ t: 'failed', id, message: e.message, code: e.code });
  }
  mirrors.get(name)?.router.close();
  mirrors.set(name, served);
  for (const m of config.members) void resolver.refresh(m.address);
  const a = served.router.address();
  send({ t: 'bound', id, port: a?.port ?? at, fastAccept: served.router.fastAccept });
}

function applied(mirror: string, generation: number, effect: RouteEffect): void {
  send({ t: 'applied', mirror, generation, effect, at: performance.timeOrigin + performance.now() });
}

async function handle(m: ToLoop): Promise<void> {
  switch (m.t) {
    case 'bind':
      return bind(m.id, m.part, m.port);
    case 'serve':
      return mirrors.get(m.mirror)?.router.serve();
    // Answered even for a mirror not bound here (a replacement loop not restored yet): the
    // control plane waits for every loop's answer before it reports the decision.
    case 'apply': {
      const s = mirrors.get(m.mirror);
      applied(m.mirror, m.generation, s ? s.router.apply(plan(s, m.reasons)) : NO_EFFECT);
      return;
    }
    case 'update': {
      const s = mirrors.get(m.mirror);
      if (!s) return applied(m.mirror, m.generation, NO_EFFECT);
      s.slots = new Map(m.part.slots);
      s.counts.reslot(s.slots);
      const listen = m.part.config.listen;
      const config = loopConfig({
        ...m.part.config,
        listen: { ...listen, port: s.router.address()?.port ?? listen.port },
      });
      applied(m.mirror, m.generation, s.router.update(config, plan(s)));
      for (const member of config.members) void resolver.refresh(member.address);
      return;
    }
    case 'close':
      return mirrors.get(m.mirror)?.router.close();
    case 'drain': {
      await mirrors.get(m.mirror)?.router.drain(m.timeoutMs);
      mirrors.delete(m.mirror);
      return send({ t: 'done', id: m.id, n: 0 });
    }
    case 'cut': {
      const s = mirrors.get(m.mirror);
      const n = s ? s.router.cutAll(m.reason) : 0;
      if (m.reason === 'removed') mirrors.delete(m.mirror);
      return send({ t: 'done', id: m.id, n });
    }
    case 'metrics':
      for (const s of mirrors.values()) s.router.flushBytes();
      return send({ t: 'metrics', id: m.id, metrics: await metrics.registry.getMetricsAsJSON() });
  }
}

/**
 * Tests only: MIRRORLB_TEST_LOOP_FAULT=LOOP:N makes loop LOOP (its first incarnation) throw an
 * uncaught error once it has accepted N clients, as a bug in a loop would.
 */
function injectFault(counts: LoopCounts): void {
  const [loop, n] = (process.env.MIRRORLB_TEST_LOOP_FAULT ?? '').split(':').map(Number);
  if (loop !== data.loop || data.incarnation !== 0 || !(n! > 0)) return;
  let left = n!;
  const moved = counts.moved.bind(counts);
  counts.moved = (c, from, to) => {
    moved(c, from, to);
    if (from === null && --left === 0)
      setImmediate(() => {
        throw new Error(`injected fault in loop ${data.loop} (MIRRORLB_TEST_LOOP_FAULT)`);
      });
  };
}

port.on('message', (m: ToLoop) => void handle(m));
send({ t: 'ready' });
