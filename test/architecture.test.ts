import { existsSync, readdirSync, readFileSync } from 'node:fs';
import t from 'tap';

/**
 * ARCHITECTURE.md's two paths name files and the functions in them; a rename that leaves
 * the document behind fails here. Each numbered step is read as: every `src/...ts` file it
 * names, and every other backticked identifier, which must be defined (as a function, a
 * method, a class or an interface) in one of the files named in that step.
 */
const doc = readFileSync(new URL('../ARCHITECTURE.md', import.meta.url), 'utf8');
const paths = doc.slice(doc.indexOf('## Path 1'));
const steps = paths.split('\n').filter((l) => /^\d+\. /.test(l));

t.ok(steps.length >= 16, 'both paths are there, step by step');

/** Every source file, for names a step uses from elsewhere (a `Class.method`, a type). */
const everySource = (readdirSync('src', { recursive: true }) as string[])
  .filter((f) => f.endsWith('.ts'))
  .map((f) => readFileSync(`src/${f}`, 'utf8'));

for (const step of steps) {
  const files = [...step.matchAll(/`(src\/[\w/.-]+\.ts)`/g)].map((m) => m[1]!);
  t.ok(files.length > 0, `a step names its file: ${step.slice(0, 60)}`);
  const sources = files.map((f) => {
    t.ok(existsSync(f), `${f} exists`);
    return existsSync(f) ? readFileSync(f, 'utf8') : '';
  });
  const names = [...step.matchAll(/`([A-Za-z][\w.]*)`/g)]
    .map((m) => m[1]!)
    .filter(
      (n) => !n.startsWith('src/') && !/^(connecting|linked|closed|gated|backup|hold|failover)$/.test(n),
    )
    .filter((n) => !/^[a-z]+ [a-z]/.test(n));
  for (const name of names) {
    if (name.startsWith('mirrorlb_')) {
      t.ok(
        readFileSync('src/metrics.ts', 'utf8').includes(`'${name.replace(/_total$/, '')}`),
        `metric ${name}`,
      );
      continue;
    }
    const last = name.split('.').pop()!;
    const where = name.includes('.') || /^[A-Z]/.test(name) ? everySource : sources;
    const defined = new RegExp(
      `(function\\s+${last}\\b|class\\s+${last}\\b|interface\\s+${last}\\b|^\\s*(?:private |async |readonly |static |get )*${last}\\s*[(<])`,
      'm',
    );
    t.ok(
      where.some((s) => defined.test(s)),
      `${name} is defined${where === sources ? ` in ${files.join(' or ')}` : ''}`,
    );
  }
}
