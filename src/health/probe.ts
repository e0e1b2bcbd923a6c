import http from 'node:http';
import https from 'node:https';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import { urlToHttpOptions } from 'node:url';
import type { HostPort } from '../config/types.js';
import { VERSION } from '../version.js';
import { checkSuperserver } from './superserver.js';
import type { AnswerClass, ProbeResult, UrlAnswer } from './types.js';

export { checkSuperserver } from './superserver.js';

/** One member as the prober sees it: its status URLs and its SuperServer address. */
export interface ProbeTarget {
  readonly urls: readonly string[];
  readonly superserver: HostPort;
}

export interface ProbeOptions {
  /** Budget of the whole HTTP part: every URL, headers and body. */
  readonly timeoutMs: number;
  readonly expectStatus: number;
  /** Text(s) of which the body must contain one (within maxBodyBytes) for the answer to mean primary. */
  readonly expectBody: string | readonly string[] | null;
  /** Text(s) that must all be in the body too for the answer to mean primary (default: none). */
  readonly expectBodyAll?: string | readonly string[] | null;
  /** Status(es) of the member's own "not primary" answer (default 503). */
  readonly notPrimaryStatus?: number | readonly number[];
  /** Text(s) of which a not-primary body must contain one (default: none needed). */
  readonly notPrimaryBody?: string | readonly string[] | null;
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

const AGENT_OPTIONS: http.AgentOptions = {
  keepAlive: true,
  keepAliveMsecs: 1000,
  // Probes to one host run one per member at a time; a few sockets are plenty, and the
  // cap keeps a misbehaving gateway from collecting hundreds.
  maxSockets: 8,
  maxFreeSockets: 2,
  // The most recently used idle socket is the least likely to have been closed by the server.
  scheduling: 'lifo',
  // Idle sockets are dropped before the common 5 s server keep-alive timeout ends, so a
  // probe rarely writes into a socket the server is closing (servers that send a
  // `Keep-Alive: timeout=` hint get a matching bound from Node itself).
  timeout: 4000,
};

const REQUEST_HEADERS = { 'user-agent': `mirrorlb/${VERSION}`, accept: '*/*' };

const TLS_CODE = /^(ERR_SSL_|ERR_TLS_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|EPROTO$)/;

/**
 * The stable code a failed status request is reported with: the errno (ECONNREFUSED,
 * ECONNRESET, ENOTFOUND, ...) when there is one, else an `MLB_ERR_` code.
 */
export function probeErrorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || code === '') {
    return err instanceof TypeError ? 'MLB_ERR_BAD_URL' : 'MLB_ERR_PROBE_FAILED';
  }
  // Node's HTTP parser: the peer answered something that is not HTTP.
  if (code.startsWith('HPE_')) return 'MLB_ERR_BAD_RESPONSE';
  if (TLS_CODE.test(code)) return 'MLB_ERR_TLS';
  if (code === 'ERR_INVALID_URL') return 'MLB_ERR_BAD_URL';
  return code;
}

/** What the HTTP part of one probe came to, before any SuperServer check. */
interface HttpOutcome {
  readonly answers: UrlAnswer[];
  /** Index of the first authoritative answer, -1 when none. */
  readonly decided: number;
  readonly timedOut: boolean;
  readonly closed: boolean;
}

/** The answer rules of one probe, normalised once. */
export interface AnswerRules {
  readonly expectStatus: number;
  readonly expectBody: readonly Buffer[];
  readonly expectBodyAll: readonly Buffer[];
  readonly notPrimaryStatus: readonly number[];
  readonly notPrimaryBody: readonly Buffer[];
}

function toList<T>(v: T | readonly T[] | null | undefined, fallback: readonly T[]): readonly T[] {
  if (v === undefined) return fallback;
  if (v === null) return [];
  return Array.isArray(v) ? (v as readonly T[]) : [v as T];
}

