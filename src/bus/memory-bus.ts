/**
 * The embedded, in-memory Bus: the default backend. Events live in one
 * bounded ring per topic, under a bus-wide byte bound that trims the
 * globally oldest first; a bus-wide position orders them across topics;
 * live fan-out finds matching subscriptions through a pattern index instead
 * of scanning them; replay and live delivery share one StoredEvent object per
 * event.
 */

import { randomBytes } from "node:crypto";
import { type Bus, BusError, type BusStats, type DeliverySink, type PublishInput, type StoredEvent, type SubscribeSpec } from "./bus.js";
import { encodeCursor } from "./cursor-codec.js";
import { OldestFirst } from "./memory-retention.js";
import { planStart, startCursorOf } from "./memory-start.js";
import { MemorySubscription, type SubscriptionHost } from "./memory-subscription.js";
import { TopicIndex } from "./memory-topic-index.js";
import { PatternIndex } from "./pattern-index.js";
import { patternProblem, topicProblem } from "./topic.js";
import { TopicLog } from "./topic-log.js";

/** Settings of a memory bus. */
export interface MemoryBusOptions {
  /** Events retained per topic (default 10,000). */
  readonly retentionEvents?: number;
  /** Bytes (by StoredEvent.size) retained per topic (default 64 MiB). The newest event is always kept. */
  readonly retentionBytes?: number;
  /** Most topics the bus holds; publishing to one more fails with BusError("exhausted") (default 100,000). */
  readonly maxTopics?: number;
  /**
   * Bytes (by StoredEvent.size) retained across all topics (default 1 GiB). Over it, the globally
   * oldest events are trimmed, whatever their topic, even a topic's only event; the event just
   * published is always kept.
   */
  readonly maxRetainedBytes?: number;
  /** Clock for StoredEvent.timeMs (default Date.now). */
  readonly now?: () => number;
  /** Told about exceptions thrown by a sink; that subscription is closed (default: ignore). */
  readonly onSinkError?: (error: unknown) => void;
}

/** Internal counts, for tests that check nothing lingers. */
export interface MemoryBusInternals {
  /** (pattern, subscription) pairs in the live index. */
  readonly indexedSubscriptions: number;
  /** Nodes of the wildcard trie, root included: 1 when no wildcard subscription is open. */
  readonly trieNodes: number;
  /** Exact topics that have at least one subscription in the index. */
  readonly indexedExactTopics: number;
}

/** A Bus with a view of its internals for tests. */
export interface MemoryBus extends Bus {
  internals(): MemoryBusInternals;
}

/** Per-event overhead added to StoredEvent.size (object, cursor, bookkeeping). */
export const EVENT_OVERHEAD_BYTES = 64;

interface Pending {
  readonly log: TopicLog;
  readonly event: StoredEvent;
  readonly global: number;
  readonly seq: number;
}

/** The result of a synchronous step as a promise: resolved with its value, or rejected with what it threw. */
function settled<T>(step: () => T): Promise<T> {
  try {
    return Promise.resolve(step());
  } catch (error) {
    return Promise.reject(error);
  }
}

