/**
 * Config problems and the one error that carries them. Every stage of the loader adds
 * problems to a list instead of throwing, so a user sees all of them at once.
 */
import type { ErrorCode } from '../errors.js';

/** One problem in a config file; line and col are 1-based and point at the offending key or value. */
export interface ConfigProblem {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  readonly message: string;
}

/** `FILE:LINE:COL: message`, the format editors and CI annotate from. */
export function formatProblem(p: ConfigProblem): string {
  return `${p.file}:${p.line}:${p.col}: ${p.message}`;
}

/** Thrown by the loader when a config has problems; never carries a stack trace into output. */
export class ConfigError extends Error {
  readonly code: ErrorCode = 'MLB_ERR_CONFIG';
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.name = 'ConfigError';
    this.problems = Object.freeze([...problems]);
  }
}

/** A single bad value (duration, host:port); the loader turns it into a ConfigProblem with a position. */
export class ConfigValueError extends Error {
  readonly code: ErrorCode = 'MLB_ERR_CONFIG_VALUE';

  constructor(message: string) {
    super(message);
    this.name = 'ConfigValueError';
  }
}