export function answerRules(opts: ProbeOptions): AnswerRules {
  const bufs = (v: readonly string[]): Buffer[] =>
    v.filter((x) => x !== '').map((x) => Buffer.from(x, 'utf8'));
  return {
    expectStatus: opts.expectStatus,
    expectBody: bufs(toList(opts.expectBody, [])),
    expectBodyAll: bufs(toList(opts.expectBodyAll, [])),
    notPrimaryStatus: toList(opts.notPrimaryStatus, [503]),
    notPrimaryBody: bufs(toList(opts.notPrimaryBody, [])),
  };
}

/**
 * The classification of one answer (contract, "Configuration"). Pure. `found(i)` says whether
 * needle i of `needles(rules, status)` was seen; `complete` whether the body was read to its
 * end or cap. Null: not decidable yet (a needle may still come).
 */
export function classifyAnswer(
  rules: AnswerRules,
  status: number,
  found: (needle: Buffer) => boolean,
  complete: boolean,
): AnswerClass | null {
  const asPrimary = status === rules.expectStatus;
  const asNotPrimary = rules.notPrimaryStatus.includes(status);
  const any = (list: readonly Buffer[]): boolean => list.length === 0 || list.some(found);
  const all = rules.expectBodyAll.every(found);
  if (asPrimary && any(rules.expectBody) && all) return 'primary';
  // A primary needle may still come: only the whole body can say it is not there.
  if (asPrimary && !complete) return null;
  if (asNotPrimary && any(rules.notPrimaryBody)) return 'not_primary';
  if (asNotPrimary && !complete) return null;
  return 'unexpected';
}

/** The needles worth looking for in an answer with this status. */
function needlesFor(rules: AnswerRules, status: number): Buffer[] {
  return [
    ...(status === rules.expectStatus ? [...rules.expectBody, ...rules.expectBodyAll] : []),
    ...(rules.notPrimaryStatus.includes(status) ? rules.notPrimaryBody : []),
  ];
}

const ignore = (): void => {};

/**
 * The end of one probe round (its timer, close(), a decided answer): hooks that cancel its
 * requests and stop its body readers, run once. Plain callbacks rather than an
 * AbortController per URL and per round: at 70 probes a second the signals, node:http's
 * abort listener and end-of-stream watcher on every request and an Event per abort were a
 * sixth of the daemon's JavaScript time at rest (--cpu-prof, issue 14).
 */
class RoundEnd {
  private hooks: (() => void)[] | null = [];

  get ended(): boolean {
    return this.hooks === null;
  }

  /** Runs `fn` when the round ends (at once if it has). */
  on(fn: () => void): void {
    if (this.hooks === null) fn();
    else this.hooks.push(fn);
  }

  off(fn: () => void): void {
    const i = this.hooks?.indexOf(fn) ?? -1;
    if (i >= 0) this.hooks?.splice(i, 1);
  }

  end(): void {
    const hooks = this.hooks;
    if (hooks === null) return;
    this.hooks = null;
    for (const fn of hooks) fn();
  }
}

/** A check URL ready to request, or why it cannot be (reported by every probe of it). */
type PreparedUrl =
  | { readonly mod: typeof http | typeof https; readonly options: http.RequestOptions }
  | { readonly error: Error };

/**
 * Checks mirror members' status pages over HTTP(S). Owns the keep-alive agents, so one
 * Prober serves every member; `close()` destroys them and cancels probes in flight.
 * The health loop (monitor.ts) is its only caller.
 */
