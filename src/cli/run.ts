import { AdminServer } from '../admin/server.js';
import { EXIT, exitCodeOf } from '../errors.js';
import { ConfigError } from '../config/errors.js';
import { configWarnings, kindLine, loadConfigFile, loadWarnings } from '../config/load.js';
import { fdWarnings, planFds } from '../mirror/fd-budget.js';
import { readOpenFilesLimit } from '../proxy/fd-limit.js';
import type { Config } from '../config/types.js';
import { formatHostPort } from '../config/types.js';
import { Daemon } from '../daemon.js';
import { Prober } from '../health/probe.js';
import { createLogger, type Logger } from '../log.js';
import { VERSION } from '../version.js';

/** A running balancer with its admin listener: what `mirrorlb --config` and the demo start. */
export interface Running {
  readonly daemon: Daemon;
  readonly admin: AdminServer;
  readonly log: Logger;
  /** Resolves with the exit code once the daemon stopped (after SIGTERM/SIGINT or stop()). */
  readonly done: Promise<number>;
  /** The SIGTERM sequence: unready for `graceMs` (default shutdown.grace) while accepting, then drain. */
  stop(opts?: { graceMs?: number }): Promise<void>;
}

/**
 * Starts the daemon for a validated config: every listener bound before the first client
 * is accepted, signals wired (SIGHUP reload from `reloadFrom`, SIGTERM/SIGINT drain and exit).
 */
export async function startBalancer(
  config: Config,
  opts: { reloadFrom?: string; log?: Logger; signals?: boolean } = {},
): Promise<Running> {
  const log = opts.log ?? createLogger(config.log.level);
  logWarnings(log, config);
  const daemon = new Daemon(config, { log, prober: new Prober() });
  const admin = new AdminServer(daemon, config.admin, log.child({ component: 'admin' }));
  try {
    await daemon.start();
    await admin.listen();
  } catch (err) {
    // Release whatever did bind, so the process can exit with the error.
    await daemon.stop(0);
    await admin.close();
    throw err;
  }
  log.info(
    {
      version: VERSION,
      admin: formatHostPort(config.admin.listen),
      mirrors: config.mirrors.map((m) => `${m.name}@${formatHostPort(m.listen)}`),
      // Each mirror's kind, and what it was inferred from where the file does not write it.
      kinds: Object.fromEntries(config.mirrors.map((m) => [m.name, kindLine(m)])),
    },
    'mirrorlb started',
  );

  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((r) => (resolveDone = r));
  let stopping: Promise<void> | null = null;
  const stop = (o: { graceMs?: number } = {}): Promise<void> =>
    (stopping ??= (async () => {
      process.off('SIGHUP', onHup);
      // The admin listener stays up through grace and drain: /readyz must answer 503 to the
      // outer load balancer, and /status shows the drain.
      const { drainTimeoutMs, graceMs } = daemon.currentConfig.shutdown; // as last reloaded
      await daemon.stop(drainTimeoutMs, o.graceMs ?? graceMs);
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onTerm);
      await admin.close();
      resolveDone(0);
    })());
  const onTerm = (sig: NodeJS.Signals): void => {
    if (stopping) {
      // A second signal (an impatient Ctrl-C) ends the grace at once; the drain still runs.
      log.info({ signal: sig }, 'stopping now: grace cut short');
      daemon.endGrace();
      return;
    }
    log.info({ signal: sig, grace_ms: daemon.currentConfig.shutdown.graceMs }, 'stopping');
    void stop();
  };
  let reloading = Promise.resolve();
  const onHup = (): void => {
    // Reloads run one at a time, in the order the signals came.
    reloading = reloading.then(async () => {
      if (!opts.reloadFrom) return;
      try {
        const next = await loadConfigFile(opts.reloadFrom);
        await daemon.reload(next);
        logWarnings(log, next);
        if (formatHostPort(next.admin.listen) !== formatHostPort(config.admin.listen)) {
          log.warn('admin.listen changes take effect at the next restart');
        }
        admin.setConfig({ ...next.admin, listen: config.admin.listen });
      } catch (err) {
        daemon.reloadRefused(err instanceof ConfigError ? err.message : `${(err as Error).message}`);
      }
    });
  };
  if (opts.signals !== false) {
    process.on('SIGHUP', onHup);
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onTerm);
  }
  return { daemon, admin, log, done, stop };
}

function logWarnings(log: Logger, config: Config): void {
  for (const w of loadWarnings(config)) log.warn({ source: w.file, line: w.line, col: w.col }, w.message);
  for (const w of configWarnings(config)) log.warn({ source: config.source }, w);
  for (const w of fdWarnings(config, planFds(readOpenFilesLimit(), config)))
    log.warn({ source: config.source }, w);
}

export async function runDaemon(configPath: string, err: NodeJS.WritableStream): Promise<number> {
  let config: Config;
  try {
    config = await loadConfigFile(configPath);
  } catch (e) {
    if (e instanceof ConfigError) {
      err.write(`${e.message}\n`);
      return exitCodeOf(e.code);
    }
    throw e;
  }
  try {
    const running = await startBalancer(config, { reloadFrom: configPath });
    return await running.done;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    err.write(
      `mirrorlb: cannot start: ${(e as Error).message}${code === 'EADDRINUSE' ? ' (another process listens there)' : ''}\n`,
    );
    return EXIT.failed;
  }
}
