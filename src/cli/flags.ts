/**
 * A tiny flag parser for the CLI: `--name value`, `--name=value`, boolean `--flag`, and
 * single-letter aliases. Unknown flags and missing values are errors, never ignored.
 */
export type FlagSpec = Record<string, 'string' | 'boolean'>;

export type Flags<S extends FlagSpec> = {
  values: { [K in keyof S]?: S[K] extends 'boolean' ? boolean : string };
  rest: string[];
};

export function parseFlags<S extends FlagSpec>(
  argv: readonly string[],
  spec: S,
  aliases: Record<string, keyof S & string> = {},
): Flags<S> | { error: string } {
  const values: Record<string, string | boolean> = {};
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('-') || arg === '-') {
      rest.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    let name = arg.replace(/^--?/, '');
    let inline: string | undefined;
    if (eq !== -1) {
      name = arg.slice(0, eq).replace(/^--?/, '');
      inline = arg.slice(eq + 1);
    }
    const key = (aliases[name] ?? name) as string;
    const kind = spec[key];
    if (!kind) return { error: `unknown option ${arg.split('=')[0]}` };
    if (kind === 'boolean') {
      if (inline !== undefined) return { error: `option --${key} takes no value` };
      values[key] = true;
      continue;
    }
    const value = inline ?? argv[++i];
    if (value === undefined || (inline === undefined && value.startsWith('--')))
      return { error: `option --${key} needs a value` };
    values[key] = value;
  }
  return { values: values as Flags<S>['values'], rest };
}
