import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import ts from 'typescript';
import { ERRORS, exitCodeOf, httpStatusOf } from '../src/errors.js';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : /\.(ts|html)$/.test(e.name) ? [join(dir, e.name)] : [],
  );
}

/**
 * The text of a TypeScript (or JavaScript) file with its comments blanked out: a code named
 * in a comment ("throws MLB_ERR_X") is not a code the program reports. The parser finds the
 * comments, so `//` inside a string or a template is left alone.
 */
function withoutComments(file: string, text: string): string {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const out = text.split('');
  const blank = (ranges: ts.CommentRange[] | undefined): void => {
    for (const r of ranges ?? []) for (let i = r.pos; i < r.end; i++) if (out[i] !== '\n') out[i] = ' ';
  };
  const visit = (n: ts.Node): void => {
    blank(ts.getLeadingCommentRanges(text, n.getFullStart()));
    blank(ts.getTrailingCommentRanges(text, n.getEnd()));
    if (!ts.isJSDoc(n)) for (const c of n.getChildren(sf)) visit(c);
  };
  visit(sf);
  return out.join('');
}

/** The code of a source file: a .ts file without comments, the scripts of an .html page without theirs. */
function codeOf(file: string): string {
  const text = readFileSync(file, 'utf8');
  if (file.endsWith('.ts')) return withoutComments(file, text);
  return [...text.matchAll(/<script\b[^>]*>([\s\S]*?)<\/script>/gi)]
    .map((m) => withoutComments(`${file}.js`, m[1]!))
    .join('\n');
}

t.test('comments do not count as code', async (t) => {
  const text = [
    '// MLB_ERR_A in a line comment',
    '/** MLB_ERR_B in a doc comment */',
    "const s = '// MLB_ERR_C in a string';",
    'const u = `/* MLB_ERR_D in a template ${s} */`; /* MLB_ERR_E after code */',
    'function f(): void {',
    '  // MLB_ERR_F alone in a block',
    '}',
    'throw new MlbError(`MLB_ERR_G`); // MLB_ERR_H',
  ].join('\n');
  const codes = [...withoutComments('x.ts', text).matchAll(/MLB_ERR_[A-Z]/g)].map((m) => m[0]);
  t.same(codes, ['MLB_ERR_C', 'MLB_ERR_D', 'MLB_ERR_G']);
});

t.test('every MLB_ERR_ code in src/ is in the catalogue, and every catalogued code is used', async (t) => {
  const used = new Map<string, string>();
  for (const file of sources(SRC)) {
    if (file.endsWith('/errors.ts') && !file.includes('/config/')) continue;
    for (const m of codeOf(file).matchAll(/MLB_ERR_[A-Z0-9_]*[A-Z0-9]/g)) {
      used.set(m[0], file.slice(SRC.length));
    }
  }
  t.ok(used.size >= 20, `${used.size} codes found in the code of src/`);
  const missing = [...used].filter(([code]) => !(code in ERRORS)).map(([c, f]) => `${c} (${f})`);
  t.same(missing, [], 'no code outside the catalogue');
  const unused = Object.keys(ERRORS).filter((c) => !used.has(c));
  t.same(unused, [], 'no catalogued code that nothing reports');
});

t.test('each code maps to an exit code and an HTTP status', async (t) => {
  for (const [code, spec] of Object.entries(ERRORS)) {
    t.ok(spec.meaning.length > 5, `${code} says what it means`);
    if (spec.exit !== null) t.ok([1, 2].includes(spec.exit), `${code}: exit ${spec.exit}`);
    if (spec.http !== null) t.ok(spec.http >= 400 && spec.http <= 599, `${code}: HTTP ${spec.http}`);
  }
  t.equal(httpStatusOf('MLB_ERR_NOT_FOUND'), 404);
  t.equal(httpStatusOf('MLB_ERR_UNAUTHORIZED'), 401);
  t.equal(httpStatusOf('MLB_ERR_CONNECT'), 500, 'a code without a status answers 500');
  t.equal(exitCodeOf('MLB_ERR_USAGE'), 2);
  t.equal(exitCodeOf('MLB_ERR_CONFIG'), 1);
  t.equal(exitCodeOf('MLB_ERR_NOT_FOUND'), 1, 'a code without an exit code ends a command with 1');
});
