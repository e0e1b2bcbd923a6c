/**
 * Validation against schema/mirrorlb.schema.json, the same file editors use. Ajv's errors
 * become one positioned, plain-language problem per key or value.
 */
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { parseCheckUrl, redactUserinfo } from './check-url.js';
import { parseDuration } from './duration.js';
import { ConfigValueError } from './errors.js';
import { parseHostPort, parseListenAddress } from './hostport.js';
import { DEFAULTS, SECTIONS, type Rows } from './keys.js';
import { describe, quote, type ProblemList } from './problems.js';
import { nearestKey } from './suggest.js';
import { displayPath, isReported, pointer, segments } from './yaml/positions.js';
import type { YamlTree } from './yaml/yaml-tree.js';

/** Same relative place from src/config (tests) and dist/config (installed package). */
export const SCHEMA_PATH = new URL('../../schema/mirrorlb.schema.json', import.meta.url);

let compiled: ValidateFunction | undefined;

export function loadSchema(): Record<string, unknown> {
  return JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')) as Record<string, unknown>;
}

/** Compiles a schema the way the loader does (strict, every error, `errorMessage` annotations allowed). */
export function compileSchema(schema: object = loadSchema()): ValidateFunction {
  const ajv = new Ajv({ allErrors: true, verbose: true, strict: true, allowUnionTypes: true });
  ajv.addKeyword({ keyword: 'errorMessage', schemaType: 'string' });
  return ajv.compile(schema);
}

/** Adds a problem per schema violation; `fromEnv` marks values that came from `${VAR}`. */
export function validateSchema(tree: YamlTree, fromEnv: ReadonlySet<string>, problems: ProblemList): void {
  compiled ??= compileSchema();
  if (compiled(tree.root)) return;
  for (const e of compiled.errors ?? []) {
    if (isReported(tree.reported, e.instancePath)) continue;
    if (e.keyword === 'additionalProperties') reportUnknownKey(tree, e, problems);
    else if (e.keyword === 'required') reportMissingKey(tree, e, problems);
    else {
      problems.add(tree.positions.value(e.instancePath), valueMessage(e, fromEnv.has(e.instancePath)));
      tree.reported.add(e.instancePath);
    }
  }
}

function reportUnknownKey(tree: YamlTree, e: ErrorObject, problems: ProblemList): void {
  const key = String((e.params as { additionalProperty: string }).additionalProperty);
  const ptr = pointer(e.instancePath, key);
  const known = Object.keys((e.parentSchema?.properties ?? {}) as object);
  const guess = nearestKey(key, known) ?? misplacedKey(key, e.instancePath);
  const where = e.instancePath === '' ? 'at the top level' : `in ${displayPath(e.instancePath)}`;
  const hint =
    key === '<<' ? '; YAML merge keys are not supported' : guess === null ? '' : `; did you mean "${guess}"?`;
  problems.add(tree.positions.key(ptr), `unknown key ${quote(key)} ${where}${hint}`);
  tree.reported.add(ptr);
}

/** A health or proxy key written one level too high (`interval:` in a mirror): its right place. */
function misplacedKey(key: string, parent: string): string | null {
  if (parent !== '' && !/^\/mirrors\/\d+$/.test(parent)) return null;
  const sections =
    parent === ''
      ? (['health', 'proxy', 'admin', 'log', 'shutdown', 'metrics'] as const)
      : (['health', 'proxy'] as const);
  const section = sections.find((s) => Object.hasOwn(DEFAULTS[s], key));
  return section === undefined ? null : `${section}.${key}`;
}

function reportMissingKey(tree: YamlTree, e: ErrorObject, problems: ProblemList): void {
  const key = String((e.params as { missingProperty: string }).missingProperty);
  const where = e.instancePath === '' ? 'at the top level' : `in ${displayPath(e.instancePath)}`;
  problems.add(tree.positions.value(e.instancePath), `missing required key "${key}" ${where}`);
  tree.reported.add(pointer(e.instancePath, key));
}

function valueMessage(e: ErrorObject, fromEnv: boolean): string {
  const custom = e.parentSchema?.errorMessage;
  const explained = e.keyword === 'pattern' ? explainBadValue(e.instancePath, e.data) : null;
  if (explained !== null) return `${displayPath(e.instancePath)}: ${explained}`;
  const expected = typeof custom === 'string' ? custom : genericExpectation(e);
  const envHint =
    fromEnv && e.keyword === 'type' ? ' (a value from ${VAR} is text; this key takes a literal number)' : '';
  return `${displayPath(e.instancePath)}: ${expected}, got ${describeSafely(e.instancePath, e.data)}${envHint}`;
}

/** A secret is never repeated in a message: the token by its shape only, a URL without its userinfo. */
function describeSafely(ptr: string, value: unknown): string {
  if (ptr === '/admin/token') {
    if (typeof value !== 'string') return typeof value === 'number' ? 'a number' : describe(value);
    const shape = /^[!-~]*$/.test(value) ? '' : ', with a space or a character outside printable ASCII';
    return `a string of ${value.length} character${value.length === 1 ? '' : 's'}${shape} (not shown)`;
  }
  if (typeof value === 'string' && /\/check(\/\d+)?$/.test(ptr)) return describe(redactUserinfo(value));
  return describe(value);
}

const TYPE_NAMES: Record<string, string> = {
  object: 'a mapping',
  array: 'a list',
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true or false',
  null: 'null',
};

function genericExpectation(e: ErrorObject): string {
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'type':
      return `must be ${[p.type]
        .flat()
        .map((t) => TYPE_NAMES[String(t)] ?? String(t))
        .join(' or ')}`;
    case 'enum':
      return `must be one of ${(p.allowedValues as unknown[]).map(String).join(', ')}`;
    default:
      return (e.message ?? 'is invalid').replace(/^must NOT have/, 'must not have');
  }
}

/**
 * Parsers that explain a string failing its schema pattern in their own words, by key: the
 * addresses, check URLs, plain durations and the rows that ask for it (`parserExplains`).
 */
const PARSERS: Record<string, (s: string) => unknown> = {
  listen: parseListenAddress,
  address: parseHostPort,
  check: parseCheckUrl,
  ...Object.fromEntries(
    Object.values(SECTIONS).flatMap((rows) =>
      Object.entries(rows as Rows)
        .filter(([, r]) => r.type === 'duration' || r.parserExplains === true)
        .map(([k]) => [k, parseDuration]),
    ),
  ),
};

/**
 * Why a string at ptr failed its schema pattern, in the words of the parser for that key
 * (`port 70000 is out of range`), or null to fall back to the schema's errorMessage.
 */
function explainBadValue(ptr: string, value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const key = segments(ptr)
    .filter((s) => !/^\d+$/.test(s))
    .pop();
  const parse = key === undefined ? undefined : PARSERS[key];
  if (parse === undefined) return null;
  try {
    parse(value);
    return null;
  } catch (e) {
    return e instanceof ConfigValueError ? e.message : null;
  }
}
