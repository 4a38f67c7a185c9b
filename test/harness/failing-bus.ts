/**
 * A Bus that is the memory bus, except that the test can make the backend
 * fail the live subscriptions of a topic (DeliverySink.fail), the way a Redis
 * bus fails a subscription whose connection is gone for good.
 */
import { BusError, type Bus, type BusSubscription, type DeliverySink } from "../../src/bus/bus.js";
import { createMemoryBus, type MemoryBus } from "../../src/bus/memory-bus.js";

/** The wrapped bus and the switch. */
export interface FailingBus extends Bus {
  readonly inner: MemoryBus;
  /** Live subscriptions whose pattern is `pattern`. */
  subscribersOf(pattern: string): number;
  /** Close the subscriptions on `pattern` and tell their sinks the backend failed; returns how many. */
  failSubscriptions(pattern: string, error?: BusError): number;
}

/** Wrap a fresh memory bus. */
export function createFailingBus(inner: MemoryBus = createMemoryBus()): FailingBus {
  const live = new Map<BusSubscription, { pattern: string; sink: DeliverySink }>();
  return {
    inner,
    publish: (topic, data, headers) => inner.publish(topic, data, headers),
    publishBatch: (events) => inner.publishBatch(events),
    headCursor: () => inner.headCursor(),
    stats: () => inner.stats(),
    close: () => inner.close(),
    subscribe(spec, sink) {
      const sub = inner.subscribe(spec, sink);
      const wrapped: BusSubscription = {
        startCursor: sub.startCursor,
        resume: () => sub.resume(),
        close: () => {
          live.delete(wrapped);
          sub.close();
        },
      };
      live.set(wrapped, { pattern: spec.pattern, sink });
      return wrapped;
    },
    subscribersOf(pattern) {
      let n = 0;
      for (const s of live.values()) if (s.pattern === pattern) n++;
      return n;
    },
    failSubscriptions(pattern, error = new BusError("unavailable", "backend connection lost for good")) {
      let n = 0;
      for (const [sub, s] of [...live]) {
        if (s.pattern !== pattern) continue;
        sub.close(); // the bus closes the subscription first, as DeliverySink.fail documents
        s.sink.fail?.(error);
        n++;
      }
      return n;
    },
  };
}
