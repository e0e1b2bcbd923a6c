/**
 * schema/mirrorlb.schema.json is generated from the key rows (src/config/schema-document.ts):
 * the committed file, the one editors and the loader use, must be exactly what they
 * generate. MIRRORLB_UPDATE_SCHEMA=1 rewrites it instead of failing.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as prettier from 'prettier';
import t from 'tap';
import { schemaDocument } from '../src/config/schema-document.js';
import { SCHEMA_PATH } from '../src/config/schema.js';

t.test('the shipped schema file is the one the key rows generate', async (t) => {
  const path = fileURLToPath(SCHEMA_PATH);
  const options = { ...(await prettier.resolveConfig(path)), filepath: path };
  const generated = await prettier.format(JSON.stringify(schemaDocument(), null, 2), options);
  const committed = readFileSync(path, 'utf8');
  if (process.env.MIRRORLB_UPDATE_SCHEMA === '1' && generated !== committed) {
    writeFileSync(path, generated);
    t.comment(`rewrote ${path}`);
    return;
  }
  t.strictSame(JSON.parse(committed), schemaDocument(), 'same content');
  t.equal(
    committed,
    generated,
    'same text (regenerate: MIRRORLB_UPDATE_SCHEMA=1 npx tap test/config-schema-file.test.ts)',
  );
});
