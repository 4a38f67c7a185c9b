/**
 * What one soak subscriber saw, checked as it arrived: every event of its
 * topics exactly once and in seq order, or an honest Gap saying what is
 * missing. It exists so that "nothing lost, nothing repeated" is counted per
 * subscriber, wherever the subscriber runs (this process or a host child).
 */

/** The totals a check reports (summed over subscribers by the soak). */
export interface DeliveryTotals {
  received: number;
  duplicates: number;
  /** Events missing without a Gap saying so. */
  holes: number;
  /** Events reported missing by Gaps. */
  gapped: number;
}

/** One subscriber's running check. */
export class DeliveryCheck implements DeliveryTotals {
  /** Last seq seen (or skipped by a Gap) per topic; starts at the head each topic had when the subscriber began. */
  readonly last: Map<string, bigint>;
  received = 0;
  duplicates = 0;
  holes = 0;
  gapped = 0;

  constructor(startSeqs: ReadonlyMap<string, bigint> = new Map()) {
    this.last = new Map(startSeqs);
  }

  event(topic: string, seq: bigint): void {
    const last = this.last.get(topic) ?? 0n;
    if (seq <= last) {
      this.duplicates++;
      return;
    }
    if (seq > last + 1n) this.holes += Number(seq - last - 1n);
    this.last.set(topic, seq);
    this.received++;
  }

  gap(topic: string, fromSeq: bigint, toSeq: bigint): void {
    const last = this.last.get(topic) ?? 0n;
    const from = fromSeq > last + 1n ? fromSeq : last + 1n;
    if (toSeq >= from) this.gapped += Number(toSeq - from + 1n);
    if (toSeq > last) this.last.set(topic, toSeq);
  }

  /** True when every topic in `published` that `matches` has been seen up to its last seq. */
  caughtUp(published: ReadonlyMap<string, bigint>, matches: (topic: string) => boolean): boolean {
    for (const [topic, seq] of published) if (matches(topic) && (this.last.get(topic) ?? 0n) < seq) return false;
    return true;
  }
}

/** Sum of the totals of many checks. */
export function sumTotals(checks: Iterable<DeliveryTotals>): DeliveryTotals {
  const sum: DeliveryTotals = { received: 0, duplicates: 0, holes: 0, gapped: 0 };
  for (const c of checks) {
    sum.received += c.received;
    sum.duplicates += c.duplicates;
    sum.holes += c.holes;
    sum.gapped += c.gapped;
  }
  return sum;
}
