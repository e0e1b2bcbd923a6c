/**
 * The end of one probe round (its timer, close(), a decided answer): hooks that cancel its
 * requests and stop its body readers, run once. Plain callbacks rather than an
 * AbortController per URL and per round: at 70 probes a second the signals, node:http's
 * abort listener and end-of-stream watcher on every request and an Event per abort were a
 * sixth of the daemon's JavaScript time at rest (--cpu-prof).
 */
export class RoundEnd {
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
