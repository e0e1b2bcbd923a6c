import http from 'node:http';
import https from 'node:https';
import type { CheckTls, HostPort } from '../config/types.js';
import { VERSION } from '../version.js';
import type { PoolObservation } from './pool-state.js';
import { checkSuperserver } from './superserver.js';

/** Most bytes of a pool check's body read (Patroni's status JSON is well under 2 kB). */
const MAX_BODY = 64 * 1024;

/** What one pool check URL answered: a status and the body's JSON (null: none or not JSON), or no answer. */
export type PoolAnswer =
  | { readonly status: number; readonly body: Record<string, unknown> | null }
  | { readonly status: null; readonly portUp: boolean };

/** One GET of a pool check URL, bounded in time and size; a failure asks the member's port. Never rejects. */
export async function probePool(
  url: string,
  address: HostPort,
  tls: CheckTls | null,
  timeoutMs: number,
): Promise<PoolAnswer> {
  const answer = await get(url, tls, timeoutMs);
  if (answer !== null) return answer;
  return { status: null, portUp: await checkSuperserver(address, timeoutMs) };
}

function get(url: string, tls: CheckTls | null, timeoutMs: number): Promise<PoolAnswer | null> {
  return new Promise((resolve) => {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      resolve(null);
      return;
    }
    const mod = u.protocol === 'https:' ? https : http;
    const opts: https.RequestOptions = {
      method: 'GET',
      headers: { 'user-agent': `mirrorlb/${VERSION}`, accept: 'application/json, */*' },
      timeout: timeoutMs,
      agent: false,
      ...(tls && u.protocol === 'https:'
        ? {
            ca: tls.ca ?? undefined,
            cert: tls.cert ?? undefined,
            key: tls.key ?? undefined,
            servername: tls.servername ?? undefined,
            rejectUnauthorized: tls.verify,
          }
        : {}),
    };
    const timer = setTimeout(() => req.destroy(new Error('timeout')), timeoutMs);
    const done = (a: PoolAnswer | null): void => {
      clearTimeout(timer);
      resolve(a);
    };
    const req = mod.request(u, opts, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= MAX_BODY) chunks.push(c);
        else res.destroy();
      });
      res.on('error', () => done(null));
      res.on('close', () => done({ status: res.statusCode ?? 0, body: parseJson(Buffer.concat(chunks)) }));
    });
    req.on('error', () => done(null));
    req.end();
  });
}

function parseJson(b: Buffer): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(b.toString('utf8'));
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const obj = (v: unknown): Record<string, unknown> =>
  v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : {};

function isPrimaryBody(body: Record<string, unknown> | null): boolean {
  return body !== null && (body.role === 'master' || body.role === 'primary');
}

/** What a pool carries from one round to the next (pool-probe.ts's `observeRound`). */
export interface RoundMemory {
  /** The primary has named one of this pool's members as its replica (this round or before). */
  readonly namesMatch: boolean;
  /** The member that last answered as primary; null: none yet. */
  readonly leader: string | null;
}

export const INITIAL_ROUND_MEMORY: RoundMemory = Object.freeze({ namesMatch: false, leader: null });

/**
 * One round's answers of every member, turned into observations (pure). The primary's own
 * answer (Patroni's status JSON: `xlog.location`, `timeline`, `replication`) gives the position
 * each replica's `xlog.replayed_location` is measured against, and which replicas stream.
 *
 * The primary names its streaming replicas by Patroni node name, which need not be the member's
 * name here: only once it has named one of ours (this round, or an earlier one: `namesMatch`)
 * can "not listed" mean "not streaming". Then a primary listing nobody (Patroni leaves the key
 * out) means nobody streams from it: right after a leader change, until the replicas have
 * reconnected to the new leader, and they are kept out meanwhile.
 *
 * A round where no member answers primary is judged by what the last primary answered: if it
 * answered as something else or is dead, the replicas' WAL receivers lost their sender and no
 * new primary has listed them yet — nobody streams (in a switchover, the half second before the
 * promoted node answers primary); if its check merely failed, it may still be primary and
 * nothing is known (`held`: members in the pool stay, none joins).
 */
export function observeRound(
  answers: ReadonlyMap<string, PoolAnswer>,
  memory: RoundMemory = INITIAL_ROUND_MEMORY,
): { observations: Map<string, PoolObservation>; memory: RoundMemory } {
  let leader: Record<string, unknown> | null = null;
  let leaderName: string | null = null;
  for (const [m, a] of answers)
    if (a.status !== null && isPrimaryBody(a.body)) {
      leader = a.body;
      leaderName = m;
    }
  const leaderAt = leader && num(obj(leader.xlog).location);
  const leaderTimeline = leader && num(leader.timeline);
  const replication =
    leader === null ? null : Array.isArray(leader.replication) ? leader.replication.map(obj) : [];
  const named =
    memory.namesMatch || (replication?.some((r) => answers.has(String(r.application_name))) ?? false);
  const last = memory.leader === null ? undefined : answers.get(memory.leader);
  // No primary this round: what its absence means for every replica's streaming.
  const leaderless: 'held' | false | null =
    leader !== null || last === undefined
      ? null
      : (last.status === null && last.portUp) ||
          (last.status !== null && last.status !== 200 && last.status !== 503)
        ? 'held'
        : false;
  const out = new Map<string, PoolObservation>();
  for (const [member, a] of answers) {
    if (a.status === null) {
      out.set(member, { kind: a.portUp ? 'failing' : 'dead', lagBytes: null, streaming: null });
      continue;
    }
    if (isPrimaryBody(a.body) && a.status !== 200) {
      out.set(member, { kind: 'primary', lagBytes: null, streaming: null });
      continue;
    }
    if (a.status !== 200) {
      out.set(member, {
        kind: a.status === 503 ? 'not_qualifies' : 'failing',
        lagBytes: null,
        streaming: null,
      });
      continue;
    }
    if (isPrimaryBody(a.body)) {
      // A pool check that admits the primary (/read-only): it has no lag.
      out.set(member, { kind: 'qualifies', lagBytes: 0, streaming: null });
      continue;
    }
    const replayed = num(obj(a.body?.xlog).replayed_location);
    const lagBytes = leaderAt !== null && replayed !== null ? Math.max(0, leaderAt - replayed) : null;
    const timeline = num(a.body?.timeline);
    let streaming: boolean | 'held' | null = leaderless;
    if (leaderTimeline !== null && timeline !== null && timeline !== leaderTimeline) streaming = false;
    else if (named && replication !== null) {
      const entry = replication.find((r) => r.application_name === member);
      streaming = entry !== undefined && entry.state === 'streaming';
    }
    out.set(member, { kind: 'qualifies', lagBytes, streaming });
  }
  return { observations: out, memory: { namesMatch: named, leader: leaderName ?? memory.leader } };
}
