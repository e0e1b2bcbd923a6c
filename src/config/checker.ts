/**
 * Typed, guarded reads of the parsed tree for the semantic checks, which run even where
 * the schema found problems: a value that already has a problem reads as absent, so
 * nothing is reported twice.
 */
import { ConfigValueError } from './errors.js';
import { displayPath, isReported, segments, pointer, type Pos } from './yaml/positions.js';
import type { ProblemList } from './problems.js';
import type { YamlTree } from './yaml/yaml-tree.js';

export class Checker {
  constructor(
    private readonly tree: YamlTree,
    private readonly problems: ProblemList,
  ) {}

  /** The value at ptr, or undefined when absent or already reported. */
  get(ptr: string): unknown {
    return isReported(this.tree.reported, ptr) ? undefined : this.raw(ptr);
  }

  /** Whether the file sets ptr at all, sound or not. */
  present(ptr: string): boolean {
    return this.raw(ptr) !== undefined;
  }

  private raw(ptr: string): unknown {
    let v: unknown = this.tree.root;
    for (const s of segments(ptr)) {
      if (v === null || typeof v !== 'object' || !Object.hasOwn(v, s)) return undefined;
      v = (v as Record<string, unknown>)[s];
    }
    return v;
  }

  str(ptr: string): string | undefined {
    const v = this.get(ptr);
    return typeof v === 'string' ? v : undefined;
  }

  /** Pointers of the items of the list at ptr (none when it is not a list). */
  list(ptr: string): string[] {
    const v = this.get(ptr);
    return Array.isArray(v) ? v.map((_, i) => pointer(ptr, i)) : [];
  }

  has(ptr: string): boolean {
    return this.get(ptr) !== undefined;
  }

  pos(ptr: string): Pos {
    return this.tree.positions.value(ptr);
  }

  /** `line N`, for messages that point back at a first occurrence. */
  lineOf(ptr: string): string {
    return `line ${this.pos(ptr).line}`;
  }

  /** A problem with the value at ptr, prefixed with its path. */
  report(ptr: string, message: string): void {
    this.problemAt(ptr, `${displayPath(ptr)}: ${message}`);
    this.tree.reported.add(ptr);
  }

  /** A sound but doubtful value: a warning with its position, the config still loads. */
  warn(ptr: string, message: string): void {
    this.problems.warn(this.pos(ptr), message);
  }

  problemAt(ptr: string, message: string): void {
    this.problems.add(this.pos(ptr), message);
  }

  /** Runs a value parser; its error becomes a problem at ptr. */
  parse<T>(ptr: string, parser: (s: string) => T): T | undefined {
    const s = this.str(ptr);
    if (s === undefined) return undefined;
    try {
      return parser(s);
    } catch (e) {
      if (!(e instanceof ConfigValueError)) throw e;
      this.report(ptr, e.message);
      return undefined;
    }
  }
}
