/**
 * A binary min-heap on a numeric `key`, used to merge several topic logs by
 * global position during replay (and, with negated keys, to walk them
 * backwards for "last N"). Keys may be raised while an item sits on top;
 * `fixTop()` restores the order.
 */

/** Anything the heap can order. */
export interface Keyed {
  key: number;
}

/** Min-heap of Keyed items. */
export class MinHeap<T extends Keyed> {
  private readonly items: T[] = [];

  get size(): number {
    return this.items.length;
  }

  /** The item with the smallest key, if any. */
  peek(): T | undefined {
    return this.items[0];
  }

  push(item: T): void {
    const a = this.items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (a[parent]!.key <= item.key) break;
      a[i] = a[parent]!;
      i = parent;
    }
    a[i] = item;
  }

  /** Removes and returns the item with the smallest key. */
  pop(): T | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      a[0] = last;
      this.siftDown(0);
    }
    return top;
  }

  /** Call after raising the key of the top item. */
  fixTop(): void {
    if (this.items.length > 1) this.siftDown(0);
  }

  /** Drops every item. */
  clear(): void {
    this.items.length = 0;
  }

  private siftDown(start: number): void {
    const a = this.items;
    const n = a.length;
    const item = a[start]!;
    let i = start;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && a[r]!.key < a[l]!.key ? r : l;
      if (a[c]!.key >= item.key) break;
      a[i] = a[c]!;
      i = c;
    }
    a[i] = item;
  }
}
