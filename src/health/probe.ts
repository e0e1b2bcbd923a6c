import http from 'node:http';
import https from 'node:https';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import fetch, { type Response } from 'node-fetch';
import type { HostPort } from '../config/types.js';
import { VERSION } from '../version.js';
import { checkSuperserver } from './superserver.js';
import type { ProbeResult } from './types.js';

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
  /** Text the body must contain (within maxBodyBytes) for the answer to mean primary. */
  readonly expectBody: string | null;
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
type HttpOutcome =
  | {
      readonly kind: 'answer';
      readonly primary: boolean;
      readonly status: number;
      readonly url: string;
      readonly latencyMs: number;
    }
  | {
      readonly kind: 'failed';
      readonly code: string;
      readonly timedOut: boolean;
      readonly closed: boolean;
      readonly latencyMs: number;
    };

interface BodyVerdict {
  /** The needle was seen (always true when there was none to look for). */
  readonly found: boolean;
  readonly decidedAt: number;
}

const ignore = (): void => {};

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
    const out = await this.race(target.urls, opts, started);
    if (out.kind === 'answer') {
      const { status, url, latencyMs } = out;
      return out.primary
        ? { kind: 'primary', status, latencyMs, url }
        : { kind: 'not_primary', status, latencyMs, url };
    }
    if (out.closed) return closedResult(out.latencyMs);
    const superserver = opts.checkSuperserver
      ? await checkSuperserver(target.superserver, opts.timeoutMs, this.closing.signal)
      : null;
    // A check cut by close() says nothing about the member.
    if (this.closing.signal.aborted) return closedResult(out.latencyMs);
    return out.timedOut
      ? { kind: 'timeout', latencyMs: out.latencyMs, superserver }
      : { kind: 'error', code: out.code, latencyMs: out.latencyMs, superserver };
  }

  /**
   * Requests every URL at once. The first response with any status decides and the other
   * requests are aborted; failures decide nothing unless all URLs fail. One timer bounds
   * it all, body included.
   */
  private race(urls: readonly string[], opts: ProbeOptions, started: number): Promise<HttpOutcome> {
    if (urls.length === 0) {
      return Promise.resolve({
        kind: 'failed',
        code: 'MLB_ERR_NO_CHECK_URL',
        timedOut: false,
        closed: false,
        latencyMs: 0,
      });
    }
    return new Promise((resolve) => {
      const attempts = urls.map(() => new AbortController());
      const deadline = new AbortController();
      let timedOut = false;
      let closed = false;
      let decided = false;
      let failures = 0;
      let firstCode: string | null = null;
      const stop = (): void => {
        deadline.abort();
        for (const a of attempts) a.abort();
      };
      const timer = setTimeout(() => {
        timedOut = true;
        stop();
      }, opts.timeoutMs);
      const cancel = (): void => {
        closed = true;
        stop();
      };
      this.running.add(cancel);
      const finish = (out: HttpOutcome): void => {
        clearTimeout(timer);
        this.running.delete(cancel);
        resolve(out);
      };
      const mayRetry = (): boolean => !decided && !deadline.signal.aborted;

      urls.forEach((url, i) => {
        const attempt = attempts[i];
        this.fetchWithRetry(url, attempt.signal, mayRetry).then(
          (res) => {
            if (decided) {
              discard(res, attempt);
              return;
            }
            decided = true;
            attempts.forEach((other) => other !== attempt && other.abort());
            void judge(res, opts, deadline.signal, this.drainGraceMs).then((v) => {
              if (v !== null) {
                const { primary, decidedAt } = v;
                finish({ kind: 'answer', primary, status: res.status, url, latencyMs: decidedAt - started });
                return;
              }
              // Cut short before the body could be judged: an unfinished answer is no answer.
              const code = closed ? 'MLB_ERR_PROBER_CLOSED' : 'MLB_ERR_INCOMPLETE_BODY';
              finish({ kind: 'failed', code, timedOut, closed, latencyMs: performance.now() - started });
            });
          },
          (err: unknown) => {
            if (decided) return;
            // Requests cut by our own timer or close() are not failures of their own.
            const ours = (timedOut || closed) && attempt.signal.aborted;
            if (!ours) firstCode ??= probeErrorCode(err);
            if (++failures < urls.length) return;
            const code = closed ? 'MLB_ERR_PROBER_CLOSED' : (firstCode ?? 'MLB_ERR_PROBE_FAILED');
            finish({ kind: 'failed', code, timedOut, closed, latencyMs: performance.now() - started });
          },
        );
      });
    });
  }

  private async fetchWithRetry(url: string, signal: AbortSignal, mayRetry: () => boolean): Promise<Response> {
    try {
      return await this.send(url, signal);
    } catch (err) {
      // A kept-alive socket that the server closed just as it was reused fails with
      // ECONNRESET before any answer (a race inherent to HTTP keep-alive); one retry,
      // which finds that socket gone from the pool, tells it from a status page that
      // really resets.
      if (probeErrorCode(err) !== 'ECONNRESET' || !mayRetry()) throw err;
      return await this.send(url, signal);
    }
  }

  private async send(url: string, signal: AbortSignal): Promise<Response> {
    const res = await fetch(url, {
      method: 'GET',
      headers: REQUEST_HEADERS,
      agent: (u: URL) => (u.protocol === 'https:' ? this.httpsAgent : this.httpAgent),
      redirect: 'manual',
      compress: false,
      signal,
    });
    // node-fetch reports an abort after the headers as an 'error' event on the body;
    // without a listener that would be an uncaught exception.
    res.body?.on('error', ignore);
    return res;
  }
}

