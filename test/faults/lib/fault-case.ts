import type { Test } from 'tap';
import type { Proc } from './proc.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { record, resultsDir, type SuiteResults } from './results.js';
import { balancerYaml, MIRROR_PORTS, sleep, stopLoad, type FaultNet } from './suite.js';
import {
  countSessions,
  demotions,
  firstGreeting,
  isHoldTimeout,
  maxWaitMs,
  routableAfter,
  timeline,
  unroutableAfter,
  violations,
  type SessionRecord,
} from './verdict.js';

/**
 * One fault case: mirror ap1 (ap1a primary, ap1b backup) behind the balancer, clients
 * streaming through it the whole time, the fault injected on ap1a, then (optionally) what
 * the mirror itself would do about it, then the verdict from the clients' sessions and the
 * balancer's log.
 *
 * Timeline: load for WARM_MS; fault (t_fault); `faultMs` later the mirror acts (t_mirror:
 * ap1b promoted, or the role moved, or the stale primary stepped down); `afterMs` more of
 * load; then the clients finish their sessions gracefully.
 */
export interface CaseSpec {
  readonly id: string;
  /** Short name in the matrix. */
  readonly fault: string;
  /** What was done, one sentence. */
  readonly description: string;
  /** What the contract says should happen, one sentence. */
  readonly expected: string;
  inject(c: CaseContext): Promise<void>;
  /**
   * What the mirror does at t_mirror: `takeover` ap1b becomes primary (ap1a cannot be
   * told); `switchover` ap1a steps down, then ap1b becomes primary; `stepdown` ap1a steps
   * down (ap1b already claims the role); null nothing.
   */
  readonly then: 'takeover' | 'switchover' | 'stepdown' | null;
  readonly faultMs?: number;
  readonly afterMs?: number;
  /** Case-specific assertions on the result (after the common ones). */
  check?(t: Test, r: CaseResult): void;
}

export interface CaseContext {
  readonly fnet: FaultNet;
  readonly lb: Proc;
  readonly sims: Readonly<Record<string, Proc>>;
  /** Free-form facts for the result (e.g. how many flips a flapping case made). */
  readonly notes: Record<string, unknown>;
  /** Work the fault keeps doing after inject() returned; awaited before the mirror acts. */
  readonly background: Array<Promise<unknown>>;
}

export interface CaseResult {
  readonly id: string;
  readonly fault: string;
  readonly description: string;
  readonly expected: string;
  readonly then: CaseSpec['then'];
  passed: boolean;
  readonly sessions: ReturnType<typeof countSessions>;
  /** Sessions on ap1a (the faulty primary) that the far side closed after t_fault (after its greeting). */
  readonly cutOnOld: number;
  /** Sessions on ap1b closed by the far side after t_fault (flapping takes the role from it too). */
  readonly cutOnNew: number;
  /** Sessions closed before the member's greeting reached the client (not at the hold timeout). */
  readonly cutBeforeGreeting: number;
  /** t_fault → ap1a takes no new clients (null: it kept taking them, as it should for some faults). */
  readonly detectMs: number | null;
  /** t_fault → ap1a loses the role and its sessions are cut (null: it kept them). */
  readonly cutMs: number | null;
  /** t_fault → first client greeted by ap1b. */
  readonly rerouteMs: number | null;
  /** t_mirror → the balancer sends new clients to ap1b. */
  readonly followMs: number | null;
  /** t_mirror → first client greeted by ap1b. */
  readonly firstOnNewMs: number | null;
  readonly maxWaitMs: number;
  readonly maxOutliveMs: number | null;
  readonly boundMs: number;
  readonly violations: ReadonlyArray<{ rule: string; session: number; detail: string }>;
  readonly violationCount: number;
  readonly timing: { faultMs: number; afterMs: number; caseMs: number };
  readonly notes: Record<string, unknown>;
}

/** Load for every case on ap1: 6 clients with short sessions, 2 with one long session, 10 new sessions a second. */
export const LOAD = { short: 6, long: 2, arrivals: 10 } as const;
/** A session may stay open at most this long after its member lost the role. */
export const OUTLIVE_BOUND_MS = 2000;
const WARM_MS = 1500;
/** proxy.hold_timeout of the balancer under test (the default). */
export const HOLD_TIMEOUT_MS = 10_000;

/** What every fault suite records about its load and bounds (rendered into docs/reliability.md). */
export const CASE_SETTINGS = {
  load: LOAD,
  outliveBoundMs: OUTLIVE_BOUND_MS,
  warmMs: WARM_MS,
  mirrorActsAfterMs: 1500,
  overrides: { 'health.expect_body': 'SUCCESS', 'shutdown.drain_timeout': '20s', 'shutdown.grace': '0' },
} as const;

