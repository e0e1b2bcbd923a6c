/**
 * `check` looks up every member host name once, bounded, and warns for each that does not
 * resolve: the daemon would start "ready" and hold (then close) every client of that
 * member. A warning, not an error: the name may resolve only where the balancer runs
 * (a compose network, a Kubernetes service).
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { ConfigProblem } from '../config/errors.js';
import { positionOf } from '../config/load.js';
import type { Config } from '../config/types.js';

export type Lookup = (host: string) => Promise<unknown>;

/** Longest a whole `check` waits on DNS; names still unanswered then are warned about too. */
export const DNS_BOUND_MS = 3000;

export async function unresolvedMembers(
  config: Config,
  lookup: Lookup = (h) => dnsLookup(h),
  boundMs = DNS_BOUND_MS,
): Promise<ConfigProblem[]> {
  const hosts = new Set<string>();
  for (const m of config.mirrors)
    for (const x of m.members) if (!isIP(x.address.host)) hosts.add(x.address.host);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`no answer within ${boundMs / 1000} s`), boundMs);
  });
  const failures = new Map<string, string>();
  await Promise.all(
    [...hosts].map(async (host) => {
      const why = await Promise.race([
        lookup(host).then(
          () => null,
          (e: NodeJS.ErrnoException) => e.code ?? e.message,
        ),
        timeout,
      ]);
      if (why !== null) failures.set(host, why);
    }),
  );
  clearTimeout(timer);
  const out: ConfigProblem[] = [];
  config.mirrors.forEach((m, i) =>
    m.members.forEach((x, j) => {
      const why = failures.get(x.address.host);
      if (why === undefined) return;
      const pos = positionOf(config, `/mirrors/${i}/members/${j}/address`) ?? { line: 1, col: 1 };
      out.push({
        file: config.source,
        ...pos,
        message:
          `mirrors[${i}].members[${j}].address: "${x.address.host}" does not resolve here (${why}); ` +
          'while it does not, every client of this member is held and then closed',
      });
    }),
  );
  return out;
}