export class Prober {
  private readonly httpAgent = new http.Agent(AGENT_OPTIONS);
  private readonly httpsAgent = new https.Agent(AGENT_OPTIONS);
  private readonly closing = new AbortController();
  /** Cancel hooks of the probes in flight, run by close(). */
  private readonly running = new Set<() => void>();
  private readonly drainGraceMs: number;
  /**
   * Parsed check URLs and normalised answer rules, made once per configured list and options
   * object (the monitor passes the same ones every interval) instead of once per probe.
   */
  private readonly prepared = new WeakMap<readonly string[], readonly PreparedUrl[]>();
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
    if (this.closing.signal.aborted) return;
    this.closing.abort();
    for (const cancel of [...this.running]) cancel();
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  private async run(target: ProbeTarget, opts: ProbeOptions, started: number): Promise<ProbeResult> {
    if (this.closing.signal.aborted) return closedResult(0);
    const out = await this.race(target.urls, this.rulesFor(opts), opts, started);
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
    if (this.closing.signal.aborted) return { ...closedResult(latencyMs), answers };
    // A silent URL says more about the member (it may be hung) than a gateway's error page.
    if (out.timedOut) return { kind: 'timeout', latencyMs, superserver, answers };
    const odd = answers.find((a) => a.outcome === 'unexpected');
    if (odd !== undefined) {
      return { kind: 'unexpected', status: odd.status ?? 0, url: odd.url, latencyMs, superserver, answers };
    }
    const code = answers.find((a) => a.code !== null)?.code ?? 'MLB_ERR_PROBE_FAILED';
    return { kind: 'error', code, latencyMs, superserver, answers };
  }

  private rulesFor(opts: ProbeOptions): AnswerRules {
    let rules = this.rules.get(opts);
    if (rules === undefined) this.rules.set(opts, (rules = answerRules(opts)));
    return rules;
  }

  private preparedFor(urls: readonly string[]): readonly PreparedUrl[] {
    let list = this.prepared.get(urls);
    if (list === undefined) this.prepared.set(urls, (list = urls.map((u) => this.prepare(u))));
    return list;
  }

  private prepare(url: string): PreparedUrl {
    let u: URL;
    try {
      u = new URL(url);
    } catch (err) {
      return { error: err as Error };
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      return { error: new TypeError(`only http and https check URLs are supported, not ${u.protocol}`) };
    }
    const tls = u.protocol === 'https:';
    // Only the fields node:http reads (not href, hash, search, pathname): it copies the
    // options object three times per request, field by field.
    const { protocol, hostname, port, path, auth } = urlToHttpOptions(u);
    const options: http.RequestOptions = {
      protocol,
      hostname,
      ...(port === undefined ? {} : { port }),
      path,
      ...(auth === undefined ? {} : { auth }),
      method: 'GET',
      headers: REQUEST_HEADERS,
      agent: tls ? this.httpsAgent : this.httpAgent,
    };
    return { mod: tls ? https : http, options };
  }

