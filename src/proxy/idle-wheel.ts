/**
 * One coarse timer for every idle timeout of a mirror, instead of a timer per socket
 * re-armed on every read and write. An entry says how many bytes its session had moved
 * when it was last looked at; the wheel looks again a quarter of the timeout later, and
 * an entry whose count has not changed for the whole timeout is idle. Nothing runs per
 * read or write; each entry costs four visits per timeout, and the timer only runs while
 * entries exist. A quiet session is closed between `idleMs` and about 1.25 × `idleMs`
 * (plus one tick) after its last byte.
 */

/** What the wheel needs from a session. */
export interface IdleEntry {
  /** Bytes moved both ways so far (any change means activity). */
  activity(): number;
  /** Called once when the entry has been quiet for the timeout; it is out of the wheel by then. */
  onIdle(): void;
  /** Wheel bookkeeping, owned by the wheel: the slot the entry waits in (-1: none). */
  idleSlot: number;
  idleMark: number;
  idleQuietTicks: number;
}

export class IdleWheel {
  readonly idleMs: number;
  private readonly tickMs: number;
  /** Ticks of silence that make an entry idle. */
  private readonly span: number;
  /** Ticks between two looks at one entry. */
  private readonly step: number;
  private readonly slots: (Set<IdleEntry> | undefined)[];
  private cursor = 0;
  private count = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(idleMs: number) {
    this.idleMs = idleMs;
    // Sixteen ticks per timeout, between 10 ms and 1 s: fine enough for short test
    // timeouts, one wake-up a second for the hours database sessions idle.
    this.tickMs = Math.min(1000, Math.max(10, Math.ceil(idleMs / 16)));
    this.span = Math.max(1, Math.ceil(idleMs / this.tickMs));
    this.step = Math.max(1, Math.ceil(this.span / 4));
    this.slots = new Array<Set<IdleEntry> | undefined>(this.step + 1);
  }

  get size(): number {
    return this.count;
  }

  add(e: IdleEntry): void {
    if (e.idleSlot >= 0) return;
    e.idleMark = e.activity();
    e.idleQuietTicks = 0;
    this.place(e);
    this.count++;
    if (this.timer === null) {
      this.timer = setInterval(() => this.tick(), this.tickMs);
      // Idle timeouts never keep the process alive on their own.
      this.timer.unref();
    }
  }

  remove(e: IdleEntry): void {
    if (e.idleSlot < 0) return;
    this.slots[e.idleSlot]?.delete(e);
    e.idleSlot = -1;
    this.count--;
    if (this.count === 0) this.stop();
  }

  /** Stops the timer and forgets every entry (they are not told). */
  clear(): void {
    for (const set of this.slots) {
      if (set) for (const e of set) e.idleSlot = -1;
    }
    this.slots.fill(undefined);
    this.count = 0;
    this.stop();
  }

  private stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private place(e: IdleEntry): void {
    const slot = (this.cursor + this.step) % this.slots.length;
    let set = this.slots[slot];
    if (set === undefined) this.slots[slot] = set = new Set();
    set.add(e);
    e.idleSlot = slot;
  }

  private tick(): void {
    this.cursor = (this.cursor + 1) % this.slots.length;
    const due = this.slots[this.cursor];
    if (due === undefined || due.size === 0) return;
    this.slots[this.cursor] = undefined;
    for (const e of due) {
      // Removed meanwhile (an onIdle above closed it, or it closed on its own).
      if (e.idleSlot !== this.cursor) continue;
      const now = e.activity();
      if (now !== e.idleMark) {
        // Active since the last look: its silence starts now at the earliest.
        e.idleMark = now;
        e.idleQuietTicks = 0;
      } else {
        e.idleQuietTicks += this.step;
      }
      if (e.idleQuietTicks < this.span) {
        this.place(e);
        continue;
      }
      e.idleSlot = -1;
      this.count--;
      e.onIdle();
    }
    if (this.count === 0) this.stop();
  }
}
