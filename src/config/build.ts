/** Fills defaults and turns a checked file (snake_case, strings) into the typed Config (camelCase, ms). */
import {
  DEFAULTS,
  isNoIdleTimeout,
  type RawFile,
  type RawHealth,
  type RawMirror,
  type RawProxy,
} from './defaults.js';
import { parseDuration } from './duration.js';
import { parseHostPort, parseListenAddress } from './hostport.js';
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
    shutdown: {
      graceMs: buildGrace(raw.shutdown?.grace ?? DEFAULTS.shutdown.grace),
      drainTimeoutMs: parseDuration(raw.shutdown?.drain_timeout ?? DEFAULTS.shutdown.drain_timeout),
    },
    metrics: { enabled: raw.metrics?.enabled ?? DEFAULTS.metrics.enabled },
  };
}

/** shutdown.grace takes 0 / "0" / "off" for none, like idle_timeout. */
function buildGrace(v: string | number): number {
  return isNoIdleTimeout(v) ? 0 : parseDuration(String(v));
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
    health: buildHealth({ ...health, ...m.health }),
    proxy: buildProxy({ ...proxy, ...m.proxy }),
    onConflict: m.on_conflict ?? DEFAULTS.onConflict,
  };
}

function buildHealth(h: RawHealth): HealthConfig {
  return {
    intervalMs: parseDuration(h.interval),
    fastIntervalMs: parseDuration(h.fast_interval),
    fastWindowMs: parseDuration(h.fast_window),
    timeoutMs: parseDuration(h.timeout),
    rise: h.rise,
    fall: h.fall,
    expectStatus: h.expect_status,
    expectBody: h.expect_body,
    maxBodyBytes: h.max_body,
    jitter: h.jitter,
  };
}

function buildProxy(p: RawProxy): ProxyConfig {
  return {
    connectTimeoutMs: parseDuration(p.connect_timeout),
    holdTimeoutMs: parseDuration(p.hold_timeout),
    maxHeld: p.max_held,
    maxConnections: p.max_connections,
    idleTimeoutMs: isNoIdleTimeout(p.idle_timeout) ? 0 : parseDuration(String(p.idle_timeout)),
  };
}
