import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import t from 'tap';
import { parse } from 'yaml';
import { DEFAULTS, HEALTH_KEYS, PROXY_KEYS } from '../src/config/keys.js';
import { compileSchema, loadSchema } from '../src/config/schema.js';

const FIXTURES = new URL('./fixtures/config/', import.meta.url).pathname;
type Schema = Record<string, unknown>;

t.test('the schema file is valid draft-07 and compiles in strict mode', async (t) => {
  const schema = loadSchema();
  t.equal(schema.$schema, 'http://json-schema.org/draft-07/schema#');
  // A plain Ajv, as an editor or CI would use it: only the errorMessage annotation is extra.
  const ajv = new Ajv({ strict: true, allowUnionTypes: true });
  ajv.addKeyword({ keyword: 'errorMessage', schemaType: 'string' });
  t.ok(ajv.validateSchema(schema), 'valid against the draft-07 meta-schema');
  t.doesNotThrow(() => ajv.compile(schema));
  t.doesNotThrow(() => compileSchema());
});

t.test('example configs pass the schema as written', async (t) => {
  const validate = compileSchema();
  for (const f of ['minimal.yml', 'full.yml']) {
    const doc: unknown = parse(readFileSync(`${FIXTURES}${f}`, 'utf8'));
    t.ok(validate(doc), f, { errors: validate.errors });
  }
  t.notOk(validate({ mirrors: [] }), 'an empty mirrors list fails');
  t.notOk(
    validate({
      mirrors: [{ name: 'a', listen: 'x:1', members: [{ name: 'b', address: 'y:1', check: 'z' }] }],
    }),
  );
});

/** Follows a local `#/definitions/...` reference. */
function resolve(root: Schema, node: Schema): Schema {
  let n = node;
  while (typeof n.$ref === 'string') {
    const target = n.$ref
      .slice(2)
      .split('/')
      .reduce<unknown>((o, k) => (o as Schema)[k], root) as Schema;
    n = { ...target, ...n, $ref: undefined };
  }
  return n;
}

/** Every property of every object schema, with its resolved schema: [path, schema]. */
function properties(root: Schema, node: Schema, path: string): [string, Schema][] {
  const n = resolve(root, node);
  const out: [string, Schema][] = [];
  for (const [k, v] of Object.entries((n.properties ?? {}) as Record<string, Schema>)) {
    const child = resolve(root, v);
    out.push([`${path}${k}`, child]);
    out.push(...properties(root, child, `${path}${k}.`));
    if (child.items) out.push(...properties(root, child.items as Schema, `${path}${k}[].`));
  }
  return out;
}

t.test('every key has a description, so editors show help', async (t) => {
  const schema = loadSchema();
  const props = properties(schema, schema, '');
  t.ok(props.length > 40, `${props.length} keys`);
  t.strictSame(
    props.filter(([, s]) => typeof s.description !== 'string' || s.description.length < 10).map(([p]) => p),
    [],
  );
  const objects = [
    schema,
    ...props.map(([, s]) => s),
    ...Object.values(schema.definitions as Schema),
  ] as Schema[];
  // A map keyed by member name (a pool's `checks`) has open keys by nature: its values have a
  // schema and its keys are checked against the mirror's members (src/config/pools.ts).
  const maps = ['pool.checks'];
  t.strictSame(
    objects
      .filter((s) => s.type === 'object' && s.additionalProperties !== false)
      .map((s) =>
        typeof s.additionalProperties === 'object' ? 'pool.checks' : JSON.stringify(s).slice(0, 80),
      ),
    maps,
    'additionalProperties: false on every object but the member-name map',
  );
});

t.test('the defaults documented in the schema are the ones the loader fills in', async (t) => {
  const schema = loadSchema();
  const byPath = new Map(properties(schema, schema, ''));
  const documented = (path: string): unknown => byPath.get(path)?.default;
  for (const section of ['health', 'proxy', 'admin', 'log', 'shutdown'] as const) {
    for (const [key, value] of Object.entries(DEFAULTS[section])) {
      t.strictSame(documented(`${section}.${key}`), value, `${section}.${key}`);
    }
    const keys = [...byPath.keys()].filter((p) => p.startsWith(`${section}.`));
    t.strictSame(
      keys.sort(),
      Object.keys(DEFAULTS[section])
        .map((k) => `${section}.${k}`)
        .sort(),
      `${section}: no undocumented key`,
    );
  }
  t.equal(documented('mirrors[].on_conflict'), DEFAULTS.onConflict);
  t.equal(documented('kind'), undefined, 'unwritten, the kind is inferred from the check URLs');
  t.equal(documented('mirrors[].kind'), undefined, 'a mirror without kind inherits the top-level one');
  const overrides = [...byPath.keys()].filter((p) => /^mirrors\[\]\.(health|proxy)\./.test(p));
  t.ok(
    // health.tls is no row: the key and its own keys (ca, cert, key, servername, verify).
    overrides.length === Object.keys(HEALTH_KEYS).length + Object.keys(PROXY_KEYS).length + 1 + 5 &&
      overrides.every((p) => documented(p) === undefined),
    'per-mirror overrides have no default: they inherit',
  );
});
