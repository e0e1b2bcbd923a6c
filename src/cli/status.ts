/** `mirrorlb status [--admin URL] [--json]`: the admin API's /status as a terminal table. */
import type { CheckStatus, MemberState, MirrorStatus, StatusDoc } from '../admin/status.js';
import type { TransitionEvent } from '../events.js';
import { EXIT, exitCodeOf, type ErrorCode } from '../errors.js';
import { parseCommandLine } from './args.js';
import { poolLines } from './status-pools.js';

export const DEFAULT_ADMIN = 'http://127.0.0.1:9090';
const TIMEOUT_MS = 5000;
const RECENT_EVENTS = 5;

export const STATUS_USAGE = `Usage: mirrorlb status [--admin URL] [--json]

Shows every mirror, its primary and each member's state, from the admin API of a
running mirrorlb (default ${DEFAULT_ADMIN}). --json prints the raw /status document.
Exit 0 when the admin API answered, 1 when it could not be reached or answered badly,
2 on usage errors. Colour only when stdout is a terminal and NO_COLOR is not set.
`;

/** argv is what follows `status`. Returns the exit code. */
export async function runStatus(
  argv: string[],
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
): Promise<number> {
  const flags = parseCommandLine(argv, {
    admin: { type: 'string', value: 'a URL' },
    json: { type: 'boolean' },
  });
  if (flags.kind === 'help') {
    out.write(STATUS_USAGE);
    return EXIT.ok;
  }
  if (flags.kind === 'error') {
    err.write(`mirrorlb status: ${flags.message}\n\n${STATUS_USAGE}`);
    return EXIT.usage;
  }
  const admin = flags.values.admin ?? DEFAULT_ADMIN;
  let base: URL;
  try {
    base = new URL(admin.includes('://') ? admin : `http://${admin}`);
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new Error('not http');
  } catch {
    err.write(`mirrorlb status: --admin needs an http:// URL, got ${JSON.stringify(admin)}\n`);
    return EXIT.usage;
  }
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  try {
    const doc = (await getJson(new URL('status', base))) as StatusDoc;
    if (!Array.isArray(doc?.mirrors))
      throw new StatusFetchError(`${base.href}status is not a mirrorlb status document`);
    if (flags.values.json) {
      out.write(`${JSON.stringify(doc, null, 2)}\n`);
      return EXIT.ok;
    }
    // The events only add a few lines of context; the table stands without them.
    const events = ((await getJson(new URL('events', base)).catch(() => [])) as TransitionEvent[]) ?? [];
    out.write(
      renderStatus(doc, Array.isArray(events) ? events : [], {
        color: useColor(out),
        admin: base.href.replace(/\/$/, ''),
      }),
    );
    return EXIT.ok;
  } catch (e) {
    err.write(`mirrorlb status: ${(e as Error).message}\n`);
    return e instanceof StatusFetchError ? exitCodeOf(e.code) : EXIT.failed;
  }
}

class StatusFetchError extends Error {
  readonly code: ErrorCode = 'MLB_ERR_STATUS_FETCH';
}

async function getJson(url: URL): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(url, {
      signal: AbortSignal.timeout(TIMEOUT_MS),
      headers: { accept: 'application/json' },
    });
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    const why =
      (e as Error).name === 'TimeoutError'
        ? `no answer within ${TIMEOUT_MS / 1000} s`
        : (cause?.code ?? cause?.message ?? (e as Error).message);
    throw new StatusFetchError(
      `cannot reach the admin API at ${url.origin} (${why}); is mirrorlb running? Pass --admin URL if it listens elsewhere`,
    );
  }
  if (!res.ok)
    throw new StatusFetchError(`${url.href} answered HTTP ${res.status}; is that a mirrorlb admin listener?`);
  try {
    return await res.json();
  } catch {
    throw new StatusFetchError(`${url.href} did not answer JSON; is that a mirrorlb admin listener?`);
  }
}

function useColor(out: NodeJS.WritableStream): boolean {
  const env = process.env;
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  return (out as NodeJS.WritableStream & { isTTY?: boolean }).isTTY === true;
}

