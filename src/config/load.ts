/**
 * The config loader, top-down: read → parse YAML → substitute ${VAR} → validate against the
 * schema → semantic checks (defaults filled in where a check needs them) → fill defaults
 * and build the typed Config → freeze. Every stage adds to one problem list; the first
 * stage that finds the text unusable stops, otherwise all problems are reported together.
 */
import { buildConfig } from './build.js';
import { substituteTree, type Env } from './env.js';
import { ConfigError, type ConfigProblem } from './errors.js';
import type { RawFile } from './keys.js';
import { prescan } from './yaml/prescan.js';
import { ProblemList } from './problems.js';
import { readConfigText } from './yaml/read.js';
import { validateSchema } from './schema.js';
import { checkSemantics } from './semantic.js';
import type { Config } from './types.js';
import type { Pos } from './yaml/positions.js';
import { readYamlTree } from './yaml/yaml-tree.js';

export { configWarnings, kindLine, summarize } from './summary.js';
export type { Env } from './env.js';

/** What the loader knew about a Config's file that the frozen Config itself does not hold. */
interface LoadInfo {
  readonly warnings: readonly ConfigProblem[];
  readonly position: (ptr: string) => Pos;
}

const LOADED = new WeakMap<Config, LoadInfo>();

/** Doubtful but valid values, each with its FILE:LINE:COL (none for a Config not from the loader). */
export function loadWarnings(config: Config): readonly ConfigProblem[] {
  return LOADED.get(config)?.warnings ?? [];
}

/** Where the value at a JSON pointer (`/mirrors/0/members/1/address`) was written, when known. */
export function positionOf(config: Config, ptr: string): Pos | null {
  return LOADED.get(config)?.position(ptr) ?? null;
}

/** Parses config text; `file` names it in messages and becomes Config.source. Throws ConfigError. */
export function parseConfig(text: string, file: string, env: Env): Config {
  const problems = new ProblemList(file);
  const tree = prescan(text, problems) ? readYamlTree(text, problems) : null;
  if (tree === null) throw new ConfigError(problems.sorted());
  const fromEnv = substituteTree(tree, env, problems);
  validateSchema(tree, fromEnv, problems);
  const checked = checkSemantics(tree, problems);
  problems.throwIfAny();
  const config = deepFreeze(buildConfig(tree.root as RawFile, checked, file));
  LOADED.set(config, { warnings: problems.warnings(), position: (ptr) => tree.positions.value(ptr) });
  return config;
}

/** Reads and parses a config file; unreadable, oversized or non-text files are ConfigErrors too. */
export async function loadConfigFile(path: string, env: Env = process.env): Promise<Config> {
  const read = await readConfigText(path);
  if (!read.ok) throw new ConfigError([{ file: path, ...read.pos, message: read.message }]);
  return parseConfig(read.text, path, env);
}

/** Freezes a value and everything reachable from it, so a Config can be shared without copies. */
function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
