/**
 * Publishes per second per caller: one token bucket per principal name.
 * Buckets that have refilled completely carry no information, so they are
 * dropped when the map grows (JWT subjects are not a closed set).
 */

/** Rate limiter keyed by caller name. */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; atMs: number }>();

  constructor(
    /** Tokens added per second; 0 disables the limit. */
    private readonly ratePerSecond: number,
    /** Bucket size (burst). */
    private readonly burst: number,
    private readonly maxKeys = 10_000,
  ) {}

  /** Take `n` tokens for `key`, all or none; false (and nothing taken) when its bucket holds fewer. */
  take(key: string, n = 1, nowMs = Date.now()): boolean {
    if (this.ratePerSecond === 0) return true;
    let b = this.buckets.get(key);
    if (b === undefined) {
      if (this.buckets.size >= this.maxKeys) this.sweep(nowMs);
      b = { tokens: this.burst, atMs: nowMs };
      this.buckets.set(key, b);
    } else {
      b.tokens = Math.min(this.burst, b.tokens + ((nowMs - b.atMs) / 1000) * this.ratePerSecond);
      b.atMs = nowMs;
    }
    if (b.tokens < n) return false;
    b.tokens -= n;
    return true;
  }

  get size(): number {
    return this.buckets.size;
  }

  private sweep(nowMs: number): void {
    for (const [key, b] of this.buckets) {
      if (b.tokens + ((nowMs - b.atMs) / 1000) * this.ratePerSecond >= this.burst) this.buckets.delete(key);
    }
    // Every bucket is in use: forget the oldest rather than grow without bound.
    if (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
  }
}
