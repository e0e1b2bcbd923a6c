import type { Decision } from '../health/types.js';
import { MAX_LOOPS } from './support.js';

/** Member slots per mirror: names are given slots once (a reload's new names take free ones). */
export const MAX_MEMBERS = 64;

const WORD = 0; // accepting (bit 0), primary slot + 1 (bits 1-7), fallback slot + 1 (bits 8-14)
const GENERATION = 1;
const HEADER = 2;
/** Per loop: admitted and not closed, held, connections accepted, then sessions per member slot. */
const ACTIVE = 0;
const HELD = 1;
const ACCEPTED = 2;
const LINKED = 3;
const STRIDE = LINKED + MAX_MEMBERS;

/** Where a mirror's clients go now, as every loop reads it. */
export interface SharedRouting {
  readonly accepting: boolean;
  readonly primary: number;
  readonly fallback: number;
}

/**
 * One mirror's routing state and counts, in one SharedArrayBuffer that the control plane
 * and every data-plane loop map. The control plane writes the routing word (one Atomics
 * store: a loop never reads a primary with another decision's `accepting`); each loop reads
 * it on every pick, so a decision reaches every loop the moment it is stored. The counts are
 * one row per loop (each loop writes only its own; a process-wide figure is the sum): a
 * dead loop's row is zeroed, so what it held is not counted against the limits forever.
 */
export class SharedMirrorState {
  readonly words: Int32Array;

  constructor(readonly buffer: SharedArrayBuffer = newBuffer()) {
    this.words = new Int32Array(buffer);
  }

  /** Control plane: the decision as slots (-1: none), then the generation (a decision count). */
  write(d: Decision, slotOf: (member: string) => number): number {
    const p = d.primary === null ? 0 : slotOf(d.primary) + 1;
    const f = d.fallback === null ? 0 : slotOf(d.fallback) + 1;
    Atomics.store(this.words, WORD, (d.accepting ? 1 : 0) | (p << 1) | (f << 8));
    return Atomics.add(this.words, GENERATION, 1) + 1;
  }

  read(): SharedRouting {
    const w = Atomics.load(this.words, WORD);
    return { accepting: (w & 1) === 1, primary: ((w >> 1) & 0x7f) - 1, fallback: ((w >> 8) & 0x7f) - 1 };
  }

  get generation(): number {
    return Atomics.load(this.words, GENERATION);
  }

  /** Loop `loop`: adds `n` to one of its counts. */
  add(loop: number, what: 'active' | 'held' | 'accepted', n: number): void {
    Atomics.add(this.words, row(loop) + (what === 'active' ? ACTIVE : what === 'held' ? HELD : ACCEPTED), n);
  }

  addLinked(loop: number, slot: number, n: number): void {
    Atomics.add(this.words, row(loop) + LINKED + slot, n);
  }

  /** The process-wide figure: the sum over every loop's row. */
  total(what: 'active' | 'held', loops: number): number {
    const at = what === 'active' ? ACTIVE : HELD;
    let n = 0;
    for (let l = 0; l < loops; l++) n += Atomics.load(this.words, row(l) + at);
    return n;
  }

  /**
   * Takes one place under `max` for loop `loop`, or none: the place is added first and given
   * back when the sum went over, so two loops racing for the last place never both get it.
   */
  tryTake(loop: number, max: number, loops: number): boolean {
    Atomics.add(this.words, row(loop) + ACTIVE, 1);
    if (this.total('active', loops) <= max) return true;
    Atomics.sub(this.words, row(loop) + ACTIVE, 1);
    return false;
  }

  /** One loop's figures (for /status and metrics). */
  loop(loop: number): { active: number; held: number; accepted: number } {
    const r = row(loop);
    return {
      active: Atomics.load(this.words, r + ACTIVE),
      held: Atomics.load(this.words, r + HELD),
      accepted: Atomics.load(this.words, r + ACCEPTED),
    };
  }

  linked(slot: number, loops: number): number {
    let n = 0;
    for (let l = 0; l < loops; l++) n += Atomics.load(this.words, row(l) + LINKED + slot);
    return n;
  }

  /** A loop died: its clients died with it. Its accepted count stays (a counter's history). */
  clearLoop(loop: number): void {
    const r = row(loop);
    Atomics.store(this.words, r + ACTIVE, 0);
    Atomics.store(this.words, r + HELD, 0);
    for (let s = 0; s < MAX_MEMBERS; s++) Atomics.store(this.words, r + LINKED + s, 0);
  }
}

function row(loop: number): number {
  return HEADER + loop * STRIDE;
}

function newBuffer(): SharedArrayBuffer {
  return new SharedArrayBuffer((HEADER + MAX_LOOPS * STRIDE) * Int32Array.BYTES_PER_ELEMENT);
}

/**
 * Member names to slots, per mirror, kept across reloads so a loop and the control plane
 * agree on what a slot means while a reload's messages are on their way. Full: the slots
 * are dealt again from the members in force (a removed member's sessions were cut anyway).
 */
export class MemberSlots {
  private readonly slots = new Map<string, number>();

  assign(members: readonly string[]): ReadonlyMap<string, number> {
    if (members.filter((m) => !this.slots.has(m)).length + this.slots.size > MAX_MEMBERS) this.slots.clear();
    for (const m of members) if (!this.slots.has(m)) this.slots.set(m, this.slots.size);
    return new Map(this.slots);
  }
}
