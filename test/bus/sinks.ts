/**
 * Test sinks for the bus: record every call, optionally accept only a budget
 * of deliveries during replay (like a bounded queue), and run hooks on events.
 */

import type { DeliverySink, GapNotice, StoredEvent } from "../../src/bus/bus.js";

/** One thing a sink received, in order. */
export type Received = { readonly kind: "event"; readonly event: StoredEvent } | { readonly kind: "gap"; readonly gap: GapNotice };

/** A DeliverySink that records what it gets. */
export interface RecordingSink extends DeliverySink {
  readonly received: Received[];
  /** Calls to any sink method, wantsMore included. */
  calls: number;
  /** Remaining deliveries wanted; Infinity for an unbounded sink. */
  budget: number;
  /** Called after each event is recorded. */
  onEvent: ((event: StoredEvent) => void) | undefined;
  events(): StoredEvent[];
  gaps(): GapNotice[];
  /** "topic#seq" of every event received. */
  ids(): string[];
}

/** Creates a recording sink; `budget` bounds how many deliveries it wants before more budget is granted. */
export function recordingSink(budget = Number.POSITIVE_INFINITY): RecordingSink {
  const sink: RecordingSink = {
    received: [],
    calls: 0,
    budget,
    onEvent: undefined,
    event(event) {
      sink.calls++;
      sink.budget--;
      sink.received.push({ kind: "event", event });
      sink.onEvent?.(event);
    },
    gap(gap) {
      sink.calls++;
      sink.received.push({ kind: "gap", gap });
    },
    wantsMore() {
      sink.calls++;
      return sink.budget > 0;
    },
    events() {
      return sink.received.flatMap((r) => (r.kind === "event" ? [r.event] : []));
    },
    gaps() {
      return sink.received.flatMap((r) => (r.kind === "gap" ? [r.gap] : []));
    },
    ids() {
      return sink.events().map((e) => `${e.topic}#${e.seq}`);
    },
  };
  return sink;
}

/** Encodes a string as event data. */
export function bytes(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** Decodes event data. */
export function text(event: StoredEvent): string {
  return new TextDecoder().decode(event.data);
}

/** Small deterministic PRNG (mulberry32) so failures reproduce. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