function closedResult(latencyMs: number): ProbeResult {
  return { kind: 'error', code: 'MLB_ERR_PROBER_CLOSED', latencyMs, superserver: null };
}

/** Drops a response that lost the race: its socket is not worth waiting for. */
function discard(res: Response, attempt: AbortController): void {
  attempt.abort();
  (res.body as Readable | null)?.destroy();
}

/**
 * Decides what the deciding response says: the status, then (if asked) the body.
 * Null: the body was cut short (deadline, close, broken connection) before it could be judged.
 */
async function judge(
  res: Response,
  opts: ProbeOptions,
  deadline: AbortSignal,
  graceMs: number,
): Promise<{ primary: boolean; decidedAt: number } | null> {
  const statusOk = res.status === opts.expectStatus;
  const needle = statusOk && opts.expectBody !== null ? Buffer.from(opts.expectBody, 'utf8') : null;
  const declared = Number(res.headers.get('content-length') ?? NaN);
  const verdict = await readBody(
    res.body as Readable | null,
    needle,
    opts.maxBodyBytes,
    declared,
    deadline,
    graceMs,
  );
  return verdict && { primary: statusOk && verdict.found, decidedAt: verdict.decidedAt };
}

/**
 * Reads a body at most `maxBytes` far, looking for `needle` (null: nothing to look for,
 * the answer is decided already). Decides when the needle is seen, the cap is reached or
 * the body ends; resolves null when `deadline` aborts or the body breaks first. After
 * deciding it lets a small remainder drain for `graceMs` so the socket can be reused,
 * and otherwise destroys the response. Holds one chunk plus needle.length bytes at most;
 * resolves once the body is settled.
 */
function readBody(
  body: Readable | null,
  needle: Buffer | null,
  maxBytes: number,
  declaredLength: number,
  deadline: AbortSignal,
  graceMs: number,
): Promise<BodyVerdict | null> {
  return new Promise((resolve) => {
    let verdict: BodyVerdict | null = null;
    let settled = false;
    let bytes = 0;
    let tail = Buffer.alloc(0);
    let grace: NodeJS.Timeout | undefined;

    const settle = (complete: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(grace);
      deadline.removeEventListener('abort', onAbort);
      if (body) {
        body.off('data', onData).off('end', onEnd).off('close', onClose);
        if (!complete) body.destroy();
      }
      resolve(verdict);
    };
    const decide = (found: boolean): void => {
      verdict = { found, decidedAt: performance.now() };
      grace = setTimeout(() => settle(false), graceMs);
    };
    const onData = (chunk: Buffer): void => {
      const room = maxBytes - bytes;
      const part = chunk.length > room ? chunk.subarray(0, Math.max(0, room)) : chunk;
      bytes += part.length;
      if (verdict === null && needle !== null) {
        const window = tail.length > 0 ? Buffer.concat([tail, part]) : part;
        if (window.includes(needle)) decide(true);
        // Keep just enough to find a needle split across two chunks.
        else tail = Buffer.from(window.subarray(Math.max(0, window.length - (needle.length - 1))));
      }
      if (verdict === null && bytes >= maxBytes) decide(false);
      if (chunk.length > room) settle(false);
    };
    const onEnd = (): void => {
      if (verdict === null) decide(false);
      settle(true);
    };
    const onClose = (): void => settle(false);
    const onAbort = (): void => settle(false);

    const nothingToFind = needle === null || needle.length === 0;
    if (nothingToFind) decide(true);
    if (body === null) {
      settle(true);
      return;
    }
    if (deadline.aborted || (nothingToFind && declaredLength > maxBytes)) {
      settle(false);
      return;
    }
    deadline.addEventListener('abort', onAbort, { once: true });
    body.on('data', onData).once('end', onEnd).once('close', onClose);
  });
}
