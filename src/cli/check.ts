/** `mirrorlb check --config FILE`: validate a config without starting anything. */
import { ConfigError } from '../config/errors.js';
import { configWarnings, loadConfigFile, summarize } from '../config/load.js';
import { parseCommandLine } from './args.js';

export const CHECK_USAGE = `Usage: mirrorlb check --config FILE   (or -c FILE)

Validates FILE. Exit 0 and a summary when it is valid, 1 with one
FILE:LINE:COL: message line per problem when it is not, 2 on usage errors.
`;

/** argv is what follows `check`. Returns the exit code. */
export async function runCheck(
  argv: string[],
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
): Promise<number> {
  const args = parseCommandLine(argv, { config: { type: 'string', short: 'c', value: 'a file name' } });
  if (args.kind === 'help') {
    out.write(CHECK_USAGE);
    return 0;
  }
  const file = args.kind === 'ok' ? args.values.config : undefined;
  if (file === undefined) {
    const message = args.kind === 'error' ? args.message : '--config FILE is required';
    err.write(`mirrorlb check: ${message}\n\n${CHECK_USAGE}`);
    return 2;
  }
  return check(file, out, err);
}

async function check(file: string, out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  try {
    const config = await loadConfigFile(file);
    out.write(summarize(config));
    for (const w of configWarnings(config)) out.write(`warning: ${w}\n`);
    return 0;
  } catch (e) {
    // The loader reports problems as ConfigError; anything else is our bug, still one line, no stack.
    const message =
      e instanceof ConfigError ? e.message : `${file}:1:1: internal error: ${(e as Error).message}`;
    err.write(`${message}\n`);
    return 1;
  }
}
