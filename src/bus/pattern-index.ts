/**
 * Finds the subscriptions whose pattern matches a published topic without
 * looking at the others. Exact topics live in a Map; patterns live in a token
 * trie where each node has exact-token children, a `*` child, and the values
 * whose pattern ends at the node (`here`) or continues with `>` (`rest`).
 * A publish walks the topic's tokens down the exact and `*` branches and
 * collects `rest` on the way, so its cost depends on the topic's depth and
 * the matches, not on the number of subscriptions. Nodes left empty by a
 * removal are pruned at once, so the trie holds no trace of closed
 * subscriptions.
 */

import { isPattern } from "./topic.js";

interface TrieNode<T> {
  readonly exact: Map<string, TrieNode<T>>;
  star: TrieNode<T> | undefined;
  readonly here: Set<T>;
  readonly rest: Set<T>;
}

function newNode<T>(): TrieNode<T> {
  return { exact: new Map(), star: undefined, here: new Set(), rest: new Set() };
}

function isEmpty<T>(node: TrieNode<T>): boolean {
  return node.exact.size === 0 && node.star === undefined && node.here.size === 0 && node.rest.size === 0;
}

/** An index from patterns (exact topics or wildcards) to values, queried by exact topic. */
export class PatternIndex<T> {
  private readonly exactTopics = new Map<string, Set<T>>();
  private readonly root: TrieNode<T> = newNode();
  private nodes = 1;
  private entries = 0;

  /** Adds `value` under `pattern` (a valid topic or pattern). Adding the same pair twice has no effect. */
  add(pattern: string, value: T): void {
    if (!isPattern(pattern)) {
      let set = this.exactTopics.get(pattern);
      if (set === undefined) {
        set = new Set();
        this.exactTopics.set(pattern, set);
      }
      if (!set.has(value)) this.entries++;
      set.add(value);
      return;
    }
    const tokens = pattern.split(".");
    let node = this.root;
    for (let i = 0; i < tokens.length; i++) {
      const token = tokens[i]!;
      if (token === ">") {
        if (!node.rest.has(value)) this.entries++;
        node.rest.add(value);
        return;
      }
      node = this.child(node, token);
    }
    if (!node.here.has(value)) this.entries++;
    node.here.add(value);
  }

  /** Removes `value` from under `pattern` and prunes the nodes this leaves empty. */
  remove(pattern: string, value: T): void {
    if (!isPattern(pattern)) {
      const set = this.exactTopics.get(pattern);
      if (set === undefined || !set.delete(value)) return;
      this.entries--;
      if (set.size === 0) this.exactTopics.delete(pattern);
      return;
    }
    const tokens = pattern.split(".");
    const path: TrieNode<T>[] = [this.root];
    let node = this.root;
    let removed = false;
    for (let i = 0; i < tokens.length; i++) {
      const token = tokens[i]!;
      if (token === ">") {
        removed = node.rest.delete(value);
        break;
      }
      const next = token === "*" ? node.star : node.exact.get(token);
      if (next === undefined) return;
      node = next;
      path.push(node);
      if (i === tokens.length - 1) removed = node.here.delete(value);
    }
    if (!removed) return;
    this.entries--;
    // Prune from the deepest node up while nodes are empty.
    for (let d = path.length - 1; d > 0; d--) {
      const n = path[d]!;
      if (!isEmpty(n)) break;
      const parent = path[d - 1]!;
      const token = tokens[d - 1]!;
      if (token === "*") parent.star = undefined;
      else parent.exact.delete(token);
      this.nodes--;
    }
  }

  /** Appends to `out` every value whose pattern matches `topic` (a valid exact topic), each once per pattern. */
  collect(topic: string, out: T[]): void {
    const exact = this.exactTopics.get(topic);
    if (exact !== undefined) for (const v of exact) out.push(v);
    if (this.nodes === 1 && isEmpty(this.root)) return;
    collectFrom(this.root, topic.split("."), 0, out);
  }

  /** Number of (pattern, value) pairs held. */
  get size(): number {
    return this.entries;
  }

  /** Number of trie nodes including the root; 1 when no wildcard pattern is held. For tests of pruning. */
  get trieNodes(): number {
    return this.nodes;
  }

  /** Number of distinct exact topics with a value. For tests of cleanup. */
  get exactTopicCount(): number {
    return this.exactTopics.size;
  }

  private child(node: TrieNode<T>, token: string): TrieNode<T> {
    if (token === "*") {
      if (node.star === undefined) {
        node.star = newNode();
        this.nodes++;
      }
      return node.star;
    }
    let next = node.exact.get(token);
    if (next === undefined) {
      next = newNode();
      node.exact.set(token, next);
      this.nodes++;
    }
    return next;
  }
}

function collectFrom<T>(node: TrieNode<T>, tokens: readonly string[], i: number, out: T[]): void {
  if (i === tokens.length) {
    for (const v of node.here) out.push(v);
    return;
  }
  // `>` needs at least one more token, which there is.
  for (const v of node.rest) out.push(v);
  const exact = node.exact.get(tokens[i]!);
  if (exact !== undefined) collectFrom(exact, tokens, i + 1, out);
  if (node.star !== undefined) collectFrom(node.star, tokens, i + 1, out);
}
