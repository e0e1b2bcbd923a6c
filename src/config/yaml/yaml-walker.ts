/**
 * Walks a composed YAML document into plain JS values, recording where each value and key
 * is. Aliases are expanded here under explicit limits (the YAML "billion laughs" bomb), so
 * nothing later has to care about anchors.
 */
import { isAlias, isMap, isScalar, isSeq, visit, type Document, type Node } from 'yaml';
import { quote, type ProblemList } from '../problems.js';
import { displayPath, pointer, PositionIndex, START, type Pos } from './positions.js';

/** Alias dereferences while expanding the whole file; a real config needs a handful. */
export const MAX_ALIAS_EXPANSIONS = 256;
/** Values in the expanded tree; a full 64-mirror config has about 15 000. */
export const MAX_NODES = 100_000;
/** No list in a valid config has more than 64 items; ajv's allErrors mode is quadratic in list length. */
export const MAX_LIST_ITEMS = 1000;
/** A real config nests about six levels; anything near this is junk. Also bounds alias chains. */
export const MAX_TREE_DEPTH = 64;

/** Thrown to unwind the walk once a limit is hit; the problem is already recorded. */
export class TreeAbort extends Error {}

export class Walker {
  readonly positions = new PositionIndex();
  readonly reported = new Set<string>();
  private readonly aliasTargets = new Map<Node, Node | undefined>();
  private readonly active = new Set<Node>();
  private expansions = 0;
  private nodes = 0;

  constructor(
    doc: Document,
    private readonly at: (offset: number) => Pos,
    private readonly problems: ProblemList,
  ) {
    // One pass in document order: an alias refers to the last anchor of its name before it.
    const anchors = new Map<string, Node>();
    visit(doc, {
      Node: (_key, node) => {
        if (isAlias(node)) this.aliasTargets.set(node, anchors.get(node.source));
        else if (node.anchor) anchors.set(node.anchor, node);
      },
    });
  }

  walk(node: Node, ptr: string, fallback: Pos, depth: number): unknown {
    const pos = this.posOf(node, fallback);
    this.positions.setValue(ptr, pos);
    this.limit(++this.nodes > MAX_NODES, pos, `more than ${MAX_NODES} values; this is not a config file`);
    this.limit(depth > MAX_TREE_DEPTH, pos, `nesting deeper than ${MAX_TREE_DEPTH} levels`);
    if (isAlias(node)) return this.expandAlias(node, ptr, pos, depth);
    if (isScalar(node)) return node.value;
    this.active.add(node);
    try {
      if (isMap(node)) return this.walkMap(node.items, ptr, depth);
      if (isSeq(node)) return this.walkSeq(node.items, ptr, pos, depth);
    } finally {
      this.active.delete(node);
    }
    return null;
  }

  private expandAlias(node: Node & { source: string }, ptr: string, pos: Pos, depth: number): unknown {
    const target = this.aliasTargets.get(node);
    if (!target) return this.skip(ptr, pos, `alias *${node.source} has no anchor &${node.source} before it`);
    if (this.active.has(target))
      return this.skip(ptr, pos, `alias *${node.source} is inside its own anchor (a cycle)`);
    this.limit(
      ++this.expansions > MAX_ALIAS_EXPANSIONS,
      pos,
      `more than ${MAX_ALIAS_EXPANSIONS} alias expansions; refusing what looks like a YAML alias bomb`,
    );
    const value = this.walk(target, ptr, pos, depth + 1);
    this.positions.setValue(ptr, pos); // the alias, not the anchor, is where this value is used
    return value;
  }

  private walkMap(items: readonly { key: unknown; value: unknown }[], ptr: string, depth: number): object {
    const out: Record<string, unknown> = {};
    for (const pair of items) {
      const key = pair.key as Node | null;
      const keyPos = this.posOf(key, START);
      const name = this.keyName(key, keyPos);
      if (name === null) continue;
      const childPtr = pointer(ptr, name);
      if (Object.hasOwn(out, name)) {
        this.problems.add(keyPos, `duplicate key ${quote(name)}`);
        continue;
      }
      this.positions.setKey(childPtr, keyPos);
      // defineProperty: a key named __proto__ must become data, not change the prototype.
      Object.defineProperty(out, name, {
        value: this.walkItem(pair.value, childPtr, keyPos, depth),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }

  private walkSeq(items: readonly unknown[], ptr: string, pos: Pos, depth: number): unknown[] | null {
    if (items.length > MAX_LIST_ITEMS) {
      return this.skip(
        ptr,
        pos,
        `${displayPath(ptr) || 'the top level'}: a list of ${items.length} items; a config has no list longer than 64`,
      );
    }
    return items.map((item, i) => this.walkItem(item, pointer(ptr, i), pos, depth));
  }

  private walkItem(item: unknown, ptr: string, fallback: Pos, depth: number): unknown {
    if (item === null || item === undefined) {
      this.positions.setValue(ptr, fallback);
      return null;
    }
    return this.walk(item as Node, ptr, fallback, depth + 1);
  }

  private keyName(key: Node | null, pos: Pos): string | null {
    let problem: string | null = null;
    if (key === null || (isScalar(key) && key.value === null)) problem = 'a key is empty';
    else if (!isScalar(key)) problem = 'a key must be a plain word, not a list, mapping or alias';
    else return typeof key.value === 'string' ? key.value : String(key.value);
    this.problems.add(pos, problem);
    return null;
  }

  /** Reports a problem confined to one value and carries on with null there. */
  private skip(ptr: string, pos: Pos, message: string): null {
    this.problems.add(pos, message);
    this.reported.add(ptr);
    return null;
  }

  /** Empty values (`listen:` with nothing after it) have no text of their own: use their key. */
  private posOf(node: Node | null, fallback: Pos): Pos {
    const range = node?.range;
    if (!range) return fallback;
    if (isScalar(node) && node.value === null && range[0] === range[1]) return fallback;
    return this.at(range[0]);
  }

  private limit(exceeded: boolean, pos: Pos, message: string): void {
    if (exceeded) this.fail(pos, message);
  }

  private fail(pos: Pos, message: string): never {
    this.problems.add(pos, message);
    throw new TreeAbort(message);
  }
}
