/**
 * A bounded sample of (seq, global) pairs of a topic's trimmed events.
 *
 * Why: a client resuming after a cursor of another topic needs to know which
 * of this topic's trimmed events came after that cursor, but the bus cannot
 * keep the positions of every trimmed event. This keeps at most `capacity`
 * pairs spread over the whole trimmed history: it samples every `stride`-th
 * trimmed event and, when full, drops every other sample and doubles the
 * stride. The first pair (seq 1, where the topic was created) is never dropped.
 *
 * The approximation: `seqAtOrBefore(g)` may return a seq lower than the true
 * last seq at or before `g`, by less than the current stride (about trimmed
 * count / (capacity / 2)), never higher. A gap built from it can therefore be
 * wider than the events really missed, never narrower.
 */
export class SeqCheckpoints {
  private readonly seqs: number[] = [];
  private readonly globals: number[] = [];
  private stride = 1;

  constructor(private readonly capacity = 32) {
    if (capacity < 2) throw new RangeError("checkpoint capacity must be at least 2");
  }

  /** Records an event as it is trimmed; events must come in seq order. */
  record(seq: number, global: number): void {
    const n = this.seqs.length;
    if (n > 0 && seq - this.seqs[n - 1]! < this.stride) return;
    this.seqs.push(seq);
    this.globals.push(global);
    if (this.seqs.length > this.capacity) this.thin();
  }

  /** Highest sampled seq whose global position is at or before `global`, or undefined if none is. */
  seqAtOrBefore(global: number): number | undefined {
    let lo = 0;
    let hi = this.globals.length; // first index with globals[i] > global
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.globals[mid]! <= global) lo = mid + 1;
      else hi = mid;
    }
    return lo === 0 ? undefined : this.seqs[lo - 1];
  }

  /** Number of samples held (for tests). */
  get size(): number {
    return this.seqs.length;
  }

  private thin(): void {
    let w = 0;
    for (let r = 0; r < this.seqs.length; r += 2) {
      this.seqs[w] = this.seqs[r]!;
      this.globals[w] = this.globals[r]!;
      w++;
    }
    this.seqs.length = w;
    this.globals.length = w;
    this.stride *= 2;
  }
}