  /**
   * Requests every URL at once and classifies each answer. A "not primary" answer decides at
   * once (and the rest are aborted): demoting is never the unsafe direction. A "primary"
   * answer decides too, but the round waits for the other URLs (up to the timeout) so that a
   * URL saying otherwise is seen as a contradiction. Unexpected answers and failures decide
   * nothing. One timer bounds it all, bodies included.
   */
  private race(
    urls: readonly string[],
    rules: AnswerRules,
    opts: ProbeOptions,
    started: number,
  ): Promise<HttpOutcome> {
    if (urls.length === 0) {
      const none: UrlAnswer = {
        url: '',
        outcome: 'error',
        status: null,
        code: 'MLB_ERR_NO_CHECK_URL',
        latencyMs: 0,
      };
      return Promise.resolve({ answers: [none], decided: -1, timedOut: false, closed: false });
    }
    const prepared = this.preparedFor(urls);
    return new Promise((resolve) => {
      const answers: (UrlAnswer | null)[] = urls.map(() => null);
      // Cancels the requests and body readers still running when the round is over.
      const end = new RoundEnd();
      let timedOut = false;
      let closed = false;
      let finished = false;
      let decided = -1;
      const finish = (): void => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        this.running.delete(cancel);
        end.end();
        const outcome: UrlAnswer['outcome'] = timedOut ? 'timeout' : 'skipped';
        const all = answers.map(
          (a, i) => a ?? { url: urls[i] ?? '', outcome, status: null, code: null, latencyMs: null },
        );
        resolve({
          answers: all,
          decided,
          timedOut: timedOut && all.some((a) => a.outcome === 'timeout'),
          closed,
        });
      };
      const timer = setTimeout(() => {
        timedOut = true;
        finish();
      }, opts.timeoutMs);
      const cancel = (): void => {
        closed = true;
        finish();
      };
      this.running.add(cancel);
      const settle = (i: number, a: UrlAnswer): void => {
        if (finished || answers[i] !== null) return;
        answers[i] = a;
        const authoritative = a.outcome === 'primary' || a.outcome === 'not_primary';
        if (authoritative && decided === -1) decided = i;
        if (a.outcome === 'not_primary' && decided === i) finish();
        else if (answers.every((x) => x !== null)) finish();
      };
      const mayRetry = (): boolean => !finished;

      urls.forEach((url, i) => {
        fetchWithRetry(prepared[i]!, end, mayRetry).then(
          (res) => {
            // Lost the race: the round's end destroyed its request, and its socket is not worth waiting for.
            if (finished) {
              res.body.destroy();
              return;
            }
            void judge(res, rules, opts.maxBodyBytes, end, this.drainGraceMs).then((v) => {
              if (v !== null) {
                settle(i, {
                  url,
                  outcome: v.cls,
                  status: res.status,
                  code: null,
                  latencyMs: v.decidedAt - started,
                });
                return;
              }
              // Cut short before the body could be judged: an unfinished answer is no answer.
              if (finished) return;
              const latencyMs = performance.now() - started;
              settle(i, { url, outcome: 'error', status: null, code: 'MLB_ERR_INCOMPLETE_BODY', latencyMs });
            });
          },
          (err: unknown) => {
            // Requests cut by our own timer, close() or a decided round are not failures of their own.
            if (finished) return;
            const latencyMs = performance.now() - started;
            settle(i, { url, outcome: 'error', status: null, code: probeErrorCode(err), latencyMs });
          },
        );
      });
    });
  }
}

async function fetchWithRetry(url: PreparedUrl, end: RoundEnd, mayRetry: () => boolean): Promise<Answer> {
  try {
    return await request(url, end);
  } catch (err) {
    // A kept-alive socket that the server closed just as it was reused fails with
    // ECONNRESET before any answer (a race inherent to HTTP keep-alive); one retry,
    // which finds that socket gone from the pool, tells it from a status page that
    // really resets.
    if (probeErrorCode(err) !== 'ECONNRESET' || !mayRetry()) throw err;
    return await request(url, end);
  }
}

/** A status request's answer: what judge() needs of it. */
interface Answer {
  readonly status: number;
  /** The declared Content-Length, NaN when none. */
  readonly declaredLength: number;
  readonly body: http.IncomingMessage;
}

/**
 * One GET with node:http(s), resolved at the headers. node:http itself follows no redirect
 * (a 3xx is an answer like any other) and decompresses nothing (no Accept-Encoding is sent).
 * The round's end cancels it before or after the headers. Rejects with the socket's, TLS's
 * or parser's error (its `code` is what probeErrorCode() reads), or the URL's own error (a
 * TypeError for one that is not http(s)). Plain node:http rather than node-fetch: a probe
 * runs every interval for every member, and node-fetch's Request/Response/Headers and stream
 * wrappers were a quarter of the daemon's CPU at rest and 40% of each probe's allocation
 * (issue 14).
 */
function request(url: PreparedUrl, end: RoundEnd): Promise<Answer> {
  return new Promise((resolve, reject) => {
    if ('error' in url) return reject(url.error);
    const req = url.mod.request(url.options);
    // A request whose answer was read to its end is already marked destroyed (its socket is
    // back in the pool), so this only ever cuts one still running.
    end.on(() => {
      if (!req.destroyed) req.destroy(roundOver());
    });
    // `on`, not `once`: an abort or a broken socket after the headers errors the request
    // again, and that second error must not go unhandled (reject is a no-op by then).
    req.on('error', reject);
    req.once('response', (res) => {
      // An abort after the headers destroys the body with an error; the reader sees 'close'.
      res.on('error', ignore);
      const declared = res.headers['content-length'];
      resolve({
        status: res.statusCode ?? 0,
        declaredLength: declared === undefined ? NaN : Number(declared),
        body: res,
      });
    });
    req.end();
  });
}

