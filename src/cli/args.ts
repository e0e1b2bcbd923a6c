/**
 * The one argument parser of every subcommand, on `node:util` `parseArgs` (short aliases,
 * `--x=v`, `-xv`, `--` all come from there). It runs `parseArgs` non-strict, to read the
 * tokens, and words every problem itself: unknown options, a missing or empty value, a
 * value given to a flag, an option given twice (`multiple: true` keeps every occurrence).
 * `-h`/`--help` is known to every command.
 */
import { parseArgs } from 'node:util';

export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  /** What the value is, for "--config needs a file name"; default "a value". */
  readonly value?: string;
}

export type OptionsSpec = Readonly<Record<string, OptionSpec>>;

export type Values<S extends OptionsSpec> = {
  [K in keyof S]?: S[K]['type'] extends 'boolean' ? boolean : string;
};

export type Parsed<S extends OptionsSpec> =
  | { readonly kind: 'ok'; readonly values: Values<S>; readonly positionals: readonly string[] }
  | { readonly kind: 'help' }
  | { readonly kind: 'error'; readonly message: string };

const HELP: OptionSpec = { type: 'boolean', short: 'h' };

/**
 * Parses argv against spec; at most `maxPositionals` bare arguments (default none).
 * `--help` anywhere wins over every other problem, so a confused user always gets the usage.
 */
export function parseCommandLine<S extends OptionsSpec>(
  argv: readonly string[],
  spec: S,
  maxPositionals = 0,
): Parsed<S> {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple: true }> = {};
  for (const [name, o] of Object.entries({ help: HELP, ...spec })) {
    options[name] = { type: o.type, multiple: true, ...(o.short ? { short: o.short } : {}) };
  }
  const { tokens } = parseArgs({
    args: [...argv],
    options,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  if (tokens.some((tk) => tk.kind === 'option' && tk.name === 'help')) return { kind: 'help' };
  const values: Record<string, string | boolean> = {};
  const positionals: string[] = [];
  for (const tk of tokens) {
    if (tk.kind === 'positional') {
      if (positionals.length >= maxPositionals) return error(`unexpected argument ${tk.value}`);
      positionals.push(tk.value);
      continue;
    }
    if (tk.kind !== 'option') continue; // the `--` terminator
    const o = spec[tk.name];
    if (o === undefined) return error(`unknown option ${tk.rawName}`);
    if (values[tk.name] !== undefined) return error(`--${tk.name} given twice`);
    if (o.type === 'boolean') {
      if (tk.value !== undefined) return error(`option --${tk.name} takes no value`);
      values[tk.name] = true;
      continue;
    }
    // Non-strict parseArgs takes the next word as the value even when it is an option.
    const value = tk.value;
    if (value === undefined || value === '' || (!tk.inlineValue && value.startsWith('-') && value !== '-'))
      return error(`${tk.rawName} needs ${o.value ?? 'a value'}`);
    values[tk.name] = value;
  }
  return { kind: 'ok', values: values as Values<S>, positionals };
}

function error(message: string): { kind: 'error'; message: string } {
  return { kind: 'error', message };
}
