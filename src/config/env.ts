/**
 * `${VAR}` substitution, applied to each string value after YAML parsing, so a variable's
 * text can never change the structure of the file.
 */
import { displayPath, pointer } from './yaml/positions.js';
import type { ProblemList } from './problems.js';
import type { YamlTree } from './yaml/yaml-tree.js';

export type Env = Readonly<Record<string, string | undefined>>;

export type Substituted =
  { readonly ok: true; readonly value: string } | { readonly ok: false; readonly message: string };

const EMPTY_DEFAULT = /^\$\{[A-Za-z_][A-Za-z0-9_]*:-\}$/;
const REFERENCE = /^([A-Za-z_][A-Za-z0-9_]*)(?::-([^]*))?$/;

/** `${VAR}`, `${VAR:-default}` (default when unset or empty), `$$` → `$`; any other `$` stays. */
export function substituteEnv(s: string, env: Env): Substituted {
  let out = '';
  let i = 0;
  for (let d = s.indexOf('$'); d >= 0; d = s.indexOf('$', i)) {
    out += s.slice(i, d);
    const next = s[d + 1];
    if (next === '$') {
      out += '$';
      i = d + 2;
    } else if (next === '{') {
      const close = s.indexOf('}', d + 2);
      if (close < 0) return { ok: false, message: 'unterminated "${" (write $$ for a literal $)' };
      const r = resolveReference(s.slice(d + 2, close), env);
      if (!r.ok) return r;
      out += r.value;
      i = close + 1;
    } else {
      out += '$';
      i = d + 1;
    }
  }
  return { ok: true, value: out + s.slice(i) };
}

function resolveReference(inner: string, env: Env): Substituted {
  const m = REFERENCE.exec(inner);
  if (!m)
    return {
      ok: false,
      message: `"\${${inner}}" is not a variable reference; use \${NAME} or \${NAME:-default}`,
    };
  const name = m[1] as string;
  const fallback = m[2];
  const value = env[name];
  if (fallback !== undefined && (value === undefined || value === '')) return { ok: true, value: fallback };
  if (value === undefined) {
    return {
      ok: false,
      message: `environment variable ${name} is not set (use \${${name}:-default} for a fallback)`,
    };
  }
  return { ok: true, value };
}

/** Substitutes in every string value of the tree, in place; returns the pointers that changed. */
export function substituteTree(tree: YamlTree, env: Env, problems: ProblemList): Set<string> {
  const changed = new Set<string>();
  const visit = (value: unknown, ptr: string): unknown => {
    if (typeof value === 'string') {
      if (!value.includes('$')) return value;
      const r = substituteEnv(value, env);
      if (r.ok) {
        if (r.value !== value) changed.add(ptr);
        // A value that is only `${VAR:-}`, with VAR unset or empty, is null (no value), so
        // `token: ${MIRRORLB_ADMIN_TOKEN:-}` means "no token" when nothing is exported.
        return r.value === '' && EMPTY_DEFAULT.test(value) ? null : r.value;
      }
      problems.add(tree.positions.value(ptr), `${displayPath(ptr)}: ${r.message}`);
      tree.reported.add(ptr);
      return value;
    }
    if (Array.isArray(value)) value.forEach((v, i) => (value[i] = visit(v, pointer(ptr, i))));
    else if (value !== null && typeof value === 'object') {
      const obj = value as Record<string, unknown>;
      for (const k of Object.keys(obj)) obj[k] = visit(obj[k], pointer(ptr, k));
    }
    return value;
  };
  visit(tree.root, '');
  return changed;
}