export interface RenderOptions {
  readonly color: boolean;
  /** Shown in the header line. */
  readonly admin?: string;
}

type Paint = (s: string) => string;
const sgr =
  (code: string): Paint =>
  (s) =>
    `\u001b[${code}m${s}\u001b[0m`;
const PAINT = {
  green: sgr('32'),
  yellow: sgr('33'),
  red: sgr('31'),
  magenta: sgr('35'),
  dim: sgr('2'),
  bold: sgr('1'),
};
const PLAIN: Record<keyof typeof PAINT, Paint> = {
  green: (s) => s,
  yellow: (s) => s,
  red: (s) => s,
  magenta: (s) => s,
  dim: (s) => s,
  bold: (s) => s,
};

/** The table as text; pure, so it is tested without a daemon. Colour never carries meaning alone. */
export function renderStatus(
  doc: StatusDoc,
  events: readonly TransitionEvent[],
  opts: RenderOptions,
): string {
  const p = opts.color ? PAINT : PLAIN;
  const lines: string[] = [];
  const held = doc.mirrors.filter((m) => !m.accepting).map((m) => m.name);
  // Replica readiness (/readyz) and the mirrors holding clients are two things: a mirror without
  // a primary holds its clients on a replica that is still ready.
  const shutting = doc.phase === 'grace' || doc.phase === 'stopping' ? ' (shutting down)' : '';
  lines.push(
    `${p.bold('mirrorlb')} ${doc.version} · up ${duration(doc.uptimeSeconds * 1000)} · ` +
      (doc.ready ? p.green('ready') : p.red(`not ready${shutting}`)) +
      (held.length === 0 ? '' : ` · ${p.red(`${held.join(', ')} holding clients`)}`) +
      (opts.admin ? p.dim(` · ${opts.admin}`) : ''),
  );
  // A daemon older than the loops sends no perLoop.
  const loops = doc.perLoop ?? [];
  if (loops.length > 1)
    lines.push(
      `${loops.length} data-plane loops · open ${loops.map((l) => l.open).join(' / ')}` +
        ` · accepted ${loops.map((l) => l.accepted).join(' / ')}`,
    );
  for (const m of doc.mirrors) lines.push('', ...mirrorLines(m, p));
  if (doc.mirrors.length === 0) lines.push('', 'no mirrors configured');
  const recent = events.slice(-RECENT_EVENTS).reverse();
  if (recent.length > 0) {
    lines.push('', p.bold('recent events'));
    const now = Date.parse(doc.time ?? new Date().toISOString());
    for (const e of recent) lines.push(`  ${eventLine(e, now, p)}`);
  }
  return `${lines.join('\n')}\n`;
}

function mirrorLines(m: MirrorStatus, p: typeof PAINT): string[] {
  const state =
    m.primary === null
      ? p.red('NO PRIMARY, holding clients')
      : m.accepting
        ? p.green('accepting')
        : p.yellow('holding new clients');
  const conflict = m.conflict.length > 0 ? `  ${p.red(`conflict: ${m.conflict.join(', ')}`)}` : '';
  const head =
    `${p.bold(m.name)}  listen ${m.listen}  primary ${p.bold(m.primary ?? 'none')}  ${state}` +
    `  sessions ${m.sessions}  held ${m.heldClients}${conflict}`;
  const rows = [
    ['MEMBER', 'STATE', 'REACHABLE', 'LAST CHECK', 'LATENCY', 'RESULT', 'SESSIONS', 'ADDRESS'],
    ...m.members.map((x) => [
      x.name,
      paintState(x.state, p),
      x.reachable ? 'yes' : p.red('no'),
      x.lastCheck === null ? '-' : `${duration(x.lastCheck.ageMs)} ago`,
      x.lastCheck === null || x.lastCheck.latencyMs === null ? '-' : `${x.lastCheck.latencyMs} ms`,
      x.lastCheck?.result ?? '-',
      String(x.sessions),
      x.address,
    ]),
  ];
  const lastFailover = m.lastFailover
    ? [
        `  ${p.dim(`last failover ${m.lastFailover.time}: ${m.lastFailover.from} -> ${m.lastFailover.to}, ${m.lastFailover.detectionMs === null ? 'no time' : duration(m.lastFailover.detectionMs)} without primary`)}`,
      ]
    : [];
  return [
    head,
    ...table(rows).map((l, i) => `  ${i === 0 ? p.dim(l) : l}`),
    ...checkLines(m, p),
    ...lastFailover,
    ...poolLines(m.pools, p, table),
  ];
}

