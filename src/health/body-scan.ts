import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import type { RoundEnd } from './round-end.js';
import type { AnswerClass } from './types.js';

/** The class of an answer and when it was known (its latency ends there, not at the body's end). */
export interface Verdict {
  readonly cls: AnswerClass;
  readonly decidedAt: number;
}

/** Decides an answer's class from the needles seen so far; null: not yet (see classifyAnswer). */
export type Classify = (found: (needle: Buffer) => boolean, complete: boolean) => AnswerClass | null;

/**
 * Finds needles in a body that arrives in chunks. Pure: holds the set of needles seen and
 * just enough of the previous chunk's end to find a needle split across two chunks, never
 * the body.
 */
export class NeedleScan {
  private readonly seen = new Set<Buffer>();
  private tail: Buffer = Buffer.alloc(0);
  private readonly keep: number;

  constructor(private readonly needles: readonly Buffer[]) {
    this.keep = Math.max(0, ...needles.map((n) => n.length - 1));
  }

  /** Whether `needle` (one of those given) has been seen. */
  readonly found = (needle: Buffer): boolean => this.seen.has(needle);

  feed(part: Buffer): void {
    if (this.seen.size === this.needles.length) return;
    const window = this.tail.length > 0 ? Buffer.concat([this.tail, part]) : part;
    for (const n of this.needles) if (!this.seen.has(n) && window.includes(n)) this.seen.add(n);
    // A copy, so the chunk it came from is not kept alive.
    this.tail = Buffer.from(window.subarray(Math.max(0, window.length - this.keep)));
  }
}

/**
 * Reads one response body at most `maxBytes` far, looking for `needles`, until `classify`
 * can decide: when a needle settles it, the cap is reached or the body ends. After deciding
 * it lets a small remainder drain for `graceMs` so the socket can go back to the keep-alive
 * pool, and otherwise destroys the body. One object per body; `result` resolves once the
 * body is settled: the verdict, or null when the round ended or the body broke first.
 */
export class BodyScan {
  readonly result: Promise<Verdict | null>;
  private resolve!: (v: Verdict | null) => void;
  private verdict: Verdict | null = null;
  private settled = false;
  private bytes = 0;
  private grace: NodeJS.Timeout | undefined;
  private readonly scan: NeedleScan;

  constructor(
    private readonly body: Readable,
    private readonly needles: readonly Buffer[],
    private readonly classify: Classify,
    private readonly maxBytes: number,
    private readonly graceMs: number,
    private readonly end: RoundEnd,
    /** The declared Content-Length, NaN when none. */
    declaredLength: number,
  ) {
    this.result = new Promise((resolve) => (this.resolve = resolve));
    this.scan = new NeedleScan(needles);
    // The status alone may decide (no needles to look for).
    this.tryDecide(false);
    // A body longer than the cap would not drain in the grace anyway.
    if (end.ended || (this.verdict !== null && declaredLength > maxBytes)) {
      this.settle(false);
      return;
    }
    end.on(this.onAbort);
    body.on('data', this.onData).once('end', this.onEnd).once('close', this.onClose);
  }

  private tryDecide(complete: boolean): void {
    if (this.verdict !== null) return;
    const cls = this.classify(this.scan.found, complete);
    if (cls === null) return;
    this.verdict = { cls, decidedAt: performance.now() };
    this.grace = setTimeout(() => this.settle(false), this.graceMs);
  }

  private settle(complete: boolean): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.grace);
    this.end.off(this.onAbort);
    this.body.off('data', this.onData).off('end', this.onEnd).off('close', this.onClose);
    if (!complete) this.body.destroy();
    this.resolve(this.verdict);
  }

  private readonly onData = (chunk: Buffer): void => {
    const room = this.maxBytes - this.bytes;
    const part = chunk.length > room ? chunk.subarray(0, Math.max(0, room)) : chunk;
    this.bytes += part.length;
    if (this.verdict === null && this.needles.length > 0) {
      this.scan.feed(part);
      this.tryDecide(false);
    }
    if (this.bytes >= this.maxBytes) this.tryDecide(true);
    if (chunk.length > room) this.settle(false);
  };

  private readonly onEnd = (): void => {
    this.tryDecide(true);
    this.settle(true);
  };

  private readonly onClose = (): void => this.settle(false);
  private readonly onAbort = (): void => this.settle(false);
}
