/**
 * The retained events of one topic in the memory bus, as a ring buffer:
 * append at the back and trim at the front are O(1), lookups by seq are O(1)
 * (seqs have no holes) and by global position O(log n). Retention bounds are
 * applied by the caller through `trimTo` (per topic, keeps the newest event)
 * and `trimOldest` (the bus-wide bound, which may empty the log; its seqs
 * continue where they were).
 */

import type { StoredEvent } from "./bus.js";
import { SeqCheckpoints } from "./memory-checkpoints.js";

const MIN_CAPACITY = 8;

/** What one `trimTo` or `trimOldest` call removed, for the bus-wide counters. */
export interface TrimResult {
  readonly events: number;
  readonly bytes: number;
}

/** One topic's retained events with their bus-wide positions. */
export class TopicLog {
  private events: (StoredEvent | undefined)[] = new Array<StoredEvent | undefined>(MIN_CAPACITY);
  private globals: number[] = new Array<number>(MIN_CAPACITY).fill(0);
  private head = 0;
  private length = 0;
  private byteCount = 0;
  private nextSeq = 1;
  private lastTrimmedGlobal = 0;
  private readonly checkpoints = new SeqCheckpoints();

  constructor(readonly topic: string) {}

  /** Seq of the oldest retained event (equals `lastSeq + 1` while the log is empty). */
  get firstSeq(): number {
    return this.nextSeq - this.length;
  }

  /** Seq of the newest event ever appended (0 before the first). */
  get lastSeq(): number {
    return this.nextSeq - 1;
  }

  /** Number of retained events. */
  get count(): number {
    return this.length;
  }

  /** Sum of `size` of the retained events. */
  get bytes(): number {
    return this.byteCount;
  }

  /** Seq the next appended event gets. */
  get upcomingSeq(): number {
    return this.nextSeq;
  }

  /** Appends an event; its `seq` must be `upcomingSeq`. */
  append(event: StoredEvent, global: number): void {
    if (this.length === this.events.length) this.resize(this.events.length * 2);
    const i = (this.head + this.length) % this.events.length;
    this.events[i] = event;
    this.globals[i] = global;
    this.length++;
    this.byteCount += event.size;
    if (this.nextSeq === 1) this.checkpoints.record(1, global);
    this.nextSeq++;
  }

  /** Drops the oldest events while more than `maxEvents` or `maxBytes` are held, always keeping the newest. */
  trimTo(maxEvents: number, maxBytes: number): TrimResult {
    let events = 0;
    let bytes = 0;
    while (this.length > 1 && (this.length > maxEvents || this.byteCount > maxBytes)) {
      bytes += this.dropOldest();
      events++;
    }
    if (events > 0) this.shrinkIfSparse();
    return { events, bytes };
  }

  /**
   * Drops the oldest retained event, even the only one (for the bus-wide
   * bound). An emptied log keeps its seqs: the next append gets `upcomingSeq`.
   */
  trimOldest(): TrimResult {
    if (this.length === 0) return { events: 0, bytes: 0 };
    const bytes = this.dropOldest();
    this.shrinkIfSparse();
    return { events: 1, bytes };
  }

  /**
   * Bus-wide position of the newest event ever appended, retained or not (0
   * before the first): while the log is empty, that of its last trimmed event.
   */
  get lastGlobal(): number {
    return this.length > 0 ? this.globalAt(this.lastSeq) : this.lastTrimmedGlobal;
  }

  /** The retained event with this seq; the caller ensures firstSeq <= seq <= lastSeq. */
  at(seq: number): StoredEvent {
    return this.events[this.slot(seq)]!;
  }

  /** Bus-wide position of the retained event with this seq; same precondition as `at`. */
  globalAt(seq: number): number {
    return this.globals[this.slot(seq)]!;
  }

  /**
   * Seq of the first event of this topic with a global position after
   * `global`: exact when that event is retained or right after the trimmed
   * ones, otherwise a lower bound taken from the checkpoints (see
   * SeqCheckpoints for how far off it can be). Returns `lastSeq + 1` when no
   * event is after `global`.
   */
  firstSeqAfter(global: number): number {
    if (this.lastGlobal <= global) return this.nextSeq;
    const first = this.firstSeq;
    // An empty log (emptied by the bus-wide bound) has only trimmed events, the newest after `global`.
    if (this.length === 0 || this.globalAt(first) > global) {
      if (first === 1) return 1;
      if (this.lastTrimmedGlobal <= global) return first;
      const seq = this.checkpoints.seqAtOrBefore(global);
      return seq === undefined ? 1 : seq + 1;
    }
    let lo = first; // globalAt(lo) <= global
    let hi = this.lastSeq; // globalAt(hi) > global
    while (hi - lo > 1) {
      const mid = lo + Math.floor((hi - lo) / 2);
      if (this.globalAt(mid) <= global) lo = mid;
      else hi = mid;
    }
    return hi;
  }

  /** Removes the oldest retained event (there must be one) through the checkpoints; returns its size. */
  private dropOldest(): number {
    const event = this.events[this.head]!;
    const global = this.globals[this.head]!;
    this.events[this.head] = undefined;
    this.head = (this.head + 1) % this.events.length;
    this.length--;
    this.byteCount -= event.size;
    this.lastTrimmedGlobal = global;
    this.checkpoints.record(this.firstSeq - 1, global);
    return event.size;
  }

  private shrinkIfSparse(): void {
    if (this.events.length > MIN_CAPACITY && this.length * 4 <= this.events.length) {
      this.resize(Math.max(MIN_CAPACITY, this.events.length / 2));
    }
  }

  private slot(seq: number): number {
    return (this.head + (seq - this.firstSeq)) % this.events.length;
  }

  private resize(capacity: number): void {
    const events = new Array<StoredEvent | undefined>(capacity);
    const globals = new Array<number>(capacity).fill(0);
    for (let k = 0; k < this.length; k++) {
      const i = (this.head + k) % this.events.length;
      events[k] = this.events[i];
      globals[k] = this.globals[i]!;
    }
    this.events = events;
    this.globals = globals;
    this.head = 0;
  }
}
