/**
 * Deadlines of connects under way, on one timer instead of one per connect (a timer per
 * connect is measurable under connection churn). Entries are pushed in the order they start
 * and, with one connect timeout per mirror, their deadlines come in that order too: the
 * timer only ever watches the head. After a reload that shortens the timeout, a newer entry
 * may wait behind an older one, at most for the old timeout.
 *
 * An entry that finishes is removed at once (`remove`, O(1)): its slot is emptied, so the
 * queue does not keep a finished connect (and the handles it holds) alive until the timer
 * reaches it. Under churn that was a connect timeout's worth of finished connects surviving
 * every young-generation GC. Entries marked `done` without a remove are skipped
 * when they reach the head.
 */
export interface Deadlined {
  /** performance.now() ms at which the entry expires. */
  readonly deadline: number;
  /** Finished before its deadline: nothing to do. */
  readonly done: boolean;
  /** The queue's own bookkeeping: where the entry sits (set by push). */
  queueSlot: number;
}

export class DeadlineQueue<T extends Deadlined> {
  private items: (T | null)[] = [];
  private head = 0;
  /** Absolute slot number of items[0]: slots stay valid when the array is compacted. */
  private base = 0;
  /** Entries pushed and neither removed, expired nor skipped. */
  private live = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly onExpired: (item: T) => void,
    private readonly now: () => number,
  ) {}

  get size(): number {
    return this.live;
  }

  push(item: T): void {
    item.queueSlot = this.base + this.items.length;
    this.items.push(item);
    this.live++;
    if (this.timer === null) this.arm();
  }

  /** Takes out an entry that finished before its deadline. A no-op for one not queued. */
  remove(item: T): void {
    const i = item.queueSlot - this.base;
    if (i < this.head || i >= this.items.length || this.items[i] !== item) return;
    this.items[i] = null;
    this.live--;
  }

  /** Drops every entry and the timer (the proxy closed). */
  clear(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.base += this.items.length;
    this.items = [];
    this.head = 0;
    this.live = 0;
  }

  /** Advances the head past removed and finished entries. */
  private skip(): void {
    while (this.head < this.items.length) {
      const item = this.items[this.head];
      if (item === null || item === undefined) {
        this.head++;
      } else if (item.done) {
        this.items[this.head++] = null;
        this.live--;
      } else {
        return;
      }
    }
  }

  private arm(): void {
    this.timer = null;
    this.skip();
    if (this.head === this.items.length) {
      this.base += this.items.length;
      this.items = [];
      this.head = 0;
      return;
    }
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.base += this.head;
      this.head = 0;
    }
    const wait = Math.max(0, this.items[this.head]!.deadline - this.now());
    this.timer = setTimeout(() => this.fire(), Math.ceil(wait));
    // Connects under way keep the process alive by their own handles, not by this timer.
    this.timer.unref();
  }

  private fire(): void {
    const now = this.now();
    for (this.skip(); this.head < this.items.length; this.skip()) {
      const item = this.items[this.head]!;
      if (item.deadline > now) break;
      this.items[this.head++] = null;
      this.live--;
      this.onExpired(item);
    }
    this.arm();
  }
}
