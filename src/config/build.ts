/** Fills defaults and turns a checked file (snake_case, strings) into the typed Config (camelCase, ms). */
import { DEFAULTS, type RawFile, type RawHealth, type RawMirror, type RawProxy } from './defaults.js';
import { parseHostPort, parseListenAddress } from './hostport.js';
import { buildSection, HEALTH_KEYS, PROXY_KEYS, SHUTDOWN_KEYS } from './keys.js';
import type { Config, HealthConfig, MirrorConfig, ProxyConfig } from './types.js';

export function buildConfig(raw: RawFile, source: string): Config {
  const health = { ...DEFAULTS.health, ...raw.health };
  const proxy = { ...DEFAULTS.proxy, ...raw.proxy };
  return {
    source,
    mirrors: raw.mirrors.map((m) => buildMirror(m, health, proxy)),
    admin: {
      listen: parseListenAddress(raw.admin?.listen ?? DEFAULTS.admin.listen),
      token: raw.admin?.token ?? DEFAULTS.admin.token,
    },
    log: { level: raw.log?.level ?? DEFAULTS.log.level },
    shutdown: buildSection(SHUTDOWN_KEYS, raw.shutdown ?? {}),
    metrics: { enabled: raw.metrics?.enabled ?? DEFAULTS.metrics.enabled },
  };
}

function buildMirror(m: RawMirror, health: RawHealth, proxy: RawProxy): MirrorConfig {
  return {
    name: m.name,
    listen: parseListenAddress(m.listen),
    members: m.members.map((member) => ({
      name: member.name,
      address: parseHostPort(member.address),
      check: typeof member.check === 'string' ? [member.check] : [...member.check],
    })),
    // The key rows name every field; `satisfies` makes the compiler hold them to the interfaces.
    health: buildSection(HEALTH_KEYS, { ...health, ...m.health }) satisfies HealthConfig,
    proxy: buildSection(PROXY_KEYS, { ...proxy, ...m.proxy }) satisfies ProxyConfig,
    onConflict: m.on_conflict ?? DEFAULTS.onConflict,
  };
}
