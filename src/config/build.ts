/** Fills defaults and turns a checked file (snake_case, strings) into the typed Config (camelCase, ms). */
import {
  DEFAULTS,
  isNoFence,
  isNoIdleTimeout,
  type RawFile,
  type RawHealth,
  type RawMirror,
  type RawProxy,
} from './defaults.js';
import { parseDuration } from './duration.js';
import { parseHostPort, parseListenAddress } from './hostport.js';
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
    shutdown: {
      drainTimeoutMs: parseDuration(raw.shutdown?.drain_timeout ?? DEFAULTS.shutdown.drain_timeout),
    },
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
    health: buildHealth({ ...DEFAULTS.health, ...KIND_HEALTH[kind], ...topHealth, ...m.health }),
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
    expectBody: texts(h.expect_body),
    notPrimaryStatus:
      typeof h.not_primary_status === 'number' ? [h.not_primary_status] : [...h.not_primary_status],
    notPrimaryBody: texts(h.not_primary_body),
    fenceAfterMs: isNoFence(h.fence_after) ? null : parseDuration(h.fence_after),
    maxBodyBytes: h.max_body,
    jitter: h.jitter,
  };
}

function texts(v: string | readonly string[] | null): string[] {
  return v === null ? [] : typeof v === 'string' ? [v] : [...v];
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
