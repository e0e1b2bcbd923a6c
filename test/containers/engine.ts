/**
 * The container engine as `npm run test:containers` drives it: podman (with the settings
 * of scripts/containers/*.conf), its Docker-compatible API for Debian's docker-compose,
 * and the healthcheck timer that podman leaves to systemd.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '../..');
const CONF = path.join(ROOT, 'scripts/containers');

/** podman's settings for this kind of host (runc, ulimits, short names mean docker.io). */
export const ENGINE_ENV: Record<string, string> = {
  CONTAINERS_CONF: path.join(CONF, 'containers.conf'),
  CONTAINERS_REGISTRIES_CONF: path.join(CONF, 'registries.conf'),
  BUILDAH_FORMAT: 'docker',
};

export interface Run {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to completion (bounded) with the engine settings added to `env`. */
export function run(
  cmd: string,
  args: readonly string[],
  opts: { env?: Record<string, string | undefined>; timeoutMs?: number; cwd?: string } = {},
): Run {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd ?? ROOT,
    env: { ...(opts.env ?? process.env), ...ENGINE_ENV },
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 120_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  return { status: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? String(r.error ?? '') };
}

/** The same, asynchronous, so the test can watch while it runs (`docker-compose up`). */
export function runAsync(
  cmd: string,
  args: readonly string[],
  env: Record<string, string | undefined>,
  timeoutMs = 300_000,
): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: ROOT, env: { ...env, ...ENGINE_ENV } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ status: code ?? -1, stdout, stderr });
    });
  });
}

/** What is missing for the container suite, as apt package names; empty when all is there. */
export function missingTools(): string[] {
  const has = (bin: string) => spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
  const out: string[] = [];
  for (const [bin, pkg] of [
    ['podman', 'podman'],
    ['runc', 'runc'],
    ['docker-compose', 'docker-compose'],
    ['debootstrap', 'debootstrap'],
  ] as const)
    if (!has(bin)) out.push(pkg);
  // `init: true` in the compose files needs podman's init binary; service names resolve
  // through CNI's dnsname plugin (podman 4 with its CNI backend, as Debian 12 ships it).
  if (!existsSync('/usr/libexec/podman/catatonit')) out.push('catatonit');
  if (!existsSync('/usr/lib/cni/dnsname')) out.push('golang-github-containernetworking-plugin-dnsname');
  return out;
}

/** `podman system service` on a private socket, for docker-compose (DOCKER_HOST). */
export class ApiService {
  readonly dir = mkdtempSync(path.join(tmpdir(), `${prefix()}-engine-`));
  readonly socket = path.join(this.dir, 'podman.sock');
  private child: ChildProcess | null = null;

  async start(): Promise<void> {
    this.child = spawn('podman', ['system', 'service', '--time=0', `unix://${this.socket}`], {
      env: { ...process.env, ...ENGINE_ENV },
      stdio: 'ignore',
    });
    const deadline = Date.now() + 30_000;
    while (!existsSync(this.socket)) {
      if (Date.now() > deadline || this.child.exitCode !== null)
        throw new Error('podman system service did not open its socket');
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child && child.exitCode === null) {
      const closed = new Promise((r) => child.once('close', r));
      child.kill('SIGTERM');
      await closed;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Prefix of everything the suite creates (compose projects, temp dirs). */
export function prefix(): string {
  return process.env.MIRRORLB_CT_PREFIX ?? 'mlbct';
}

interface Inspect {
  Id: string;
  Name: string;
  State: { Running: boolean; StartedAt: string; Health?: { Status: string } };
  Config: {
    Labels: Record<string, string> | null;
    Healthcheck?: { Test: string[]; Interval?: number } | null;
  };
}

/** One container of a compose project, as podman inspects it. */
export interface ServiceState {
  readonly service: string;
  readonly id: string;
  readonly running: boolean;
  readonly startedAt: number;
  readonly health: string | null;
  readonly intervalMs: number | null;
}

export async function projectContainers(project: string): Promise<ServiceState[]> {
  const ps = await runAsync(
    'podman',
    ['ps', '-a', '-q', '--no-trunc', '--filter', `label=com.docker.compose.project=${project}`],
    process.env,
  );
  const list = ps.stdout.split(/\s+/).filter(Boolean);
  if (list.length === 0) return [];
  const r = await runAsync('podman', ['inspect', ...list], process.env);
  if (r.status !== 0) return [];
  return (JSON.parse(r.stdout) as Inspect[]).map(toState);
}

function toState(c: Inspect): ServiceState {
  return {
    service: c.Config.Labels?.['com.docker.compose.service'] ?? c.Name,
    id: c.Id,
    running: c.State.Running,
    startedAt: Date.parse(c.State.StartedAt),
    health: c.State.Health?.Status ?? null,
    intervalMs:
      c.Config.Healthcheck && c.Config.Healthcheck.Test[0] !== 'NONE'
        ? Math.round((c.Config.Healthcheck.Interval ?? 30e9) / 1e6)
        : null,
  };
}

/**
 * Runs each container's healthcheck on its own interval, as Docker's daemon does. Podman
 * leaves that timer to systemd (`systemd-run`); on a host without systemd no check would
 * ever run and `depends_on: condition: service_healthy` would wait forever. Records when
 * the first passing check of each service began: compose can only have seen it healthy
 * after that moment.
 */
export class HealthDriver {
  readonly healthySince = new Map<string, number>();
  private readonly lastRun = new Map<string, number>();
  private readonly busy = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private ticking = false;
  private readonly known = new Map<string, ServiceState>();
  readonly needed = !existsSync('/run/systemd/system');

  constructor(private readonly project: string) {}

  start(): void {
    if (!this.needed) return;
    this.timer = setInterval(() => {
      if (this.ticking) return;
      this.ticking = true;
      void this.tick().finally(() => (this.ticking = false));
    }, 500);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private async tick(): Promise<void> {
    // One `podman ps` a tick; each container is inspected once (podman is no light process).
    const ps = await runAsync(
      'podman',
      ['ps', '-q', '--no-trunc', '--filter', `label=com.docker.compose.project=${this.project}`],
      process.env,
    );
    const ids = ps.stdout.split(/\s+/).filter(Boolean);
    const unknown = ids.filter((id) => !this.known.has(id));
    if (unknown.length > 0) {
      const r = await runAsync('podman', ['inspect', ...unknown], process.env);
      if (r.status === 0) for (const c of JSON.parse(r.stdout) as Inspect[]) this.known.set(c.Id, toState(c));
    }
    for (const id of ids) {
      const c = this.known.get(id);
      if (!c || c.intervalMs === null || this.busy.has(c.id)) continue;
      const now = Date.now();
      // The first check runs one interval after the start, as Docker's does.
      const last = this.lastRun.get(c.id) ?? c.startedAt;
      if (now - last < c.intervalMs) continue;
      this.lastRun.set(c.id, now);
      this.busy.add(c.id);
      const child = spawn('podman', ['healthcheck', 'run', c.id], {
        env: { ...process.env, ...ENGINE_ENV },
        stdio: 'ignore',
      });
      child.on('close', (code) => {
        this.busy.delete(c.id);
        if (code === 0 && !this.healthySince.has(c.service)) this.healthySince.set(c.service, now);
      });
    }
  }
}
