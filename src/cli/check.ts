/** `mirrorlb check --config FILE`: validate a config without starting anything. */
import { ConfigError } from '../config/errors.js';
import { configWarnings, loadConfigFile, summarize } from '../config/load.js';

const USAGE = `Usage: mirrorlb check --config FILE   (or -c FILE)

Validates FILE. Exit 0 and a summary when it is valid, 1 with one
FILE:LINE:COL: message line per problem when it is not, 2 on usage errors.
`;

type Parsed = { readonly file: string } | { readonly help: true } | { readonly error: string };

/** argv is what follows `check`. Returns the exit code. */
export async function runCheck(
  argv: string[],
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
): Promise<number> {
  const args = parseArgs(argv);
  if ('help' in args) {
    out.write(USAGE);
    return 0;
  }
  if ('error' in args) {
    err.write(`mirrorlb check: ${args.error}\n\n${USAGE}`);
    return 2;
  }
  return check(args.file, out, err);
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

function parseArgs(argv: string[]): Parsed {
  let file: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--help' || a === '-h') return { help: true };
    let value: string | undefined;
    if (a === '--config' || a === '-c') value = argv[++i];
    else if (a.startsWith('--config=')) value = a.slice('--config='.length);
    else return { error: a.startsWith('-') ? `unknown option ${a}` : `unexpected argument ${a}` };
    if (value === undefined || value === '') return { error: `${a} needs a file name` };
    if (file !== undefined) return { error: '--config given twice' };
    file = value;
  }
  return file === undefined ? { error: '--config FILE is required' } : { file };
}
