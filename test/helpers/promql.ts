/**
 * PromQL expressions of the shipped integrations (alert rules, dashboard) checked offline:
 * parsed by promtool (as recording rules of a generated rule file: `promtool check rules`
 * parses every expr with Prometheus' own parser and needs no server) and reduced to the
 * metric names they read, to compare with a real scrape.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Words of PromQL that are not metric names when they stand alone (not followed by `(`). */
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan', 'by', 'without', 'on']);

/** Series Prometheus makes itself, never in a target's /metrics. */
export const PROMETHEUS_OWN = new Set(['up', 'ALERTS', 'ALERTS_FOR_STATE']);

/**
 * The metric names an expression reads: label matchers, quoted strings, grouping clauses,
 * durations and function calls removed, what is left standing alone is a metric name.
 */
export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\boffset\s+-?[0-9a-z]+/g, ' ');
  const names = new Set<string>();
  for (const m of bare.matchAll(/(?<![\w:.])([a-zA-Z_:][\w:]*)(?![\w:])(\s*\()?/g)) {
    if (m[2] || KEYWORDS.has(m[1]!.toLowerCase())) continue;
    names.add(m[1]!);
  }
  return [...names].sort();
}

/** A name of a family in a scrape, where `x_bucket`, `x_sum` and `x_count` belong to histogram `x`. */
export function inScrape(name: string, families: ReadonlySet<string>): boolean {
  return families.has(name) || families.has(name.replace(/_(bucket|sum|count)$/, ''));
}

/** `promtool check rules` over one recording rule per expression: status and output. */
export function promtoolParses(exprs: readonly string[]): { status: number | null; out: string } {
  const dir = mkdtempSync(join(tmpdir(), 'mlb-promql-'));
  try {
    const file = join(dir, 'exprs.yml');
    const rules = exprs.map((expr, i) => ({ record: `mirrorlb_check:expr_${i}`, expr }));
    // JSON is YAML: no quoting rules to get wrong.
    writeFileSync(file, JSON.stringify({ groups: [{ name: 'exprs', rules }] }, null, 1));
    const r = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8', timeout: 30_000 });
    return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
