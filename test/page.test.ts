import t from 'tap';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadPage, PAGE_URL, pageFromHtml } from '../src/admin/page.js';
import { withBalancer, yamlFor } from './helpers/balancer.js';
import { httpRequest, withSim } from './helpers/sim.js';

const sha = (s: string): string => `'sha256-${createHash('sha256').update(s).digest('base64')}'`;

t.test('the page ships with the package and is found from dist/ too', async (t) => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    files: string[];
  };
  t.ok(pkg.files.includes('src/admin/page'), 'package.json "files" ships src/admin/page');
  t.ok(existsSync(PAGE_URL), `${fileURLToPath(PAGE_URL)} exists`);
  // The compiled module sits at dist/admin/page.js; the same relative URL must land on the file.
  const fromDist = new URL(
    '../../src/admin/page/index.html',
    new URL('../dist/admin/page.js', import.meta.url),
  );
  t.equal(fromDist.href, PAGE_URL.href);
});

t.test('the CSP allows exactly the inline script and style', async (t) => {
  const page = pageFromHtml('<style>a{}</style><p>x</p><script>run()</script><script>two()</script>');
  t.match(page.csp, `script-src ${sha('run()')} ${sha('two()')};`);
  t.match(page.csp, `style-src ${sha('a{}')};`);
  t.match(page.csp, "default-src 'none'");
  t.match(page.csp, "connect-src 'self'");
  t.match(pageFromHtml('<p>no script</p>').csp, "script-src 'none'");
  await t.rejects(loadPage(new URL('file:///nonexistent/index.html')), { code: 'MLB_ERR_PAGE_MISSING' });
});

t.test('GET / serves the self-contained page', async (t) => {
  const a = await withSim(t, { name: 'ap1a', role: 'primary' });
  const lb = await withBalancer(t, yamlFor({ ap1: [a] }));
  const res = await httpRequest(lb.adminPort(), '/');
  t.equal(res.status, 200);
  t.match(res.headers['content-type'], /^text\/html; charset=utf-8/);
  t.equal(res.headers['cache-control'], 'no-store');
  const html = res.body;
  t.equal(html, readFileSync(PAGE_URL, 'utf8'), 'served as shipped, no build step');
  const script = /<script>([\s\S]*?)<\/script>/.exec(html)![1]!;
  t.match(
    String(res.headers['content-security-policy']),
    sha(script),
    'the CSP names the hash of the page script',
  );
  t.notMatch(html, /\b(src|href)\s*=\s*"(https?:)?\/\//i, 'no external asset');
  t.notMatch(html, /@import|url\(\s*['"]?(https?:)?\/\//i, 'no external CSS');
  t.notMatch(
    html,
    /innerHTML|outerHTML|insertAdjacentHTML|document\.write/,
    'text from the config never goes through an HTML parser',
  );
  t.match(html, /<meta name="viewport" content="width=device-width, initial-scale=1"/, 'laid out for phones');

  const head = await httpRequest(lb.adminPort(), '/', { method: 'HEAD' });
  t.equal(head.status, 200);
  t.equal(head.body, '');
});