/** What a request cut by the round's end fails with (never reported: the round is over). */
function roundOver(): Error {
  return Object.assign(new Error('probe round over'), { code: 'ABORT_ERR' });
}

function closedResult(latencyMs: number): ProbeResult {
  return { kind: 'error', code: 'MLB_ERR_PROBER_CLOSED', latencyMs, superserver: null };
}

/**
 * Classifies one response: the status, then (where the class depends on it) the body.
 * Null: the body was cut short (deadline, close, broken connection) before it could be judged.
 */
async function judge(
  res: Answer,
  rules: AnswerRules,
  maxBodyBytes: number,
  end: RoundEnd,
  graceMs: number,
): Promise<{ cls: AnswerClass; decidedAt: number } | null> {
  return readBody(
    res.body,
    needlesFor(rules, res.status),
    (found, complete) => classifyAnswer(rules, res.status, found, complete),
    maxBodyBytes,
    res.declaredLength,
    end,
    graceMs,
  );
}

/**
 * Reads a body at most `maxBytes` far, looking for `needles`, until `classify` can decide:
 * when a needle settles it, the cap is reached or the body ends. Resolves null when
 * the round ends or the body breaks first. After deciding it lets a small remainder
 * drain for `graceMs` so the socket can be reused, and otherwise destroys the response.
 * Holds one chunk plus the longest needle's length at most; resolves once the body is settled.
 */
function readBody(
  body: Readable | null,
  needles: readonly Buffer[],
  classify: (found: (n: Buffer) => boolean, complete: boolean) => AnswerClass | null,
  maxBytes: number,
  declaredLength: number,
  end: RoundEnd,
  graceMs: number,
): Promise<{ cls: AnswerClass; decidedAt: number } | null> {
  return new Promise((resolve) => {
    let verdict: { cls: AnswerClass; decidedAt: number } | null = null;
    let settled = false;
    let bytes = 0;
    let tail = Buffer.alloc(0);
    let grace: NodeJS.Timeout | undefined;
    const seen = new Set<Buffer>();
    const found = (n: Buffer): boolean => seen.has(n);
    const keep = Math.max(0, ...needles.map((n) => n.length - 1));

    const settle = (complete: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(grace);
      end.off(onAbort);
      if (body) {
        body.off('data', onData).off('end', onEnd).off('close', onClose);
        if (!complete) body.destroy();
      }
      resolve(verdict);
    };
    const tryDecide = (complete: boolean): void => {
      if (verdict !== null) return;
      const cls = classify(found, complete);
      if (cls === null) return;
      verdict = { cls, decidedAt: performance.now() };
      if (!complete || body !== null) grace = setTimeout(() => settle(false), graceMs);
    };
    const onData = (chunk: Buffer): void => {
      const room = maxBytes - bytes;
      const part = chunk.length > room ? chunk.subarray(0, Math.max(0, room)) : chunk;
      bytes += part.length;
      if (verdict === null && needles.length > 0) {
        const window = tail.length > 0 ? Buffer.concat([tail, part]) : part;
        for (const n of needles) if (!seen.has(n) && window.includes(n)) seen.add(n);
        tryDecide(false);
        // Keep just enough to find a needle split across two chunks.
        tail = Buffer.from(window.subarray(Math.max(0, window.length - keep)));
      }
      if (bytes >= maxBytes) tryDecide(true);
      if (chunk.length > room) settle(false);
    };
    const onEnd = (): void => {
      tryDecide(true);
      settle(true);
    };
    const onClose = (): void => settle(false);
    const onAbort = (): void => settle(false);

    tryDecide(false);
    if (body === null) {
      tryDecide(true);
      settle(true);
      return;
    }
    if (end.ended || (verdict !== null && declaredLength > maxBytes)) {
      settle(false);
      return;
    }
    end.on(onAbort);
    body.on('data', onData).once('end', onEnd).once('close', onClose);
  });
}