export async function runCase(t: Test, fnet: FaultNet, results: SuiteResults, spec: CaseSpec): Promise<void> {
  const started = Date.now();
  for (const h of ['ap1a', 'ap1b']) await fnet.net.heal(h);
  t.teardown(async () => {
    for (const h of ['ap1a', 'ap1b']) await fnet.net.heal(h);
  });
  const sims = {
    ap1a: await fnet.startSim(t, 'ap1a', 'primary'),
    ap1b: await fnet.startSim(t, 'ap1b', 'backup'),
  };
  const lb = await fnet.startBalancer(t, balancerYaml({ ap1: ['ap1a', 'ap1b'] }, fnet.token));
  const load = await fnet.startLoad(t, {
    targets: [{ mirror: 'ap1', host: 'lb', port: MIRROR_PORTS.ap1, ...LOAD }],
  });
  const ctx: CaseContext = { fnet, lb, sims, notes: {}, background: [] };
  const faultMs = spec.faultMs ?? CASE_SETTINGS.mirrorActsAfterMs;
  const afterMs = spec.afterMs ?? 2500;

  await sleep(WARM_MS);
  await spec.inject(ctx);
  const tFault = Date.now();
  await sleep(Math.max(0, tFault + faultMs - Date.now()));
  await Promise.all(ctx.background);
  let tMirror: number | null = null;
  switch (spec.then) {
    case 'takeover':
      await fnet.control('ap1b', 'role', 'primary');
      tMirror = Date.now();
      break;
    case 'switchover':
      await fnet.control('ap1a', 'role', 'backup');
      await fnet.control('ap1b', 'role', 'primary');
      tMirror = Date.now();
      break;
    case 'stepdown':
      await fnet.control('ap1a', 'role', 'backup');
      tMirror = Date.now();
      break;
    case null:
      break;
    default: {
      const never: never = spec.then;
      throw new Error(`unknown step ${String(never)}`);
    }
  }
  await sleep(afterMs);
  const sessions = await stopLoad(load);
  const tl = timeline(lb.lines, 'ap1');
  const v = violations(sessions, tl, OUTLIVE_BOUND_MS);
  const counts = countSessions(sessions, HOLD_TIMEOUT_MS);
  const aCut = demotions(tl, 'ap1a').find((d) => d >= tFault);
  const bAt = tMirror ?? tFault;
  const result: CaseResult = {
    id: spec.id,
    fault: spec.fault,
    description: spec.description,
    expected: spec.expected,
    then: spec.then,
    passed: false,
    sessions: counts,
    cutOnOld: cutOn(sessions, 'ap1a', tFault),
    cutOnNew: cutOn(sessions, 'ap1b', tFault),
    cutBeforeGreeting: sessions.filter(
      (s) => s.outcome === 'no_greeting' && !isHoldTimeout(s, HOLD_TIMEOUT_MS),
    ).length,
    detectMs: unroutableAfter(tl, 'ap1a', tFault),
    cutMs: aCut === undefined ? null : aCut - tFault,
    rerouteMs: firstGreeting(sessions, 'ap1b', tFault),
    followMs: tMirror === null ? routableAfter(tl, 'ap1b', tFault) : routableAfter(tl, 'ap1b', bAt),
    firstOnNewMs: tMirror === null ? null : firstGreeting(sessions, 'ap1b', tMirror),
    maxWaitMs: maxWaitMs(sessions),
    maxOutliveMs: v.maxOutliveMs,
    boundMs: OUTLIVE_BOUND_MS,
    violations: v.list.slice(0, 20),
    violationCount: v.list.length,
    timing: { faultMs, afterMs, caseMs: Date.now() - started },
    notes: ctx.notes,
  };

  const before = t.counts.fail;
  t.equal(v.list.length, 0, 'nothing lost: no corrupt, stalled, misrouted or outliving session', {
    violations: v.list.slice(0, 10),
  });
  t.equal(counts.refused, 0, 'no client refused');
  t.equal(counts.holdTimeouts, 0, 'no client held to its hold timeout');
  t.ok(counts.completed >= 20, `the load ran: ${counts.completed} sessions completed`);
  t.ok(
    sessions.every(
      (s) => s.mirror === 'ap1' && (s.member === null || s.member === 'ap1a' || s.member === 'ap1b'),
    ),
    'every greeting names a member of the mirror',
  );
  t.notOk(lb.hasExited(), 'the balancer is still running', { stderr: lb.stderr().slice(-3000) });
  spec.check?.(t, result);
  result.passed = t.counts.fail === before;
  record(results, { ...result, sessionsSample: sample(sessions) });
  // Everything the verdict came from, for reading a run by hand.
  if (process.env.MIRRORLB_FAULT_DEBUG === '1') {
    writeFileSync(
      join(resultsDir(), `${spec.id}.debug.json`),
      JSON.stringify({ tFault, tMirror, sessions, lb: lb.lines }),
    );
  }
}

/** Sessions greeted by `member` that the far side closed after `t0`. */
export function cutOn(sessions: readonly SessionRecord[], member: string, t0: number): number {
  return sessions.filter((s) => s.member === member && s.outcome === 'closed' && s.tEnd >= t0).length;
}

/** A few sessions of each outcome, for reading a failed run. */
function sample(sessions: readonly SessionRecord[]): SessionRecord[] {
  const out: SessionRecord[] = [];
  for (const o of ['corrupt', 'stalled', 'closed', 'no_greeting', 'refused'] as const) {
    out.push(...sessions.filter((s) => s.outcome === o).slice(0, 3));
  }
  return out;
}
