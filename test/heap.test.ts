// The daemon's young-generation limit (src/heap.ts): that V8 really keeps the limit set at
// run time, in a child process with an allocation load that grows an unlimited heap.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import ts from 'typescript';
import { limitYoungGeneration } from '../src/heap.js';

/**
 * src/heap.ts compiled to JavaScript in a temporary directory, for the child: it must run
 * under plain Node (a TypeScript loader in the child would allocate on its heap before the
 * limit is set), and it must be this source, not whatever dist/ a past build left behind.
 */
function compiledHeapModule(): string {
  const source = readFileSync(new URL('../src/heap.ts', import.meta.url), 'utf8');
  const js = ts.transpileModule(source, {
    fileName: 'heap.ts',
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  }).outputText;
  // Alone in its directory, it can import nothing but Node's own modules.
  const local = /\bfrom\s+['"](\.[^'"]*)['"]/.exec(js);
  if (local) throw new Error(`src/heap.ts imports ${local[1]}: compile that too, or import it otherwise`);
  const dir = mkdtempSync(join(tmpdir(), 'mirrorlb-heap-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'heap.mjs');
  writeFileSync(file, js);
  return pathToFileURL(file).href;
}

const HEAP_JS = compiledHeapModule();

// Allocates about 200 MB in small objects, 2% of them kept for a while (they survive
// scavenges, which is what makes V8 grow the young generation), and prints the young
// generation's size before and after.
const CHILD = `
const v8 = await import('node:v8');
const size = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size;
const initial = size();
const limited = process.argv[1] === 'limit' ? (await import(${JSON.stringify(HEAP_JS)})).limitYoungGeneration() : null;
let keep = [];
for (let i = 0; i < 3e6; i++) {
  const o = { a: [i, i + 1], s: 'x' + i };
  if (i % 50 === 0) keep.push(o);
  if (keep.length > 20000) keep = [];
}
console.log(JSON.stringify({ initial, final: size(), limited }));
`;

function child(
  mode: 'limit' | 'none',
  env: NodeJS.ProcessEnv = {},
): Promise<{ initial: number; final: number; limited: boolean | null }> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--input-type=module', '-e', CHILD, mode],
      { env: { ...process.env, NODE_OPTIONS: '', ...env }, timeout: 60_000 },
      (err, stdout) => (err ? reject(err) : resolve(JSON.parse(stdout))),
    );
  });
}

t.test('a semi-space size given by the user stands', async (t) => {
  t.equal(limitYoungGeneration(['--max-semi-space-size=64'], ''), false, 'command line');
  t.equal(limitYoungGeneration(['--min_semi_space_size=16'], ''), false, 'underscore spelling');
  t.equal(
    limitYoungGeneration([], '--max-old-space-size=200 --max-semi-space-size=8'),
    false,
    'NODE_OPTIONS',
  );
  // This one sets the limit in the test process itself, which changes nothing it tests.
  t.equal(limitYoungGeneration(['--max-old-space-size=200'], '--trace-gc'), true, 'other flags only');
});

t.test('limited, the young generation keeps its initial size under load', async (t) => {
  const r = await child('limit');
  t.equal(r.limited, true);
  // V8 before 14 (Node 24 and older) keeps the new space at exactly its initial size. V8 14
  // (Node 26) resizes it as it goes, within what the limit allows: up to 4 MiB here, as with
  // --max-semi-space-size=1 on the command line, where the unlimited run below reaches 32 MiB.
  t.ok(
    r.final <= Math.max(r.initial, 4 * 1024 * 1024),
    `new space ${r.final} bytes (initially ${r.initial}), at most max(initial, 4 MiB)`,
  );
});

t.test('unlimited, the same load grows it (the load is a real test)', async (t) => {
  const r = await child('none');
  t.ok(r.final > r.initial, `new space grew from ${r.initial} to ${r.final} bytes`);
});

t.test('with --max-semi-space-size in NODE_OPTIONS, V8 sizes it as asked', async (t) => {
  const r = await child('limit', { NODE_OPTIONS: '--max-semi-space-size=8' });
  t.equal(r.limited, false);
  t.ok(r.final > r.initial, `new space grew from ${r.initial} to ${r.final} bytes`);
});
