/**
 * A per-stream queue bounded in items and bytes, drained in batches through a
 * single waker (after nats.js queued_iterator): one pending promise at most,
 * never one per item, and `end()` settles it at once so a parked reader can
 * never outlive its stream. An idle queue holds no arrays at all.
 */

/** Bounds of one queue. */
export interface QueueBounds {
  readonly maxItems: number;
  readonly maxBytes: number;
}

/** What `take()` returns once the queue has ended and is empty. */
export const QUEUE_ENDED = Symbol("queue-ended");

/** A bounded FIFO with one waker. Not thread-safe by design: everything runs on one event loop. */
export class BoundedQueue<T> {
  // Allocated on first use and dropped when drained: an idle stream keeps neither array.
  private items: T[] | undefined;
  private sizes: number[] | undefined;
  private head = 0;
  private bytes = 0;
  private ended = false;
  private endError: unknown = undefined;
  private wake: (() => void) | undefined;

  constructor(readonly bounds: QueueBounds) {}

  /** Items waiting. */
  get length(): number {
    return this.items === undefined ? 0 : this.items.length - this.head;
  }

  /** Bytes waiting. */
  get queuedBytes(): number {
    return this.bytes;
  }

  /** True once `end()` was called (items may still be waiting). */
  get isEnded(): boolean {
    return this.ended;
  }

  /** Whether one more item of `size` bytes fits within the bounds. */
  fits(size: number): boolean {
    return this.length < this.bounds.maxItems && this.bytes + size <= this.bounds.maxBytes;
  }

  /** Append within the bounds; returns false (and keeps nothing) when it does not fit or the queue ended. */
  offer(item: T, size: number): boolean {
    if (this.ended || !this.fits(size)) return false;
    this.append(item, size);
    return true;
  }

  /** Append regardless of bounds: for the few control messages a stream must be able to send. */
  force(item: T, size = 0): void {
    if (this.ended) return;
    this.append(item, size);
  }

  /** Put an item before everything else, regardless of bounds. */
  pushFront(item: T, size = 0): void {
    if (this.ended) return;
    const items = this.items === undefined ? [] : this.items.slice(this.head);
    const sizes = this.sizes === undefined ? [] : this.sizes.slice(this.head);
    items.unshift(item);
    sizes.unshift(size);
    this.items = items;
    this.sizes = sizes;
    this.head = 0;
    this.bytes += size;
    this.notify();
  }

  /** The oldest waiting item, without removing it. */
  peek(): T | undefined {
    return this.length > 0 ? this.items![this.head] : undefined;
  }

  /** Remove and return the oldest waiting item. */
  shift(): T | undefined {
    if (this.length === 0) return undefined;
    const items = this.items!;
    const item = items[this.head]!;
    this.bytes -= this.sizes![this.head]!;
    items[this.head] = undefined as T;
    this.head++;
    if (this.head === items.length) this.reset();
    return item;
  }

  /** Drop everything waiting. */
  clear(): void {
    this.reset();
  }

  /**
   * Take all waiting items at once; QUEUE_ENDED once the queue has ended and
   * is drained (or throws the end error given to `end(error)`); undefined when
   * it is simply empty (then `wait()`).
   */
  takeNow(): T[] | typeof QUEUE_ENDED | undefined {
    if (this.length > 0) return this.drain();
    if (!this.ended) return undefined;
    if (this.endError !== undefined) throw this.endError;
    return QUEUE_ENDED;
  }

  /** Resolves when items arrive or the queue ends. At most one caller may wait at a time. */
  wait(): Promise<void> {
    if (this.length > 0 || this.ended) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.wake = resolve;
    });
  }

  /** End the queue: waiting items are still taken, then `takeNow()` reports the end. Idempotent. */
  end(error?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.endError = error;
    this.notify();
  }

  private drain(): T[] {
    const items = this.items!;
    const batch = this.head === 0 ? items : items.slice(this.head);
    this.reset();
    return batch;
  }

  private append(item: T, size: number): void {
    (this.items ??= []).push(item);
    (this.sizes ??= []).push(size);
    this.bytes += size;
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    if (wake !== undefined) {
      this.wake = undefined;
      wake();
    }
  }

  private reset(): void {
    this.items = undefined;
    this.sizes = undefined;
    this.head = 0;
    this.bytes = 0;
  }
}
