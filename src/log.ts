import { pino, type Logger, type DestinationStream } from 'pino';
import type { LogLevel } from './config/types.js';

export type { Logger };

/**
 * JSON logs on stdout (or a given stream, which tests use to read records back). Every
 * record carries the pid, so an operator reading the logs knows whom to send `kill -HUP`.
 */
export function createLogger(level: LogLevel, dest?: DestinationStream): Logger {
  const opts = {
    level,
    base: { name: 'mirrorlb', pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return dest ? pino(opts, dest) : pino(opts);
}
