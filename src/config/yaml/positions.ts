/**
 * Where each value of the parsed YAML came from. Values are addressed by JSON Pointer
 * (`/mirrors/0/listen`), the same paths ajv reports, so schema errors map straight back
 * to a line and column.
 */

export interface Pos {
  readonly line: number;
  readonly col: number;
}

export const START: Pos = { line: 1, col: 1 };

export type Segment = string | number;

export function pointer(parent: string, seg: Segment): string {
  return `${parent}/${String(seg).replace(/~/g, '~0').replace(/\//g, '~1')}`;
}

export function segments(ptr: string): string[] {
  if (ptr === '') return [];
  return ptr
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** `/mirrors/0/members/1` → `mirrors[0].members[1]`, the way messages name a place. */
export function displayPath(ptr: string): string {
  let out = '';
  for (const s of segments(ptr)) {
    if (/^\d+$/.test(s)) out += `[${s}]`;
    else out += out === '' ? s : `.${s}`;
  }
  return out;
}

export function parentPointer(ptr: string): string {
  return ptr.slice(0, Math.max(0, ptr.lastIndexOf('/')));
}

/** True when ptr or one of its ancestors already has a problem. */
export function isReported(reported: ReadonlySet<string>, ptr: string): boolean {
  for (let p = ptr; ; p = p.slice(0, p.lastIndexOf('/'))) {
    if (reported.has(p)) return true;
    if (p === '') return false;
  }
}

/** Positions of every value and every map key, by pointer. */
export class PositionIndex {
  private readonly values = new Map<string, Pos>();
  private readonly keys = new Map<string, Pos>();

  setValue(ptr: string, pos: Pos): void {
    this.values.set(ptr, pos);
  }

  setKey(ptr: string, pos: Pos): void {
    this.keys.set(ptr, pos);
  }

  /** The value at ptr, or the nearest ancestor that exists (a missing key points at its parent map). */
  value(ptr: string): Pos {
    for (let p = ptr; ; p = parentPointer(p)) {
      const pos = this.values.get(p);
      if (pos) return pos;
      if (p === '') return START;
    }
  }

  /** The key that holds ptr in its map, else the value itself. */
  key(ptr: string): Pos {
    return this.keys.get(ptr) ?? this.value(ptr);
  }
}
