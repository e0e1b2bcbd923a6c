/** `mirrorlb check --config FILE`: validate a config without starting anything. */
import { ConfigError } from '../config/errors.js';
import { EXIT, exitCodeOf } from '../errors.js';
import { configWarnings, loadConfigFile, loadWarnings, summarize } from '../config/load.js';
import { fdWarnings, planFds } from '../mirror/fd-budget.js';
import { readOpenFilesLimit } from '../proxy/fd-limit.js';
import { parseCommandLine } from './args.js';
import { unresolvedMembers, type Lookup } from './member-dns.js';

export const CHECK_USAGE = `Usage: mirrorlb check --config FILE   (or -c FILE)

Validates FILE. Exit 0 and a summary when it is valid, 1 with one
FILE:LINE:COL: message line per problem when it is not, 2 on usage errors.
`;

/** argv is what follows `check`. Returns the exit code. `lookup` replaces DNS in tests. */
export async function runCheck(
  argv: string[],
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
  opts: { lookup?: Lookup } = {},
): Promise<number> {
  const args = parseCommandLine(argv, { config: { type: 'string', short: 'c', value: 'a file name' } });
  if (args.kind === 'help') {
    out.write(CHECK_USAGE);
    return EXIT.ok;
  }
  const file = args.kind === 'ok' ? args.values.config : undefined;
  if (file === undefined) {
    const message = args.kind === 'error' ? args.message : '--config FILE is required';
    err.write(`mirrorlb check: ${message}\n\n${CHECK_USAGE}`);
    return EXIT.usage;
  }
  return check(file, out, err, opts.lookup);
}

async function check(
  file: string,
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
  lookup: Lookup | undefined,
): Promise<number> {
  try {
    const config = await loadConfigFile(file);
    out.write(summarize(config));
    // Editor format for the warnings that have a line: FILE:LINE:COL: warning: message.
    const positioned = [...loadWarnings(config), ...(await unresolvedMembers(config, lookup))];
    positioned.sort((a, b) => a.line - b.line || a.col - b.col);
    for (const w of positioned) out.write(`${w.file}:${w.line}:${w.col}: warning: ${w.message}\n`);
    for (const w of configWarnings(config)) out.write(`warning: ${w}\n`);
    for (const w of fdWarnings(config, planFds(readOpenFilesLimit(), config))) out.write(`warning: ${w}\n`);
    return EXIT.ok;
  } catch (e) {
    // The loader reports problems as ConfigError; anything else is our bug, still one line, no stack.
    const message =
      e instanceof ConfigError ? e.message : `${file}:1:1: internal error: ${(e as Error).message}`;
    err.write(`${message}\n`);
    return exitCodeOf('MLB_ERR_CONFIG');
  }
}
