import { pino, type Logger, type DestinationStream } from 'pino';
import type { LogLevel } from './config/types.js';

export type { Logger };

/** JSON logs on stdout (or a given stream, which tests use to read records back). */
export function createLogger(level: LogLevel, dest?: DestinationStream): Logger {
  const opts = { level, base: { name: 'mirrorlb' }, timestamp: pino.stdTimeFunctions.isoTime };
  return dest ? pino(opts, dest) : pino(opts);
}
