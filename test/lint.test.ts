import t from 'tap';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

// The type checker, the linter and the formatter, run by `npm test` so CI runs them too:
// src/, then the bench (JavaScript checked from its JSDoc; none of it needs dist/) and the
// fault suite, whose types come partly from the bench's shared helpers.
const root = fileURLToPath(new URL('..', import.meta.url));
const bin = (name: string) => fileURLToPath(new URL(`../node_modules/.bin/${name}`, import.meta.url));

for (const [name, args] of [
  ['tsc', ['--noEmit', '-p', 'tsconfig.json']],
  ['tsc', ['-p', 'bench/tsconfig.json']],
  ['tsc', ['-p', 'bench/tsconfig.helpers.json']],
  ['tsc', ['-p', 'test/faults/tsconfig.check.json']],
  ['eslint', ['.']],
  ['prettier', ['--check', '.']],
] as const) {
  t.test(`${name} ${args.join(' ')}`, async (t) => {
    const r = spawnSync(bin(name), [...args], { cwd: root, encoding: 'utf8', timeout: 240_000 });
    t.equal(r.status, 0, `${name} is clean`, { output: `${r.stdout}\n${r.stderr}`.trim().slice(-4000) });
  });
}
