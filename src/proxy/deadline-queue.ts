/**
 * Deadlines of connects under way, on one timer instead of one per connect (a timer per
 * connect is measurable under connection churn). Entries are pushed in the order they start
 * and, with one connect timeout per mirror, their deadlines come in that order too: the
 * timer only ever watches the head. After a reload that shortens the timeout, a newer entry
 * may wait behind an older one, at most for the old timeout.
 *
 * Entries that finished (`done`) are skipped when they reach the head: O(1) per entry.
 */
export interface Deadlined {
  /** performance.now() ms at which the entry expires. */
  readonly deadline: number;
  /** Finished before its deadline: nothing to do. */
  readonly done: boolean;
}

export class DeadlineQueue<T extends Deadlined> {
  private items: T[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly onExpired: (item: T) => void,
    private readonly now: () => number,
  ) {}

  get size(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
    if (this.timer === null) this.arm();
  }

  /** Drops every entry and the timer (the proxy closed). */
  clear(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.items = [];
    this.head = 0;
  }

  private arm(): void {
    this.timer = null;
    while (this.head < this.items.length && this.items[this.head]!.done) this.head++;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
      return;
    }
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    const wait = Math.max(0, this.items[this.head]!.deadline - this.now());
    this.timer = setTimeout(() => this.fire(), Math.ceil(wait));
    // Connects under way keep the process alive by their own handles, not by this timer.
    this.timer.unref();
  }

  private fire(): void {
    const now = this.now();
    while (this.head < this.items.length) {
      const item = this.items[this.head]!;
      if (!item.done && item.deadline > now) break;
      this.head++;
      if (!item.done) this.onExpired(item);
    }
    this.arm();
  }
}
