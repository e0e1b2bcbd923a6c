import { performance } from 'node:perf_hooks';
import { classifyAnswer, needlesFor, type AnswerRules } from './answer-rules.js';
import { BodyScan, type Verdict } from './body-scan.js';
import { requestWithRetry, type PreparedUrl, type StatusAnswer } from './http-request.js';
import { urlErrorCode } from './probe-error.js';
import { RoundEnd } from './round-end.js';
import type { UrlAnswer } from './types.js';

/** What the HTTP part of one probe came to, before any SuperServer check. */
export interface RoundOutcome {
  /** One per URL, in order; those that never settled are `timeout` or `skipped`. */
  readonly answers: UrlAnswer[];
  /** Index of the first authoritative answer, -1 when none. */
  readonly decided: number;
  /** The deadline ended the round while some URL was still silent. */
  readonly timedOut: boolean;
  /** The prober's close() ended the round. */
  readonly closed: boolean;
}

/**
 * The state of one probe round over a member's check URLs: which URLs settled (and how),
 * which answer decided, and how the round ended. The rules, in settle():
 * a "not primary" answer ends the round at once (demoting is never the unsafe direction);
 * a "primary" answer decides too, but the round waits for the other URLs (up to the
 * deadline) so that a URL saying otherwise is seen as a contradiction; unexpected answers
 * and failures decide nothing. One timer bounds it all, bodies included.
 *
 * Made and driven by startRound(); the prober's close() calls cancel().
 */
export class ProbeRound {
  /** Cancels the requests and body scans still running when the round is over. */
  readonly end = new RoundEnd();
  readonly outcome: Promise<RoundOutcome>;
  private resolve!: (o: RoundOutcome) => void;
  private readonly answers: (UrlAnswer | null)[];
  private decided = -1;
  private timedOut = false;
  private closed = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly urls: readonly string[],
    timeoutMs: number,
  ) {
    this.answers = urls.map(() => null);
    this.outcome = new Promise((resolve) => (this.resolve = resolve));
    this.timer = setTimeout(() => this.timeout(), timeoutMs);
  }

  get finished(): boolean {
    return this.end.ended;
  }

  /** URL i's answer; the first one for a URL counts, and none after the round ended. */
  settle(i: number, a: UrlAnswer): void {
    if (this.finished || this.answers[i] !== null) return;
    this.answers[i] = a;
    const authoritative = a.outcome === 'primary' || a.outcome === 'not_primary';
    if (authoritative && this.decided === -1) this.decided = i;
    if (a.outcome === 'not_primary' && this.decided === i) this.finish();
    else if (this.answers.every((x) => x !== null)) this.finish();
  }

  /** The prober is closing: the round says nothing about the member. */
  cancel(): void {
    if (this.finished) return;
    this.closed = true;
    this.finish();
  }

  private timeout(): void {
    this.timedOut = true;
    this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    clearTimeout(this.timer);
    this.end.end();
    const outcome: UrlAnswer['outcome'] = this.timedOut ? 'timeout' : 'skipped';
    const answers = this.answers.map(
      (a, i) => a ?? { url: this.urls[i] ?? '', outcome, status: null, code: null, latencyMs: null },
    );
    this.resolve({
      answers,
      decided: this.decided,
      timedOut: this.timedOut && answers.some((a) => a.outcome === 'timeout'),
      closed: this.closed,
    });
  }
}

/** What every URL check of one round shares. */
export interface RoundSettings {
  readonly rules: AnswerRules;
  readonly timeoutMs: number;
  readonly maxBodyBytes: number;
  /** How long the rest of a body may drain after its answer is decided. */
  readonly drainGraceMs: number;
  /** performance.now() at the probe's start: latencies count from there. */
  readonly started: number;
}

/** Starts a round: every URL requested at once. `prepared[i]` is urls[i], parsed. */
export function startRound(
  urls: readonly string[],
  prepared: readonly PreparedUrl[],
  s: RoundSettings,
): ProbeRound {
  const round = new ProbeRound(urls, s.timeoutMs);
  urls.forEach((url, i) => void checkUrl(round, i, url, prepared[i]!, s));
  return round;
}

/** Requests one URL, judges its answer and settles it in the round. Never rejects. */
async function checkUrl(
  round: ProbeRound,
  i: number,
  url: string,
  prepared: PreparedUrl,
  s: RoundSettings,
): Promise<void> {
  let res: StatusAnswer;
  try {
    res = await requestWithRetry(prepared, round.end, () => !round.finished);
  } catch (err) {
    // Requests cut by the round's timer, close() or a decided round are not failures of their own.
    const latencyMs = performance.now() - s.started;
    round.settle(i, { url, outcome: 'error', status: null, code: urlErrorCode(err), latencyMs });
    return;
  }
  // Lost the race: the round's end destroyed its request, and its socket is not worth waiting for.
  if (round.finished) {
    res.body.destroy();
    return;
  }
  const v = await judge(res, round, s);
  if (v !== null) {
    round.settle(i, {
      url,
      outcome: v.cls,
      status: res.status,
      code: null,
      latencyMs: v.decidedAt - s.started,
    });
    return;
  }
  // Cut short before the body could be judged: an unfinished answer is no answer.
  const latencyMs = performance.now() - s.started;
  round.settle(i, { url, outcome: 'error', status: null, code: 'MLB_ERR_INCOMPLETE_BODY', latencyMs });
}

/** Classifies one response: the status, then (where the class depends on it) the body. */
function judge(res: StatusAnswer, round: ProbeRound, s: RoundSettings): Promise<Verdict | null> {
  const { rules } = s;
  const classify = (found: (n: Buffer) => boolean, complete: boolean) =>
    classifyAnswer(rules, res.status, found, complete);
  const needles = needlesFor(rules, res.status);
  return new BodyScan(
    res.body,
    needles,
    classify,
    s.maxBodyBytes,
    s.drainGraceMs,
    round.end,
    res.declaredLength,
  ).result;
}