/**
 * Each check URL's last answer and class, and which one decided: one broken Web Gateway
 * shows as one `unexpected` line next to a `primary` one.
 */
function checkLines(m: MirrorStatus, p: typeof PAINT): string[] {
  const rows: string[][] = [['CHECK', 'URL', 'LAST ANSWER', 'DECIDED']];
  for (const x of m.members) {
    // A daemon older than the per-URL answers sends none.
    (x.checks ?? []).forEach((c, i) => {
      rows.push([i === 0 ? x.name : '', c.url, paintAnswer(c, p), c.decided ? 'decided' : '']);
    });
    if (x.contradicted)
      rows.push(['', p.red('URLs contradict each other: no new clients until they agree'), '', '']);
    if (x.fenced) rows.push(['', p.red('fenced: no authoritative answer for fence_after'), '', '']);
  }
  if (rows.length === 1) return [];
  return table(rows).map((l, i) => `  ${i === 0 ? p.dim(l) : l}`);
}

function paintAnswer(c: CheckStatus, p: typeof PAINT): string {
  const status = c.status === null ? '' : `${c.status} `;
  switch (c.outcome) {
    case null:
      return '-';
    case 'primary':
      return p.green(`${status}primary`);
    case 'not_primary':
      return `${status}not primary`;
    case 'unexpected':
      return p.red(`${status}unexpected`);
    case 'error':
      return p.red(`error ${c.code ?? ''}`.trim());
    case 'timeout':
      return p.yellow('timeout');
    default:
      return c.outcome;
  }
}

function paintState(s: MemberState, p: typeof PAINT): string {
  switch (s) {
    case 'primary':
      return p.green(s);
    case 'suspect':
    case 'draining':
      return p.yellow(s);
    case 'unreachable':
      return p.red(s);
    case 'disabled':
      return p.magenta(s);
    case 'backup':
    case 'unknown':
      return s;
    default:
      return String(s satisfies never);
  }
}

function eventLine(e: TransitionEvent, now: number, p: typeof PAINT): string {
  const age = `${duration(Math.max(0, now - Date.parse(e.time)))} ago`.padStart(12);
  const cut = e.cutSessions > 0 ? `, ${e.cutSessions} sessions cut` : '';
  switch (e.kind) {
    case 'failover':
      return e.from === null
        ? `${age}  ${e.mirror}: primary found: ${e.to}`
        : `${age}  ${e.mirror}: ${p.bold('failover')} ${e.from} -> ${e.to}` +
            `, ${e.detectionMs === null ? 'no time' : duration(e.detectionMs)} without primary, ${e.heldClients} held clients released${cut}`;
    case 'role':
      return `${age}  ${e.mirror}: ${e.member} ${e.from} -> ${e.to}${e.detail ? ` (${e.detail})` : ''}${cut}`;
    case 'admin':
      return `${age}  ${e.mirror}: ${e.member} ${e.detail ?? e.to} (admin)`;
    case 'reload':
      return `${age}  configuration reloaded`;
    default:
      return `${age}  ${String((e as { kind: string }).kind)}`;
  }
}

const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g');

/** Left-aligned columns, padded by visible width (escape codes take no room). */
function table(rows: string[][]): string[] {
  const visible = (s: string): number => s.replace(ANSI, '').length;
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => visible(r[c] ?? ''))));
  return rows.map((r) =>
    r
      .map((cell, c) => (c === r.length - 1 ? cell : cell + ' '.repeat(widths[c]! - visible(cell))))
      .join('  ')
      .trimEnd(),
  );
}

function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.floor(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86_400)}d${String(Math.floor((s % 86_400) / 3600)).padStart(2, '0')}h`;
}
