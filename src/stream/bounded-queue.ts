/**
 * A per-stream queue bounded in items and bytes, drained in batches through a
 * single waker (after nats.js queued_iterator): one pending promise at most,
 * never one per item, and `end()` settles it at once so a parked reader can
 * never outlive its stream.
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
  private items: T[] = [];
  private sizes: number[] = [];
  private head = 0;
  private bytes = 0;
  private ended = false;
  private endError: unknown = undefined;
  private wake: (() => void) | undefined;

  constructor(readonly bounds: QueueBounds) {}

  /** Items waiting. */
  get length(): number {
    return this.items.length - this.head;
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
    this.compact();
    this.items.unshift(item);
    this.sizes.unshift(size);
    this.bytes += size;
    this.notify();
  }

  /** The oldest waiting item, without removing it. */
  peek(): T | undefined {
    return this.length > 0 ? this.items[this.head] : undefined;
  }

  /** Remove and return the oldest waiting item. */
  shift(): T | undefined {
    if (this.length === 0) return undefined;
    const item = this.items[this.head]!;
    this.bytes -= this.sizes[this.head]!;
    this.items[this.head] = undefined as T;
    this.head++;
    if (this.head === this.items.length) this.reset();
    return item;
  }

  /** Drop everything waiting. */
  clear(): void {
    this.reset();
  }

  /**
   * Wait for items and take all of them, or QUEUE_ENDED once the queue has
   * ended and is drained. Rejects with the end error when `end(error)` was used.
   * At most one caller may wait at a time.
   */
  take(): Promise<T[] | typeof QUEUE_ENDED> | T[] | typeof QUEUE_ENDED {
    if (this.length > 0) return this.drain();
    if (this.ended) return this.finish();
    return new Promise<void>((resolve) => {
      this.wake = resolve;
    }).then(() => (this.length > 0 ? this.drain() : this.finish()));
  }

  /** End the queue: waiting items are still taken, then `take()` reports the end. Idempotent. */
  end(error?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.endError = error;
    this.notify();
  }

  private finish(): typeof QUEUE_ENDED {
    if (this.endError !== undefined) throw this.endError;
    return QUEUE_ENDED;
  }

  private drain(): T[] {
    const batch = this.head === 0 ? this.items : this.items.slice(this.head);
    this.items = [];
    this.sizes = [];
    this.head = 0;
    this.bytes = 0;
    return batch;
  }

  private append(item: T, size: number): void {
    this.items.push(item);
    this.sizes.push(size);
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

  private compact(): void {
    if (this.head > 0) {
      this.items = this.items.slice(this.head);
      this.sizes = this.sizes.slice(this.head);
      this.head = 0;
    }
  }

  private reset(): void {
    this.items = [];
    this.sizes = [];
    this.head = 0;
    this.bytes = 0;
  }
}
