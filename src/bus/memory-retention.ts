/**
 * The memory bus's bound on retained bytes across all topics: finds the
 * globally oldest retained event without scanning topics.
 *
 * A min-heap holds one entry per topic log that retains events, keyed by the
 * global position of the log's oldest retained event. Per-topic trimming
 * only ever raises that position and is not reported here, so a key may lag
 * behind its log (it is never ahead); the lag is repaired when the entry
 * reaches the top. Every repair follows at least one per-topic trim of that
 * log, so the work is O(log topics) amortized per publish, and the heap holds
 * at most one small entry per topic.
 */

import { MinHeap } from "./memory-heap.js";
import type { TopicLog, TrimResult } from "./topic-log.js";

interface Entry {
  readonly log: TopicLog;
  /** Global position of the log's oldest retained event, or lower if the log was trimmed since. */
  key: number;
}

/** Topic logs with retained events, oldest retained event first. */
export class OldestFirst {
  private readonly heap = new MinHeap<Entry>();

  /** Number of logs tracked (for tests). */
  get size(): number {
    return this.heap.size;
  }

  /** Call after appending to a log that was empty before the append (a new log included). */
  add(log: TopicLog): void {
    this.heap.push({ log, key: log.globalAt(log.firstSeq) });
  }

  /**
   * Trims the globally oldest retained event through `TopicLog.trimOldest`,
   * which may empty its log (the log leaves the heap until `add` again).
   * Returns what was removed; nothing when no log retains anything.
   */
  trimOldest(): TrimResult {
    for (;;) {
      const top = this.heap.peek();
      if (top === undefined) return { events: 0, bytes: 0 };
      const log = top.log;
      const key = log.globalAt(log.firstSeq);
      if (key !== top.key) {
        // Trimmed per topic since keyed: its oldest event is newer than the key said.
        top.key = key;
        this.heap.fixTop();
        continue;
      }
      const trimmed = log.trimOldest();
      if (log.count > 0) {
        top.key = log.globalAt(log.firstSeq);
        this.heap.fixTop();
      } else {
        this.heap.pop();
      }
      return trimmed;
    }
  }

  /** Forgets every log. */
  clear(): void {
    this.heap.clear();
  }
}
