/**
 * Nesting depth measured on the parser's concrete syntax tree, before the recursive
 * composer sees it. The parser itself is iterative; the composer recurses once per level,
 * and a stack overflow inside V8's regexp compiler aborts the process instead of throwing.
 */
import { CST } from 'yaml';

/** Offset of the first collection nested deeper than `max`, or null. Iterative, so any depth is safe. */
export function findTooDeep(tokens: readonly CST.Token[], max: number): number | null {
  const stack: [CST.Token, number][] = tokens.map((t) => [t, 0]);
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    const [token, depth] = next;
    if (token.type === 'document') {
      if (token.value) stack.push([token.value, depth]);
    } else if (CST.isCollection(token)) {
      if (depth + 1 > max) return token.offset;
      for (const item of token.items) {
        if (item.key) stack.push([item.key, depth + 1]);
        if (item.value) stack.push([item.value, depth + 1]);
      }
    }
  }
  return null;
}
