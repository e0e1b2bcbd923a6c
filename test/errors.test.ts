import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { ERRORS, exitCodeOf, httpStatusOf } from '../src/errors.js';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : /\.(ts|html)$/.test(e.name) ? [join(dir, e.name)] : [],
  );
}

t.test('every MLB_ERR_ code in src/ is in the catalogue, and every catalogued code is used', async (t) => {
  const used = new Map<string, string>();
  for (const file of sources(SRC)) {
    if (file.endsWith('/errors.ts') && !file.includes('/config/')) continue;
    for (const m of readFileSync(file, 'utf8').matchAll(/MLB_ERR_[A-Z0-9_]*[A-Z0-9]/g)) {
      used.set(m[0], file.slice(SRC.length));
    }
  }
  t.ok(used.size >= 20, `${used.size} codes found in src/`);
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
