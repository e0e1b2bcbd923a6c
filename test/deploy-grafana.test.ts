/**
 * deploy/grafana/mirrorlb.json, checked without a Grafana server: the dashboard model is well
 * formed (schemaVersion, panels with unique ids and non-overlapping grid positions, targets
 * with unique refIds, only variables it defines), every query parses with Prometheus' own
 * parser (promtool check rules over the queries as recording rules: offline, unlike
 * `promtool query`), and every metric it reads is in a real /metrics scrape of the daemon
 * with simulated members after a switchover, a conflict and a hold timeout.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { inScrape, metricNames, promtoolParses } from './helpers/promql.js';
import { familyNames, needs, realRun } from './helpers/real-run.js';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const FILE = join(ROOT, 'deploy', 'grafana', 'mirrorlb.json');

interface GridPos {
  x: number;
  y: number;
  w: number;
  h: number;
}
interface Target {
  refId: string;
  expr: string;
  datasource?: { type: string; uid: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: GridPos;
  datasource?: { type: string; uid: string };
  targets?: Target[];
}
interface Variable {
  type: string;
  name: string;
  query: string | { query: string };
}
interface Dashboard {
  title: string;
  uid: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Variable[] };
}

const text = readFileSync(FILE, 'utf8');
const dash = JSON.parse(text) as Dashboard;
const queryPanels = dash.panels.filter((p) => p.type !== 'row');
const exprs = queryPanels.flatMap((p) => (p.targets ?? []).map((x) => x.expr));
const variableQueries = dash.templating.list
  .filter((v) => v.type === 'query')
  .map((v) => (typeof v.query === 'string' ? v.query : v.query.query));
/** The selector inside a variable's `label_values(selector, label)`. */
const variableSelectors = variableQueries.map((q) => /^label_values\((.+), *\w+\)$/.exec(q)?.[1] ?? q);
const BUILTINS = new Set(['__rate_interval', '__interval', '__range']);

/** An expression as Prometheus would get it: variables and Grafana's intervals filled in. */
const filled = (expr: string): string =>
  expr
    .replace(/\$(__\w+)/g, (m, name: string) => (BUILTINS.has(name) ? '1m' : m))
    .replace(/\$\{?\w+\}?/g, '.*');

t.test('the dashboard model is well formed', async (t) => {
  t.equal(dash.title, 'mirrorlb');
  t.match(dash.uid, /^[a-zA-Z0-9_-]{1,40}$/, 'a uid Grafana accepts');
  t.ok(
    Number.isInteger(dash.schemaVersion) && dash.schemaVersion >= 36,
    `schemaVersion ${dash.schemaVersion}`,
  );
  t.ok(dash.panels.length > 10, 'panels');

  const ids = dash.panels.map((p) => p.id);
  t.ok(
    ids.every((id) => Number.isInteger(id) && id > 0),
    'every panel id is a positive integer',
  );
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique');

  for (const p of dash.panels) {
    const g = p.gridPos;
    t.ok(
      [g.x, g.y, g.w, g.h].every(Number.isInteger) &&
        g.x >= 0 &&
        g.y >= 0 &&
        g.w >= 1 &&
        g.h >= 1 &&
        g.x + g.w <= 24,
      `${p.title}: gridPos within the 24 columns (${JSON.stringify(g)})`,
    );
  }
  const overlaps = (a: GridPos, b: GridPos) =>
    a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
  for (const [i, a] of dash.panels.entries())
    for (const b of dash.panels.slice(i + 1))
      t.notOk(overlaps(a.gridPos, b.gridPos), `${a.title} and ${b.title} do not overlap`);

  const names = dash.templating.list.map((v) => v.name);
  t.equal(new Set(names).size, names.length, 'variable names are unique');
  const ds = dash.templating.list.find((v) => v.type === 'datasource');
  t.same([ds?.name, ds?.query], ['datasource', 'prometheus'], 'a Prometheus data source to pick');

  for (const p of queryPanels) {
    t.match(
      p.type,
      /^(timeseries|stat|state-timeline|table|gauge|bargauge)$/,
      `${p.title}: a core panel type`,
    );
    t.same(p.datasource, { type: 'prometheus', uid: '${datasource}' }, `${p.title}: the picked data source`);
    const targets = p.targets ?? [];
    t.ok(targets.length > 0, `${p.title}: has targets`);
    const refs = targets.map((x) => x.refId);
    t.equal(new Set(refs).size, refs.length, `${p.title}: refIds unique`);
    for (const x of targets) {
      t.ok(typeof x.expr === 'string' && x.expr.length > 0, `${p.title} ${x.refId}: an expr`);
      t.same(x.datasource, p.datasource, `${p.title} ${x.refId}: the panel's data source`);
    }
  }
  for (const e of [...exprs, ...variableQueries])
    for (const [, name] of e.matchAll(/\$\{?(\w+)\}?/g))
      t.ok(BUILTINS.has(name!) || names.includes(name!), `$${name} is defined (${e})`);

  // What the dashboard is for: each of these has a panel.
  const used = new Set(exprs.flatMap(metricNames));
  for (const name of [
    'mirrorlb_member_primary',
    'mirrorlb_failovers_total',
    'mirrorlb_connections_active',
    'mirrorlb_held_connections',
    'mirrorlb_health_check_duration_seconds_bucket',
    'mirrorlb_check_url_answers_total',
    'mirrorlb_connection_errors_total',
  ])
    t.ok(used.has(name), `a panel reads ${name}`);
});

t.test('every query parses with promtool', needs('promtool'), async (t) => {
  const all = [...exprs, ...variableSelectors].map(filled);
  const r = promtoolParses(all);
  t.equal(r.status, 0, r.out);
  t.match(r.out, `SUCCESS: ${all.length} rules found`);
  // The check can fail: a broken query is refused.
  const broken = promtoolParses([...all, 'sum by (mirror) (rate(mirrorlb_bytes_total[1m])']);
  t.not(broken.status, 0, 'an unbalanced query is refused');
});

t.test('every metric the dashboard reads is in a real /metrics scrape', async (t) => {
  const run = await realRun(t);
  const families = familyNames(run.stages.at(-1)!.text);
  const names = new Set([...exprs, ...variableSelectors].flatMap(metricNames));
  t.ok(names.size >= 15, `${names.size} metrics`);
  for (const name of names) t.ok(inScrape(name, families), `${name} is in /metrics`);
});
