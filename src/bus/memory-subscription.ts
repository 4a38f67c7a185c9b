/**
 * One subscription on the memory bus: replays history from the topic logs at
 * the pace of its sink, then switches to live pushes in the same synchronous
 * step, so nothing is lost or delivered twice.
 *
 * Replay state is a min-heap of "replay heads", one per matching topic with
 * events still to deliver, ordered by the global position of the topic's next
 * event, so several logs merge in publish order. While the subscription
 * replays, a publish on a matching topic does not push to the sink; it only
 * makes sure the topic has a replay head (this is how a topic created during
 * replay joins). Heads hold seqs, not events, so trimming while paused is
 * noticed when the head is next read and reported as a gap.
 */

import type { BusSubscription, DeliverySink, StoredEvent } from "./bus.js";
import { MinHeap } from "./memory-heap.js";
import { SinkCalls } from "./sink-calls.js";
import type { TopicLog } from "./topic-log.js";

/** Where one topic's replay stands: the next seq to deliver, keyed by that event's global position. */
export interface ReplayHead {
  readonly log: TopicLog;
  /** Next seq to deliver; below `log.firstSeq` when events were trimmed (a gap). */
  nextSeq: number;
  /**
   * Global position of the first retained event at or after nextSeq, as last seen (may lag after
   * trims); see `headKey`.
   */
  key: number;
}

/** How a subscription starts, computed by `planStart` from the start position and the bus state. */
export interface ReplayPlan {
  /** Topics with events to replay, each with the first seq to deliver (<= log.lastSeq). */
  readonly heads: readonly { readonly log: TopicLog; readonly nextSeq: number }[];
  /** Global position already covered: later offers at or below it are ignored. */
  readonly position: number;
  /** Events with a lower seq are never delivered (from_seq on an exact topic; 0 otherwise). */
  readonly minSeq: number;
  /** Send a "reset" gap before anything else (cursor from another bus instance). */
  readonly reset: boolean;
}

/** What a subscription needs from the bus that owns it. */
export interface SubscriptionHost {
  /** Removes the subscription from every index and counter; called exactly once, from close(). */
  detach(subscription: MemorySubscription): void;
  /** Reports an exception thrown by a sink (the subscription is closed after it). */
  sinkFailed(error: unknown): void;
}

/** A memory-bus subscription; the bus creates it, indexes it, then calls `start`. */
export class MemorySubscription extends SinkCalls implements BusSubscription {
  private live = false;
  private draining = false;
  private resetPending = false;
  private position = 0;
  private minSeq = 0;
  // Replay state exists only while replaying: an idle live subscription holds neither.
  private heap: MinHeap<ReplayHead> | undefined;
  private heads: Map<TopicLog, ReplayHead> | undefined;

  constructor(
    /** The exact topic or pattern subscribed to. */
    readonly pattern: string,
    sink: DeliverySink,
    private readonly host: SubscriptionHost,
    /** See BusSubscription.startCursor. */
    readonly startCursor: string,
  ) {
    super(sink, host);
  }

  /** Applies the plan and replays synchronously as far as the sink accepts. */
  start(plan: ReplayPlan): void {
    this.position = plan.position;
    this.minSeq = plan.minSeq;
    this.resetPending = plan.reset;
    for (const h of plan.heads) this.addHead(h.log, h.nextSeq);
    this.drain();
  }

  /** Called by the bus for every published event whose topic matches, in publish order. */
  offer(log: TopicLog, event: StoredEvent, global: number, seq: number): void {
    if (this.closed || global <= this.position || seq < this.minSeq) return;
    if (this.live) {
      this.position = global;
      this.send(event);
      return;
    }
    // Replaying: the event will be read from the log. A head that exists already covers it.
    if (this.heads?.has(log) !== true) this.addHead(log, seq);
  }

  resume(): void {
    this.drain();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.heap = undefined;
    this.heads = undefined;
    this.host.detach(this);
  }

  private addHead(log: TopicLog, nextSeq: number): void {
    const head: ReplayHead = { log, nextSeq, key: headKey(log, nextSeq) };
    (this.heads ??= new Map()).set(log, head);
    (this.heap ??= new MinHeap()).push(head);
  }

  /** Replays while the sink wants more; goes live once every head is exhausted. Reentrant calls are no-ops. */
  private drain(): void {
    if (this.draining || this.live || this.closed) return;
    this.draining = true;
    try {
      while (!this.closed) {
        if (this.resetPending) {
          if (!this.wantsMore()) return;
          this.resetPending = false;
          this.sendGap({ topic: this.pattern, fromSeq: 0n, toSeq: 0n, cause: "reset" });
          continue;
        }
        const heap = this.heap;
        const head = heap?.peek();
        if (head === undefined) {
          // Caught up: every matching event so far was delivered. Later publishes push.
          this.live = true;
          this.heads = undefined;
          this.heap = undefined;
          return;
        }
        if (!this.wantsMore()) return;
        const log = head.log;
        const seq = Math.max(head.nextSeq, log.firstSeq);
        const key = headKey(log, head.nextSeq);
        if (key !== head.key) {
          // Trimmed since the head was keyed: its real position is later; reorder and look again.
          head.key = key;
          heap!.fixTop();
          continue;
        }
        // Update all state before calling out: the sink may publish, resume or close re-entrantly.
        heap!.pop();
        if (log.count === 0) {
          // The bus-wide bound trimmed the rest of this topic and nothing newer exists yet: report
          // what is missing and drop the head; the topic's next publish is offered as usual.
          this.heads?.delete(log);
          this.sendGap({ topic: log.topic, fromSeq: BigInt(head.nextSeq), toSeq: BigInt(log.lastSeq), cause: "trimmed" });
          continue;
        }
        const event = log.at(seq);
        const missedFrom = head.nextSeq;
        head.nextSeq = seq + 1;
        if (head.nextSeq <= log.lastSeq) {
          head.key = log.globalAt(head.nextSeq);
          heap!.push(head);
        } else {
          this.heads?.delete(log);
        }
        this.position = key;
        if (missedFrom < seq) {
          this.sendGap({ topic: log.topic, fromSeq: BigInt(missedFrom), toSeq: BigInt(seq - 1), cause: "trimmed" });
          if (this.closed) return;
        }
        this.send(event);
      }
    } finally {
      this.draining = false;
    }
  }
}

/**
 * Where a head sorts: the global position of its next retained event; for a
 * log the bus-wide bound emptied, that of its newest (trimmed) event, which is
 * older than every retained event, so the gap comes out in publish order.
 */
function headKey(log: TopicLog, nextSeq: number): number {
  return log.count > 0 ? log.globalAt(Math.max(nextSeq, log.firstSeq)) : log.lastGlobal;
}