/** Creates an in-memory bus. */
export function createMemoryBus(options: MemoryBusOptions = {}): MemoryBus {
  const retentionEvents = positiveInt("retentionEvents", options.retentionEvents ?? 10_000);
  const retentionBytes = positiveInt("retentionBytes", options.retentionBytes ?? 64 * 1024 * 1024);
  const maxTopics = positiveInt("maxTopics", options.maxTopics ?? 100_000);
  const maxRetainedBytes = positiveInt("maxRetainedBytes", options.maxRetainedBytes ?? 1024 * 1024 * 1024);
  const now = options.now ?? Date.now;
  const onSinkError = options.onSinkError;

  const epoch = randomBytes(6).toString("hex");
  const topics = new TopicIndex<TopicLog>();
  const index = new PatternIndex<MemorySubscription>();
  const subscriptions = new Set<MemorySubscription>();
  const oldestFirst = new OldestFirst();
  let head = 0;
  let newest: StoredEvent | undefined;
  let retainedEvents = 0;
  let retainedBytes = 0;
  let closed = false;

  // Publishes made from inside a sink callback are queued and fanned out after the current
  // event, so every subscriber sees events in publish order.
  const fanOutQueue: Pending[] = [];
  const matched: MemorySubscription[] = [];
  let fanningOut = false;

  const host: SubscriptionHost = {
    detach(sub) {
      subscriptions.delete(sub);
      index.remove(sub.pattern, sub);
    },
    sinkFailed(error) {
      onSinkError?.(error);
    },
  };

  const emptyCursor = encodeCursor({ epoch, global: 0, seq: 0, topic: "" });
  function headCursor(): string {
    return newest?.cursor ?? emptyCursor;
  }

  /** Refuse an append to `topic` now: a closed bus, an invalid topic. */
  function checkAppend(topic: string): void {
    if (closed) throw new BusError("unavailable", "bus is closed");
    const problem = topicProblem(topic);
    if (problem !== undefined) throw new BusError("invalid", problem);
  }

  /** Append one event whose topic passed `checkAppend`. */
  function append(topic: string, data: Uint8Array, headers: Readonly<Record<string, string>>): StoredEvent {
    let log = topics.get(topic);
    if (log === undefined) {
      if (topics.size >= maxTopics) {
        throw new BusError("exhausted", `the bus holds the maximum of ${maxTopics} topics; cannot create "${topic}"`);
      }
      log = new TopicLog(topic);
      topics.add(topic, log);
    }
    const ownHeaders: Record<string, string> = {};
    let size = data.length + topic.length + EVENT_OVERHEAD_BYTES;
    for (const [k, v] of Object.entries(headers)) {
      ownHeaders[k] = v;
      size += k.length + v.length;
    }
    const global = head + 1;
    const seq = log.upcomingSeq;
    const event: StoredEvent = Object.freeze({
      topic,
      seq: BigInt(seq),
      cursor: encodeCursor({ epoch, global, seq, topic }),
      data,
      headers: Object.freeze(ownHeaders),
      timeMs: now(),
      size,
    });
    head = global;
    newest = event;
    const wasEmpty = log.count === 0;
    log.append(event, global);
    if (wasEmpty) oldestFirst.add(log);
    retainedEvents++;
    retainedBytes += size;
    const trimmed = log.trimTo(retentionEvents, retentionBytes);
    retainedEvents -= trimmed.events;
    retainedBytes -= trimmed.bytes;
    // The bus-wide bound: the event just published is the newest of all, so it is never the oldest while others remain.
    while (retainedBytes > maxRetainedBytes && retainedEvents > 1) {
      const t = oldestFirst.trimOldest();
      if (t.events === 0) break;
      retainedEvents -= t.events;
      retainedBytes -= t.bytes;
    }
    fanOutQueue.push({ log, event, global, seq });
    fanOut();
    return event;
  }

  /**
   * Append a batch: everything that could refuse one of its events (a closed
   * bus, a bad topic, the topic limit) is checked first, so the appends that
   * follow cannot fail midway; they run in one synchronous step, so no other
   * publish lands between them.
   */
  function appendBatch(events: readonly PublishInput[]): StoredEvent[] {
    const fresh = new Set<string>();
    for (const e of events) {
      checkAppend(e.topic);
      if (topics.get(e.topic) === undefined) fresh.add(e.topic);
    }
    if (fresh.size > 0 && topics.size + fresh.size > maxTopics) {
      throw new BusError("exhausted", `the bus holds ${topics.size} of its maximum of ${maxTopics} topics; cannot create ${fresh.size} more`);
    }
    return events.map((e) => append(e.topic, e.data, e.headers));
  }

  function fanOut(): void {
    if (fanningOut) return;
    fanningOut = true;
    try {
      for (let i = 0; i < fanOutQueue.length; i++) {
        const p = fanOutQueue[i]!;
        matched.length = 0;
        index.collect(p.log.topic, matched);
        for (const sub of matched) sub.offer(p.log, p.event, p.global, p.seq);
      }
    } finally {
      fanOutQueue.length = 0;
      matched.length = 0;
      fanningOut = false;
    }
  }

  return {
    publish(topic, data, headers) {
      return settled(() => {
        checkAppend(topic);
        return append(topic, data, headers);
      });
    },

    publishBatch(events) {
      return settled(() => appendBatch(events));
    },

    subscribe(spec: SubscribeSpec, sink: DeliverySink) {
      if (closed) throw new BusError("unavailable", "bus is closed");
      const problem = patternProblem(spec.pattern);
      if (problem !== undefined) throw new BusError("invalid", problem);
      const ctx = { topics, epoch, head };
      const plan = planStart(spec.pattern, spec.start, ctx);
      const startCursor = spec.start.kind === "live" ? headCursor() : startCursorOf(spec.pattern, spec.start, plan, ctx);
      const sub = new MemorySubscription(spec.pattern, sink, host, startCursor);
      subscriptions.add(sub);
      index.add(spec.pattern, sub);
      sub.start(plan);
      return sub;
    },

    headCursor,

    stats(): BusStats {
      return { subscriptionsActive: subscriptions.size, topics: topics.size, retainedEvents, retainedBytes };
    },

    close() {
      if (!closed) {
        closed = true;
        for (const sub of [...subscriptions]) sub.close();
        topics.clear();
        oldestFirst.clear();
        retainedEvents = 0;
        retainedBytes = 0;
      }
      return Promise.resolve();
    },

    internals() {
      return {
        indexedSubscriptions: index.size,
        trieNodes: index.trieNodes,
        indexedExactTopics: index.exactTopicCount,
      };
    },
  };
}

function positiveInt(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a whole number >= 1, got ${value}`);
  return value;
}
