import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
/** Package version, read from package.json at run time so it never drifts. */
export const VERSION: string = (require('../package.json') as { version: string }).version;
