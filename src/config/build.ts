/** Fills defaults and turns a checked file (snake_case, strings) into the typed Config (camelCase, ms). */
import { DEFAULTS, type RawFile, type RawHealth, type RawMirror, type RawProxy } from './defaults.js';
import { parseHostPort, parseListenAddress } from './hostport.js';
import { buildSection, HEALTH_KEYS, PROXY_KEYS, SHUTDOWN_KEYS } from './keys.js';
import { KIND_HEALTH } from './kinds.js';
import type { Config, HealthConfig, MirrorConfig, MirrorKind, ProxyConfig } from './types.js';

export function buildConfig(raw: RawFile, source: string): Config {
  const proxy = { ...DEFAULTS.proxy, ...raw.proxy };
  const topKind = raw.kind ?? DEFAULTS.kind;
  return {
    source,
    mirrors: raw.mirrors.map((m) => buildMirror(m, m.kind ?? topKind, raw.health ?? {}, proxy)),
    admin: {
      listen: parseListenAddress(raw.admin?.listen ?? DEFAULTS.admin.listen),
      token: raw.admin?.token ?? DEFAULTS.admin.token,
    },
    log: { level: raw.log?.level ?? DEFAULTS.log.level },
    shutdown: buildSection(SHUTDOWN_KEYS, raw.shutdown ?? {}),
    metrics: { enabled: raw.metrics?.enabled ?? DEFAULTS.metrics.enabled },
  };
}

function buildMirror(
  m: RawMirror,
  kind: MirrorKind,
  topHealth: Partial<RawHealth>,
  proxy: RawProxy,
): MirrorConfig {
  return {
    name: m.name,
    kind,
    listen: parseListenAddress(m.listen),
    members: m.members.map((member) => ({
      name: member.name,
      address: parseHostPort(member.address),
      check: typeof member.check === 'string' ? [member.check] : [...member.check],
    })),
    // The key rows name every field; `satisfies` makes the compiler hold them to the interfaces.
    // Health: the generic defaults, then the kind's, then top-level `health`, then the mirror's.
    health: buildSection(HEALTH_KEYS, {
      ...DEFAULTS.health,
      ...KIND_HEALTH[kind],
      ...topHealth,
      ...m.health,
    }) satisfies HealthConfig,
    proxy: buildSection(PROXY_KEYS, { ...proxy, ...m.proxy }) satisfies ProxyConfig,
    onConflict: m.on_conflict ?? DEFAULTS.onConflict,
  };
}
