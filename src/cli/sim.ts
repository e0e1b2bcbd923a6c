import { parseArgs } from 'node:util';
import type { Writable } from 'node:stream';
import { pino } from 'pino';
import { SimMember, type SimOptions } from '../sim/member.js';

/**
 * `mirrorlb sim`: one simulated mirror member as its own process (the license-free
 * compose stack runs one per container). Stops on SIGTERM/SIGINT, or when `io.signal`
 * aborts (tests), and then resolves 0.
 */

const USAGE =
  'usage: mirrorlb sim --name N --superserver PORT --web PORT [--role primary|backup] [--host H] ' +
  '[--control PORT] [--status-delay MS]\n';

export interface SimCliIo {
  stdout?: Writable;
  stderr?: Writable;
  /** Stops the sim like a signal would. */
  signal?: AbortSignal;
}

class UsageError extends Error {
  readonly code = 'MLB_ERR_USAGE';
}

export async function runSim(argv: string[], io: SimCliIo = {}): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  // Accept the argument list with or without the subcommand word in front.
  const args = argv[0] === 'sim' ? argv.slice(1) : argv;
  let opts: SimOptions;
  try {
    opts = parseSimArgs(args);
  } catch (err) {
    if (!(err instanceof UsageError) && !isParseArgsError(err)) throw err;
    stderr.write(`mirrorlb sim: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }

  const logger = pino({ base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, stdout);
  const sim = new SimMember({ ...opts, logger });
  try {
    await sim.start();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    logger.error({ code: e.code ?? 'MLB_ERR_SIM_START', err: e.message }, 'sim could not start');
    return 1;
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
  return 0;
}

function parseSimArgs(args: string[]): SimOptions {
  const { values, positionals } = parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: {
      name: { type: 'string' },
      superserver: { type: 'string' },
      web: { type: 'string' },
      role: { type: 'string' },
      host: { type: 'string' },
      control: { type: 'string' },
      'status-delay': { type: 'string' },
    },
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`);
  if (!values.name) throw new UsageError('--name is required');
  if (/[\r\n]/.test(values.name)) throw new UsageError('--name must be one line');
  if (values.superserver === undefined) throw new UsageError('--superserver is required');
  if (values.web === undefined) throw new UsageError('--web is required');
  const role = values.role ?? 'backup';
  if (role !== 'primary' && role !== 'backup') throw new UsageError('--role must be primary or backup');
  const opts: SimOptions = {
    name: values.name,
    superserverPort: port('--superserver', values.superserver),
    webPort: port('--web', values.web),
    role,
  };
  if (values.host !== undefined) opts.host = values.host;
  if (values.control !== undefined) opts.controlPort = port('--control', values.control);
  if (values['status-delay'] !== undefined) {
    opts.statusDelayMs = nonNegativeInt('--status-delay', values['status-delay'], 3_600_000);
  }
  return opts;
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

function isParseArgsError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_');
}
