import { isIP } from 'node:net';
import type { Writable } from 'node:stream';
import { pino } from 'pino';
import { SimMember, type SimOptions } from '../sim/member.js';
import { EXIT, exitCodeOf, type ErrorCode } from '../errors.js';
import { parseCommandLine } from './args.js';

/**
 * `mirrorlb sim`: one simulated mirror member as its own process (the license-free
 * compose stack runs one per container). Stops on SIGTERM/SIGINT, or when `io.signal`
 * aborts (tests), and then resolves 0.
 */

export const SIM_USAGE = `Usage: mirrorlb sim --name N --superserver PORT --web PORT [--role primary|backup]
                    [--host H] [--control PORT] [--status-delay MS]

One simulated mirror member. The SuperServer port writes "<name>\\n" to each client,
then echoes; the web port answers GET /csp/mirror_status.cxw with 200 SUCCESS while
primary, 503 FAILED otherwise. Port 0 picks a free port (logged at start).

Roles change at run time with POST /sim/role on the web port:
  curl -d backup http://HOST:WEB/sim/role    (primary, backup, down = stops answering
                                              on both ports, hang = accepts, never answers)
  GET /sim/role reads it; --control PORT serves /sim/* on a side port that answers in
  every role (so a "down" sim can be revived).

  --role R           role at start (default backup)
  --host H           address to bind (default 127.0.0.1; IPv6 as ::1 or [::1])
  --status-delay MS  delay every status answer by MS milliseconds
`;

export interface SimCliIo {
  stdout?: Writable;
  stderr?: Writable;
  /** Stops the sim like a signal would. */
  signal?: AbortSignal;
}

class UsageError extends Error {
  readonly code: ErrorCode = 'MLB_ERR_USAGE';
}

export async function runSim(argv: string[], io: SimCliIo = {}): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  // Accept the argument list with or without the subcommand word in front.
  const args = argv[0] === 'sim' ? argv.slice(1) : argv;
  let opts: SimOptions;
  try {
    const parsed = parseSimArgs(args);
    if (parsed === 'help') {
      stdout.write(SIM_USAGE);
      return EXIT.ok;
    }
    opts = parsed;
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    stderr.write(`mirrorlb sim: ${err.message}\n\n${SIM_USAGE}`);
    return exitCodeOf(err.code);
  }

  const logger = pino({ base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, stdout);
  const sim = new SimMember({ ...opts, logger });
  try {
    await sim.start();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const code: ErrorCode = 'MLB_ERR_SIM_START';
    logger.error({ code: e.code ?? code, err: e.message }, 'sim could not start');
    return exitCodeOf(code);
  }
  logger.info(
    {
      name: sim.name,
      host: sim.host,
      role: sim.role,
      superserverPort: sim.superserverPort,
      webPort: sim.webPort,
      controlPort: sim.controlPort,
    },
    'sim listening',
  );

  await new Promise<void>((resolve) => {
    const done = (): void => {
      process.off('SIGTERM', done);
      process.off('SIGINT', done);
      io.signal?.removeEventListener('abort', done);
      resolve();
    };
    process.on('SIGTERM', done);
    process.on('SIGINT', done);
    if (io.signal?.aborted) done();
    else io.signal?.addEventListener('abort', done);
  });
  await sim.stop();
  logger.info({ name: sim.name }, 'sim stopped');
  return EXIT.ok;
}

function parseSimArgs(args: string[]): SimOptions | 'help' {
  const parsed = parseCommandLine(args, {
    name: { type: 'string' },
    superserver: { type: 'string', value: 'a port' },
    web: { type: 'string', value: 'a port' },
    role: { type: 'string' },
    host: { type: 'string', value: 'an address' },
    control: { type: 'string', value: 'a port' },
    'status-delay': { type: 'string', value: 'milliseconds' },
  });
  if (parsed.kind === 'help') return 'help';
  if (parsed.kind === 'error') throw new UsageError(parsed.message);
  const values = parsed.values;
  if (!values.name) throw new UsageError('--name is required');
  if (/[\r\n]/.test(values.name)) throw new UsageError('--name must be one line');
  if (values.superserver === undefined) throw new UsageError('--superserver is required');
  if (values.web === undefined) throw new UsageError('--web is required');
  const role = values.role ?? 'backup';
  if (role !== 'primary' && role !== 'backup') {
    throw new UsageError('--role must be primary or backup (later roles: POST /sim/role, see --help)');
  }
  const opts: SimOptions = {
    name: values.name,
    superserverPort: port('--superserver', values.superserver),
    webPort: port('--web', values.web),
    role,
  };
  if (values.host !== undefined) opts.host = bindHost(values.host);
  if (values.control !== undefined) opts.controlPort = port('--control', values.control);
  if (values['status-delay'] !== undefined) {
    opts.statusDelayMs = nonNegativeInt('--status-delay', values['status-delay'], 3_600_000);
  }
  return opts;
}

/** `[::1]` as the config format writes IPv6, or a bare address; never a port. */
function bindHost(text: string): string {
  const host = /^\[(.*)\]$/.exec(text)?.[1] ?? text;
  if (/^\[.*\]:\d*$/.test(text) || (!isIP(host) && /^[^:[\]]+:\d*$/.test(host))) {
    throw new UsageError(`--host takes no port (use --superserver and --web), got ${JSON.stringify(text)}`);
  }
  if (host === '' || /[\s[\]]/.test(host) || (host.includes(':') && !isIP(host))) {
    throw new UsageError(`--host must be an address or host name, got ${JSON.stringify(text)}`);
  }
  return host;
}

function port(flag: string, text: string): number {
  return nonNegativeInt(flag, text, 65535);
}

function nonNegativeInt(flag: string, text: string, max: number): number {
  if (!/^\d+$/.test(text) || Number(text) > max) {
    throw new UsageError(`${flag} must be an integer from 0 to ${max}, got ${JSON.stringify(text)}`);
  }
  return Number(text);
}
