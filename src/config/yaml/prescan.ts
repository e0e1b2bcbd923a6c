/**
 * Cheap checks on the raw text before it reaches the YAML parser, which spends several
 * microseconds per token: a megabyte of tiny tokens would take seconds. (Nesting depth is
 * checked on the parser's output, see cst-depth.ts.)
 */
import { START, type Pos } from './positions.js';
import type { ProblemList } from '../problems.js';

export const MAX_BYTES = 1024 * 1024;
/**
 * Lines plus YAML indicator characters, an over-estimate of the parser's tokens. The
 * largest real config, 64 mirrors of 16 members with 8 check URLs each, has about 52 000.
 */
export const MAX_TOKENS = 100_000;

// eslint-disable-next-line no-control-regex -- finding control characters is the point
const CONTROL = /[\x00-\x08\x0B\x0C\x0E-\x1F\x7F\uFFFE\uFFFF]/;
const INDICATORS = /[\n,[\]{}:?&*!|>'"-]/g;

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
  const busy = tooManyTokens(text);
  if (busy !== null) {
    problems.add(
      lineCol(text, busy),
      `more than ${MAX_TOKENS} lines and YAML indicators; this is not a config file`,
    );
    return false;
  }
  return true;
}

function tooManyTokens(text: string): number | null {
  INDICATORS.lastIndex = 0;
  let count = 0;
  for (let m = INDICATORS.exec(text); m !== null; m = INDICATORS.exec(text)) {
    if (++count > MAX_TOKENS) return m.index;
  }
  return null;
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
