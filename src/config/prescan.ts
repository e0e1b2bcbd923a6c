/**
 * Cheap checks on the raw text before it reaches the YAML parser. Deep nesting must be
 * refused here: the parser recurses per level, and a stack overflow inside V8's regexp
 * compiler aborts the whole process instead of throwing.
 */
import { START, type Pos } from './positions.js';
import type { ProblemList } from './problems.js';

export const MAX_BYTES = 1024 * 1024;
/** A real config nests about six levels; anything near this is junk. */
export const MAX_DEPTH = 64;

// eslint-disable-next-line no-control-regex -- finding control characters is the point
const CONTROL = /[\x00-\x08\x0B\x0C\x0E-\x1F\x7F\uFFFE\uFFFF]/;

/** Adds a problem and returns false when the text must not be parsed. */
export function prescan(text: string, problems: ProblemList): boolean {
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_BYTES) {
    problems.add(
      START,
      `file is too large (${bytes} bytes); a config file may have at most ${MAX_BYTES} bytes (1 MiB)`,
    );
    return false;
  }
  const ctl = CONTROL.exec(text);
  if (ctl) {
    const code = (ctl[0].codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0');
    problems.add(
      lineCol(text, ctl.index),
      `control character U+${code}: this is a binary file, not YAML text`,
    );
    return false;
  }
  const deep = findTooDeep(text);
  if (deep !== null) {
    problems.add(lineCol(text, deep), `nesting deeper than ${MAX_DEPTH} levels`);
    return false;
  }
  return true;
}

export function lineCol(text: string, index: number): Pos {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i >= 0 && i < index; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, col: index - lineStart + 1 };
}

/**
 * Offset where block indentation levels plus open flow brackets first exceed MAX_DEPTH.
 * Deliberately rough (it over-counts brackets inside block scalars): it only has to let
 * every sane file through and stop every deep one.
 */
function findTooDeep(text: string): number | null {
  const indents: number[] = [];
  const scan = { flow: 0, quote: '' };
  let lineStart = 0;
  while (lineStart < text.length) {
    const nl = text.indexOf('\n', lineStart);
    const end = nl < 0 ? text.length : nl;
    const line = text.slice(lineStart, end);
    if (scan.flow === 0 && scan.quote === '') pushBlockLevels(line, indents);
    const at = scanLine(line, scan, indents.length);
    if (at !== null) return lineStart + at;
    if (indents.length > MAX_DEPTH) return lineStart;
    lineStart = end + 1;
  }
  return null;
}

/** Block levels of one line: its indentation, plus one per compact `- ` or `? ` indicator. */
function pushBlockLevels(line: string, indents: number[]): void {
  const body = line.trimStart();
  if (body === '' || body.startsWith('#')) return;
  let col = line.length - body.length;
  while (indents.length > 0 && (indents[indents.length - 1] as number) >= col) indents.pop();
  indents.push(col);
  while (/^[-?][ \t]/.test(line.slice(col))) {
    col += 2;
    while (line[col] === ' ') col++;
    indents.push(col);
  }
}

/** Tracks quotes and flow brackets through one line; returns the offset where depth is exceeded. */
function scanLine(line: string, scan: { flow: number; quote: string }, block: number): number | null {
  for (let i = 0; i < line.length; i++) {
    const ch = line[i] as string;
    if (scan.quote !== '') {
      if (ch === '\\' && scan.quote === '"') i++;
      else if (ch === scan.quote) scan.quote = '';
      continue;
    }
    const tokenStart = i === 0 || /[\s[{,:]/.test(line[i - 1] as string);
    if (ch === '#' && (i === 0 || /\s/.test(line[i - 1] as string))) return null;
    if ((ch === '"' || ch === "'") && tokenStart) scan.quote = ch;
    else if (ch === '[' || ch === '{') {
      scan.flow++;
      if (block + scan.flow > MAX_DEPTH) return i;
    } else if ((ch === ']' || ch === '}') && scan.flow > 0) scan.flow--;
  }
  return null;
}
