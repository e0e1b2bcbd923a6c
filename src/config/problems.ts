import { ConfigError, type ConfigProblem } from './errors.js';
import type { Pos } from './yaml/positions.js';

/** Enough to fix a file in one go without flooding a terminal from a generated or hostile file. */
export const MAX_REPORTED = 100;

/** Collects the problems of one file; every loader stage adds to it instead of throwing. */
export class ProblemList {
  private readonly items: ConfigProblem[] = [];
  private readonly warned: ConfigProblem[] = [];

  constructor(readonly file: string) {}

  add(pos: Pos, message: string): void {
    this.items.push({ file: this.file, line: pos.line, col: pos.col, message });
  }

  /** A warning: reported with the line, never stops the load. */
  warn(pos: Pos, message: string): void {
    this.warned.push({ file: this.file, line: pos.line, col: pos.col, message });
  }

  /** The warnings in file order. */
  warnings(): ConfigProblem[] {
    return [...this.warned].sort((a, b) => a.line - b.line || a.col - b.col);
  }

  get size(): number {
    return this.items.length;
  }

  /** Sorted by position, duplicates (one scalar reached through several aliases) dropped, capped. */
  sorted(): ConfigProblem[] {
    const seen = new Set<string>();
    const unique = this.items.filter((p) => {
      const k = `${p.line}:${p.col}:${p.message}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
    unique.sort((a, b) => a.line - b.line || a.col - b.col);
    if (unique.length <= MAX_REPORTED) return unique;
    const rest = unique.length - MAX_REPORTED;
    const next = unique[MAX_REPORTED] as ConfigProblem;
    return [...unique.slice(0, MAX_REPORTED), { ...next, message: `... and ${rest} more problems` }];
  }

  throwIfAny(): void {
    if (this.items.length > 0) throw new ConfigError(this.sorted());
  }
}

// Short, safe renderings of values for messages: a megabyte of junk must not flood a terminal.

export function quote(s: string): string {
  return JSON.stringify(s.length > 60 ? `${s.slice(0, 57)}...` : s);
}

export function describe(value: unknown): string {
  if (value === null || value === undefined) return 'nothing (null)';
  if (typeof value === 'string') return quote(value);
  if (Array.isArray(value)) return value.length === 0 ? 'an empty list' : `a list of ${value.length}`;
  if (typeof value === 'object') return 'a mapping';
  return String(value);
}
