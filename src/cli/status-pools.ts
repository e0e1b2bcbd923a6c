/**
 * `mirrorlb status`: the read pools of a mirror, one header line and one table each. Apart
 * from status.ts so that the pools are a section of their own: a member that is the primary
 * reads `primary`, uncoloured, as calm as a backup (it is not a reader, and not down).
 */
import type { PoolSnapshot } from '../snapshot.js';

type Paint = (s: string) => string;
export interface PoolPaint {
  readonly green: Paint;
  readonly yellow: Paint;
  readonly red: Paint;
  readonly dim: Paint;
  readonly bold: Paint;
}

/** The pools' lines, indented under their mirror; `table` lays out columns. */
export function poolLines(
  pools: readonly PoolSnapshot[] | undefined,
  p: PoolPaint,
  table: (rows: string[][]) => string[],
): string[] {
  const lines: string[] = [];
  for (const pool of pools ?? []) {
    const listen = pool.listen ? `${pool.listen.host}:${pool.listen.port}` : 'not listening';
    const to =
      pool.open === null ? p.red(pool.held > 0 ? 'none, holding clients' : 'none') : p.bold(pool.open);
    lines.push(
      `  ${p.bold(`pool ${pool.name}`)}  listen ${listen}  new reads to ${to}  sessions ${pool.sessions}  held ${pool.held}`,
    );
    const rows = [
      ['MEMBER', 'POOL STATE', 'LAG', 'SESSIONS'],
      ...pool.members.map((m) => [m.name, paintPoolState(m.state, p), lag(m.lagBytes), String(m.sessions)]),
    ];
    lines.push(...table(rows).map((l, i) => `    ${i === 0 ? p.dim(l) : l}`));
  }
  return lines;
}

function paintPoolState(s: string, p: PoolPaint): string {
  switch (s) {
    case 'in':
      return p.green('in');
    case 'joining':
    case 'lagging':
    case 'not_streaming':
    case 'failing':
      return p.yellow(s.replace('_', ' '));
    case 'down':
      return p.red(s);
    default:
      // primary, out, unknown: not an error.
      return s;
  }
}

function lag(bytes: number | null): string {
  if (bytes === null) return '-';
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} kB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}
