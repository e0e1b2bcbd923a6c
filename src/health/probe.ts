import { performance } from 'node:perf_hooks';
import type { HostPort } from '../config/types.js';
import { answerRules, type AnswerRuleOptions, type AnswerRules } from './answer-rules.js';
import { CheckAgents, type ProbeTls } from './check-agents.js';
import { prepareUrl, type PreparedUrl, type UrlAgents } from './http-request.js';
import { memberErrorCode } from './probe-error.js';
import { startRound, type ProbeRound, type RoundOutcome } from './probe-round.js';
import { checkSuperserver } from './superserver.js';
import type { ProbeResult } from './types.js';

export type { ProbeTls };

/**
 * One member as the prober sees it: its status URLs, its SuperServer address and the TLS
 * settings of its https URLs. The monitor passes the same object every probe; the prober
 * keeps what it derives from it (parsed URLs, the TLS agent) by its identity.
 */
export interface ProbeTarget {
  readonly urls: readonly string[];
  readonly superserver: HostPort;
  /** For https URLs; absent or null: Node's defaults (built-in roots, verified, no client certificate). */
  readonly tls?: ProbeTls | null;
}

/** How to probe: the answer rules (see AnswerRuleOptions) and the bounds of one round. */
export interface ProbeOptions extends AnswerRuleOptions {
  /** Budget of the whole HTTP part: every URL, headers and body. */
  readonly timeoutMs: number;
  readonly maxBodyBytes: number;
  /** When no URL answered, also try a TCP connect to the SuperServer. */
  readonly checkSuperserver: boolean;
}

/**
 * How long the rest of a small body, after the answer is already decided, may take to
 * arrive. Reading it to the end is what lets the socket go back to the keep-alive pool;
 * a body that trickles slower than this costs its socket instead of probe time.
 */
const DRAIN_GRACE_MS = 50;

export interface ProberOptions {
  /** Overrides DRAIN_GRACE_MS (tests). */
  readonly drainGraceMs?: number;
}

const NO_CHECK_URL: RoundOutcome = {
  answers: [{ url: '', outcome: 'error', status: null, code: 'MLB_ERR_NO_CHECK_URL', latencyMs: 0 }],
  decided: -1,
  timedOut: false,
  closed: false,
};

/**
 * Checks mirror members' status pages over HTTP(S). Owns the keep-alive agents, so one
 * Prober serves every member; `close()` destroys them and cancels probes in flight.
 * The health loop (monitor.ts) is its only caller.
 */
export class Prober {
  private readonly agents = new CheckAgents();
  private closed = false;
  /** Rounds in flight, cancelled by close(). */
  private readonly running = new Set<ProbeRound>();
  /** Aborts a SuperServer check in flight at close(). */
  private readonly closing = new AbortController();
  private readonly drainGraceMs: number;
  /** Parsed check URLs per target and compiled answer rules per options object, made once. */
  private readonly prepared = new WeakMap<ProbeTarget, readonly PreparedUrl[]>();
  private readonly rules = new WeakMap<ProbeOptions, AnswerRules>();

  constructor(options: ProberOptions = {}) {
    this.drainGraceMs = options.drainGraceMs ?? DRAIN_GRACE_MS;
  }

  /** Probes one member. Never rejects: every failure is a ProbeResult. */
  async probe(target: ProbeTarget, opts: ProbeOptions): Promise<ProbeResult> {
    const started = performance.now();
    try {
      return await this.run(target, opts, started);
    } catch {
      return {
        kind: 'error',
        code: 'MLB_ERR_PROBE_INTERNAL',
        latencyMs: performance.now() - started,
        superserver: null,
      };
    }
  }

  /** Destroys the agents' sockets and cancels probes in flight (they resolve as errors). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.closing.abort();
    for (const round of [...this.running]) round.cancel();
    this.agents.destroy();
  }

  private async run(target: ProbeTarget, opts: ProbeOptions, started: number): Promise<ProbeResult> {
    if (this.closed) return closedResult(0);
    const out = await this.round(target, opts, started);
    const { answers } = out;
    if (out.closed) return { ...closedResult(0), answers };
    const first = answers[out.decided];
    if (first !== undefined && (first.outcome === 'primary' || first.outcome === 'not_primary')) {
      const other = first.outcome === 'primary' ? 'not_primary' : 'primary';
      return {
        kind: first.outcome,
        status: first.status ?? 0,
        latencyMs: first.latencyMs ?? 0,
        url: first.url,
        contradicted: answers.some((a) => a.outcome === other),
        answers,
      };
    }
    const latencyMs = performance.now() - started;
    const superserver = opts.checkSuperserver
      ? await checkSuperserver(target.superserver, opts.timeoutMs, this.closing.signal)
      : null;
    // A check cut by close() says nothing about the member.
    if (this.closed) return { ...closedResult(latencyMs), answers };
    // A silent URL says more about the member (it may be hung) than a gateway's error page.
    if (out.timedOut) return { kind: 'timeout', latencyMs, superserver, answers };
    const odd = answers.find((a) => a.outcome === 'unexpected');
    if (odd !== undefined) {
      return { kind: 'unexpected', status: odd.status ?? 0, url: odd.url, latencyMs, superserver, answers };
    }
    const urlCode = answers.find((a) => a.code !== null)?.code;
    const code =
      urlCode === undefined || urlCode === null ? 'MLB_ERR_PROBE_FAILED' : memberErrorCode(urlCode);
    return { kind: 'error', code, latencyMs, superserver, answers };
  }

  /** The HTTP part of one probe: one round over the target's URLs. */
  private async round(target: ProbeTarget, opts: ProbeOptions, started: number): Promise<RoundOutcome> {
    if (target.urls.length === 0) return NO_CHECK_URL;
    const round = startRound(target.urls, this.preparedFor(target), {
      rules: this.rulesFor(opts),
      timeoutMs: opts.timeoutMs,
      maxBodyBytes: opts.maxBodyBytes,
      drainGraceMs: this.drainGraceMs,
      started,
    });
    this.running.add(round);
    try {
      return await round.outcome;
    } finally {
      this.running.delete(round);
    }
  }

  private rulesFor(opts: ProbeOptions): AnswerRules {
    let rules = this.rules.get(opts);
    if (rules === undefined) this.rules.set(opts, (rules = answerRules(opts)));
    return rules;
  }

  private preparedFor(target: ProbeTarget): readonly PreparedUrl[] {
    let list = this.prepared.get(target);
    if (list === undefined) {
      const { agents } = this;
      const tls = target.tls;
      // The TLS agent only when an https URL is prepared.
      const urlAgents: UrlAgents = {
        http: agents.http,
        get https() {
          return agents.forHttps(tls);
        },
      };
      this.prepared.set(target, (list = target.urls.map((u) => prepareUrl(u, urlAgents))));
    }
    return list;
  }
}

function closedResult(latencyMs: number): ProbeResult {
  return { kind: 'error', code: 'MLB_ERR_PROBER_CLOSED', latencyMs, superserver: null };
}
