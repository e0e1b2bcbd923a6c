/**
 * YAML text → plain JS values plus the position of every value and key (see
 * yaml-walker.ts for the expansion of aliases), or positioned problems.
 */
import {
  Composer,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  Parser,
  type Document,
  type Node,
  type YAMLError,
} from 'yaml';
import { findTooDeep } from './cst-depth.js';
import { quote, type ProblemList } from '../problems.js';
import { START, type PositionIndex, type Pos } from './positions.js';
import { MAX_TREE_DEPTH, TreeAbort, Walker } from './yaml-walker.js';

export interface YamlTree {
  readonly root: unknown;
  readonly positions: PositionIndex;
  /** Pointers whose problem is already reported; later stages say nothing more about them. */
  readonly reported: Set<string>;
}

/** Parses one YAML document; returns null (with problems added) when it cannot be used. */
export function readYamlTree(text: string, problems: ProblemList): YamlTree | null {
  const doc = parseGuarded(text, problems);
  if (doc === null) return null;
  const walker = new Walker(doc.doc, doc.at, problems);
  try {
    const root = walker.walk(doc.doc.contents as Node, '', START, 0);
    return { root, positions: walker.positions, reported: walker.reported };
  } catch (e) {
    if (e instanceof TreeAbort) return null;
    throw e;
  }
}

/** The parser reports problems as a list; should it ever throw on hostile input, that is one more problem. */
function parseGuarded(text: string, problems: ProblemList): ReturnType<typeof parseOneDocument> {
  try {
    return parseOneDocument(text, problems);
  } catch (e) {
    problems.add(START, `cannot parse this file as YAML: ${(e as Error).message}`);
    return null;
  }
}

/**
 * parseDocument() in its parts (Parser, then Composer), so the nesting can be checked in
 * between. uniqueKeys is off because the composer checks it in quadratic time (10 000
 * keys take seconds); walkMap finds duplicate keys with a Set instead.
 */
function parseOneDocument(
  text: string,
  problems: ProblemList,
): { doc: Document; at: (o: number) => Pos } | null {
  const lines = new LineCounter();
  const at = (offset: number): Pos => lines.linePos(offset);
  const tokens = Array.from(new Parser(lines.addNewLine).parse(text));
  const deep = findTooDeep(tokens, MAX_TREE_DEPTH);
  if (deep !== null) {
    problems.add(at(deep), `nesting deeper than ${MAX_TREE_DEPTH} levels`);
    return null;
  }
  const composer = new Composer({ uniqueKeys: false, prettyErrors: false, strict: true });
  const [doc, second] = composer.compose(tokens, true, text.length);
  if (doc === undefined) return null;
  if (second !== undefined) {
    problems.add(at(second.range[0]), 'a second YAML document ("---"); a config file holds exactly one');
    return null;
  }
  // After the first syntax error the parser's further errors are guesses: noise.
  const first = doc.errors[0];
  if (first) problems.add(at(first.pos[0]), yamlErrorMessage(first));
  for (const w of doc.warnings) problems.add(at(w.pos[0]), yamlWarningMessage(w));
  if (doc.errors.length + doc.warnings.length > 0) return null;
  return topLevelIsMap(doc, at, problems) ? { doc, at } : null;
}

function topLevelIsMap(doc: Document, at: (o: number) => Pos, problems: ProblemList): boolean {
  const top = doc.contents;
  if (top === null || (isScalar(top) && top.value === null)) {
    problems.add(START, 'the file is empty; it needs at least a "mirrors" list');
    return false;
  }
  if (isMap(top)) return true;
  const what = isSeq(top)
    ? 'a list'
    : isScalar(top)
      ? `the plain value ${quote(String(top.value))}`
      : 'an alias';
  problems.add(
    at(top.range?.[0] ?? 0),
    `the top level must be a mapping (mirrors:, health:, ...), got ${what}`,
  );
  return false;
}

function yamlErrorMessage(e: YAMLError): string {
  switch (e.code) {
    case 'TAB_AS_INDENT':
      return 'tab used for indentation; YAML allows only spaces';
    case 'BLOCK_AS_IMPLICIT_KEY':
      return `invalid YAML: ${e.message} (a value containing ": " or ending in ":" needs quotes)`;
    default:
      return `invalid YAML: ${e.message}`;
  }
}

function yamlWarningMessage(w: YAMLError): string {
  if (w.code === 'TAG_RESOLVE_FAILED') return `unsupported YAML tag (${w.message}); remove it`;
  return `YAML: ${w.message}`;
}
