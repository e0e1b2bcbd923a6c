/** Turns a checked file and its converted section values into the typed Config (camelCase, ms). */
import {
  DEFAULTS,
  type HEALTH_KEYS,
  type PROXY_KEYS,
  type RawFile,
  type RawMirror,
  type SHUTDOWN_KEYS,
} from './keys.js';
import { parseHostPort, parseListenAddress } from './hostport.js';
import { checkUrls, inferKind } from './kind.js';
import { buildPools } from './pools.js';
import { BUILT_DEFAULTS, buildSection, KIND_HEALTH } from './sections.js';
import type { Checked } from './semantic.js';
import type { Config, HealthConfig, MirrorConfig, ProxyConfig } from './types.js';
import { loopCount } from '../workers/support.js';

export function buildConfig(raw: RawFile, checked: Checked, source: string): Config {
  const values = checked.sections;
  return {
    source,
    mirrors: raw.mirrors.map((m, i) => buildMirror(m, raw, checked, i)),
    admin: {
      listen: parseListenAddress(raw.admin?.listen ?? DEFAULTS.admin.listen),
      token: raw.admin?.token ?? DEFAULTS.admin.token,
    },
    log: {
      level: raw.log?.level ?? DEFAULTS.log.level,
      sessions: raw.log?.sessions ?? DEFAULTS.log.sessions,
    },
    shutdown: buildSection<typeof SHUTDOWN_KEYS>(BUILT_DEFAULTS.shutdown, values.top.shutdown),
    metrics: { enabled: raw.metrics?.enabled ?? DEFAULTS.metrics.enabled },
    workers: loopCount(raw.workers ?? DEFAULTS.workers),
  };
}

function buildMirror(m: RawMirror, raw: RawFile, checked: Checked, i: number): MirrorConfig {
  const written = m.kind ?? raw.kind;
  const kind = written ?? inferKind(checkUrls(m)).kind;
  const values = checked.sections;
  const own = values.mirrors[i]!;
  const members = m.members.map((member, j) => ({
    name: member.name,
    address: parseHostPort(member.address),
    check: typeof member.check === 'string' ? [member.check] : [...member.check],
    tls: checked.tls[i]?.[j] ?? null,
  }));
  return {
    name: m.name,
    kind,
    kindSource: written === undefined ? 'inferred' : 'written',
    listen: parseListenAddress(m.listen),
    members,
    // The key rows name every field; `satisfies` makes the compiler hold them to the interfaces.
    // Health: the generic defaults, then the kind's, then top-level `health`, then the mirror's.
    health: buildSection<typeof HEALTH_KEYS>(
      BUILT_DEFAULTS.health,
      KIND_HEALTH[kind],
      values.top.health,
      own.health,
    ) satisfies HealthConfig,
    proxy: buildSection<typeof PROXY_KEYS>(
      BUILT_DEFAULTS.proxy,
      values.top.proxy,
      own.proxy,
    ) satisfies ProxyConfig,
    onConflict: m.on_conflict ?? DEFAULTS.onConflict,
    pools: buildPools(m.pools, kind, members),
  };
}
