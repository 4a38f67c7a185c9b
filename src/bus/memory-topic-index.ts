/**
 * The memory bus's topics, by name and by token, so a pattern subscription
 * that replays history visits only the topics its pattern can match instead
 * of every topic on the bus. Topics are never removed (a topic keeps its seq
 * counter even when every event of it was trimmed, so seqs never restart), so
 * the trie only grows, bounded by the bus's topic limit.
 */

interface TopicNode<T> {
  readonly children: Map<string, TopicNode<T>>;
  value: T | undefined;
}

/** Topic name -> value, with lookup of all values whose topic matches a pattern. */
export class TopicIndex<T> {
  private readonly byName = new Map<string, T>();
  private readonly root: TopicNode<T> = { children: new Map(), value: undefined };

  /** The value of an exact topic. */
  get(topic: string): T | undefined {
    return this.byName.get(topic);
  }

  /** Adds a topic; the topic must not be present yet. */
  add(topic: string, value: T): void {
    this.byName.set(topic, value);
    let node = this.root;
    for (const token of topic.split(".")) {
      let next = node.children.get(token);
      if (next === undefined) {
        next = { children: new Map(), value: undefined };
        node.children.set(token, next);
      }
      node = next;
    }
    node.value = value;
  }

  /** Number of topics. */
  get size(): number {
    return this.byName.size;
  }

  /** Calls `visit` for every topic matched by `pattern` (exact topic or valid pattern). */
  forEachMatching(pattern: string, visit: (value: T) => void): void {
    walk(this.root, pattern.split("."), 0, visit);
  }

  /** Forgets every topic. */
  clear(): void {
    this.byName.clear();
    this.root.children.clear();
  }
}

function walk<T>(node: TopicNode<T>, tokens: readonly string[], i: number, visit: (value: T) => void): void {
  if (i === tokens.length) {
    if (node.value !== undefined) visit(node.value);
    return;
  }
  const token = tokens[i]!;
  if (token === ">") {
    for (const child of node.children.values()) everything(child, visit);
    return;
  }
  if (token === "*") {
    for (const child of node.children.values()) walk(child, tokens, i + 1, visit);
    return;
  }
  const child = node.children.get(token);
  if (child !== undefined) walk(child, tokens, i + 1, visit);
}

function everything<T>(node: TopicNode<T>, visit: (value: T) => void): void {
  if (node.value !== undefined) visit(node.value);
  for (const child of node.children.values()) everything(child, visit);
}
