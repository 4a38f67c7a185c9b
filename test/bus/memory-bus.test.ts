import { describe, expect, it } from "vitest";
import { BusError, type BusSubscription, type StartPosition } from "../../src/bus/bus.js";
import { createMemoryBus, type MemoryBus } from "../../src/bus/memory-bus.js";
import { bytes, recordingSink, text } from "./sinks.js";

const live: StartPosition = { kind: "live" };

async function publishAll(bus: MemoryBus, items: readonly (readonly [string, string])[]): Promise<void> {
  for (const [topic, data] of items) await bus.publish(topic, bytes(data), {});
}

describe("memory bus: publish", () => {
  it("counts seq per topic from 1 and computes size from data, topic and headers", async () => {
    const bus = createMemoryBus({ now: () => 1234 });
    const a1 = await bus.publish("a", bytes("hello"), { k: "vv" });
    const b1 = await bus.publish("b.c", bytes(""), {});
    const a2 = await bus.publish("a", bytes("x"), {});
    expect([a1.seq, b1.seq, a2.seq]).toEqual([1n, 1n, 2n]);
    expect(a1.size).toBe(5 + 1 + 1 + 2 + 64);
    expect(b1.size).toBe(0 + 3 + 64);
    expect(a1.timeMs).toBe(1234);
    expect(a1.headers).toEqual({ k: "vv" });
    expect(new Set([a1.cursor, b1.cursor, a2.cursor]).size).toBe(3);
    expect(bus.headCursor()).toBe(a2.cursor);
    expect(bus.stats()).toEqual({ subscriptionsActive: 0, topics: 2, retainedEvents: 3, retainedBytes: a1.size + b1.size + a2.size });
  });

  it("delivers synchronously inside publish, sharing one event object among subscribers", async () => {
    const bus = createMemoryBus();
    const s1 = recordingSink();
    const s2 = recordingSink();
    bus.subscribe({ pattern: "t", start: live }, s1);
    bus.subscribe({ pattern: ">", start: live }, s2);
    const pending = bus.publish("t", bytes("x"), {});
    expect(s1.events()).toHaveLength(1);
    expect(s2.events()).toHaveLength(1);
    const event = await pending;
    expect(s1.events()[0]).toBe(event);
    expect(s2.events()[0]).toBe(event);
    expect(Object.isFrozen(event)).toBe(true);
  });

  it("copies headers so a later change by the caller does not alter the stored event", async () => {
    const bus = createMemoryBus();
    const headers: Record<string, string> = { a: "1" };
    const event = await bus.publish("t", bytes("x"), headers);
    headers.a = "2";
    expect(event.headers).toEqual({ a: "1" });
  });

  it("rejects invalid topics with BusError invalid", async () => {
    const bus = createMemoryBus();
    await expect(bus.publish("a.*", bytes("x"), {})).rejects.toMatchObject({ name: "BusError", kind: "invalid" });
    await expect(bus.publish("", bytes("x"), {})).rejects.toMatchObject({ kind: "invalid" });
    await expect(bus.publish("a..b", bytes("x"), {})).rejects.toMatchObject({ kind: "invalid" });
  });

  it("refuses to create a topic beyond maxTopics with BusError exhausted, existing topics still work", async () => {
    const bus = createMemoryBus({ maxTopics: 2 });
    await bus.publish("a", bytes("1"), {});
    await bus.publish("b", bytes("1"), {});
    const err = await bus.publish("c", bytes("1"), {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BusError);
    expect((err as BusError).kind).toBe("exhausted");
    expect((await bus.publish("a", bytes("2"), {})).seq).toBe(2n);
    expect(bus.stats().topics).toBe(2);
  });

  it("keeps publish order for every subscriber when a sink publishes from inside a callback", async () => {
    const bus = createMemoryBus();
    const first = recordingSink();
    const second = recordingSink();
    let once = true;
    first.onEvent = () => {
      if (once) {
        once = false;
        void bus.publish("t", bytes("2"), {});
      }
    };
    bus.subscribe({ pattern: "t", start: live }, first);
    bus.subscribe({ pattern: "t", start: live }, second);
    await bus.publish("t", bytes("1"), {});
    expect(first.events().map(text)).toEqual(["1", "2"]);
    expect(second.events().map(text)).toEqual(["1", "2"]);
  });
});

describe("memory bus: pattern matching", () => {
  it("matches exact topics, * for one token and > for one or more trailing tokens", async () => {
    const bus = createMemoryBus();
    const patterns = ["a.b.c", "a.*.c", "a.>", "*.b", "a.*", ">", "*", "a.b.c.>", "*.*.*"];
    const sinks = new Map(patterns.map((p) => [p, recordingSink()] as const));
    for (const [p, s] of sinks) bus.subscribe({ pattern: p, start: live }, s);
    await publishAll(bus, [
      ["a", "1"],
      ["a.b", "2"],
      ["a.b.c", "3"],
      ["a.x.c", "4"],
      ["a.b.c.d", "5"],
      ["x.b", "6"],
      ["x.b.c", "7"],
    ]);
    const got = (p: string) => sinks.get(p)!.events().map((e) => e.topic);
    expect(got("a.b.c")).toEqual(["a.b.c"]);
    expect(got("a.*.c")).toEqual(["a.b.c", "a.x.c"]);
    expect(got("a.>")).toEqual(["a.b", "a.b.c", "a.x.c", "a.b.c.d"]);
    expect(got("*.b")).toEqual(["a.b", "x.b"]);
    expect(got("a.*")).toEqual(["a.b"]);
    expect(got(">")).toEqual(["a", "a.b", "a.b.c", "a.x.c", "a.b.c.d", "x.b", "x.b.c"]);
    expect(got("*")).toEqual(["a"]);
    expect(got("a.b.c.>")).toEqual(["a.b.c.d"]);
    expect(got("*.*.*")).toEqual(["a.b.c", "a.x.c", "x.b.c"]);
  });

  it("replays history through the same matching rules", async () => {
    const bus = createMemoryBus();
    await publishAll(bus, [
      ["a", "1"],
      ["a.b", "2"],
      ["a.b.c", "3"],
      ["x.b", "4"],
    ]);
    const topicsFor = (pattern: string) => {
      const s = recordingSink();
      bus.subscribe({ pattern, start: { kind: "earliest" } }, s);
      return s.events().map((e) => e.topic);
    };
    expect(topicsFor("a.>")).toEqual(["a.b", "a.b.c"]);
    expect(topicsFor("*.b")).toEqual(["a.b", "x.b"]);
    expect(topicsFor("a")).toEqual(["a"]);
    expect(topicsFor("a.b.c.d")).toEqual([]);
    expect(topicsFor(">")).toEqual(["a", "a.b", "a.b.c", "x.b"]);
  });

  it("rejects an invalid pattern with BusError invalid", () => {
    const bus = createMemoryBus();
    expect(() => bus.subscribe({ pattern: "a.>.b", start: live }, recordingSink())).toThrow(
      expect.objectContaining({ kind: "invalid" }),
    );
  });

  it("reaches only the one matching subscriber among 10,000 on distinct exact topics", async () => {
    const bus = createMemoryBus();
    const sinks = [];
    for (let i = 0; i < 10_000; i++) {
      const s = recordingSink();
      sinks.push(s);
      bus.subscribe({ pattern: `t.${i}`, start: live }, s);
    }
    await bus.publish("t.5000", bytes("x"), {});
    expect(sinks.reduce((n, s) => n + s.calls, 0)).toBe(1);
    expect(sinks[5000]!.ids()).toEqual(["t.5000#1"]);
    expect(bus.stats().subscriptionsActive).toBe(10_000);
  });
});

describe("memory bus: start positions", () => {
  async function seeded(): Promise<MemoryBus> {
    const bus = createMemoryBus();
    await publishAll(bus, [
      ["o.a", "1"],
      ["o.b", "2"],
      ["o.a", "3"],
      ["p", "4"],
      ["o.b", "5"],
      ["o.a", "6"],
    ]);
    return bus;
  }

  it("live: only events published after subscribe", async () => {
    const bus = await seeded();
    const s = recordingSink();
    bus.subscribe({ pattern: "o.>", start: live }, s);
    expect(s.received).toEqual([]);
    await bus.publish("o.c", bytes("7"), {});
    expect(s.ids()).toEqual(["o.c#1"]);
  });

  it("earliest: every retained matching event in global order, then live", async () => {
    const bus = await seeded();
    const s = recordingSink();
    bus.subscribe({ pattern: "o.*", start: { kind: "earliest" } }, s);
    await bus.publish("o.b", bytes("7"), {});
    expect(s.events().map(text)).toEqual(["1", "2", "3", "5", "6", "7"]);
    expect(s.gaps()).toEqual([]);
  });

  it("last N: the newest N across matching topics, then live", async () => {
    const bus = await seeded();
    const s = recordingSink();
    bus.subscribe({ pattern: "o.*", start: { kind: "last", count: 3 } }, s);
    expect(s.events().map(text)).toEqual(["3", "5", "6"]);
    await bus.publish("o.a", bytes("7"), {});
    expect(s.events().map(text)).toEqual(["3", "5", "6", "7"]);
  });

  it("last N on an exact topic, last larger than retained, and last 0 (live)", async () => {
    const bus = await seeded();
    const exact = recordingSink();
    bus.subscribe({ pattern: "o.a", start: { kind: "last", count: 2 } }, exact);
    expect(exact.ids()).toEqual(["o.a#2", "o.a#3"]);
    const all = recordingSink();
    bus.subscribe({ pattern: "o.>", start: { kind: "last", count: 100 } }, all);
    expect(all.events().map(text)).toEqual(["1", "2", "3", "5", "6"]);
    const none = recordingSink();
    bus.subscribe({ pattern: "o.>", start: { kind: "last", count: 0 } }, none);
    expect(none.received).toEqual([]);
    await bus.publish("o.a", bytes("7"), {});
    expect(none.events().map(text)).toEqual(["7"]);
  });

  it("last N rejects a negative or fractional count", async () => {
    const bus = await seeded();
    for (const count of [-1, 1.5]) {
      expect(() => bus.subscribe({ pattern: "o.a", start: { kind: "last", count } }, recordingSink())).toThrow(
        expect.objectContaining({ kind: "invalid" }),
      );
    }
  });

  it("fromSeq: events with seq >= S, then live", async () => {
    const bus = await seeded();
    const s = recordingSink();
    bus.subscribe({ pattern: "o.a", start: { kind: "fromSeq", seq: 2n } }, s);
    expect(s.ids()).toEqual(["o.a#2", "o.a#3"]);
    await bus.publish("o.a", bytes("7"), {});
    expect(s.ids()).toEqual(["o.a#2", "o.a#3", "o.a#4"]);
    expect(s.gaps()).toEqual([]);
  });

  it("fromSeq beyond head+1 waits for that seq; on an unknown topic too", async () => {
    const bus = await seeded();
    const s = recordingSink();
    bus.subscribe({ pattern: "o.a", start: { kind: "fromSeq", seq: 6n } }, s);
    const fresh = recordingSink();
    bus.subscribe({ pattern: "new", start: { kind: "fromSeq", seq: 2n } }, fresh);
    for (let i = 0; i < 4; i++) await bus.publish("o.a", bytes("x"), {});
    await bus.publish("new", bytes("x"), {});
    await bus.publish("new", bytes("y"), {});
    expect(s.ids()).toEqual(["o.a#6", "o.a#7"]);
    expect(fresh.ids()).toEqual(["new#2"]);
  });

  it("fromSeq at head+1 is live", async () => {
    const bus = await seeded();
    const s = recordingSink();
    bus.subscribe({ pattern: "o.a", start: { kind: "fromSeq", seq: 4n } }, s);
    expect(s.received).toEqual([]);
    await bus.publish("o.a", bytes("x"), {});
    expect(s.ids()).toEqual(["o.a#4"]);
  });

  it("fromSeq on a pattern or fromSeq 0 is BusError invalid", async () => {
    const bus = await seeded();
    expect(() => bus.subscribe({ pattern: "o.*", start: { kind: "fromSeq", seq: 1n } }, recordingSink())).toThrow(
      /from_seq needs an exact topic, not a pattern like "o\.\*"/,
    );
    expect(() => bus.subscribe({ pattern: "o.a", start: { kind: "fromSeq", seq: 0n } }, recordingSink())).toThrow(
      expect.objectContaining({ name: "BusError", kind: "invalid" }),
    );
    expect(bus.stats().subscriptionsActive).toBe(0);
  });
});

describe("memory bus: retention and gaps", () => {
  it("trims by event count and reports the exact trimmed range to fromSeq", async () => {
    const bus = createMemoryBus({ retentionEvents: 3 });
    for (let i = 1; i <= 5; i++) await bus.publish("t", bytes(String(i)), {});
    expect(bus.stats().retainedEvents).toBe(3);
    const s1 = recordingSink();
    bus.subscribe({ pattern: "t", start: { kind: "fromSeq", seq: 1n } }, s1);
    expect(s1.received.map((r) => (r.kind === "gap" ? r.gap : `t#${r.event.seq}`))).toEqual([
      { topic: "t", fromSeq: 1n, toSeq: 2n, cause: "trimmed" },
      "t#3",
      "t#4",
      "t#5",
    ]);
    const s2 = recordingSink();
    bus.subscribe({ pattern: "t", start: { kind: "fromSeq", seq: 2n } }, s2);
    expect(s2.gaps()).toEqual([{ topic: "t", fromSeq: 2n, toSeq: 2n, cause: "trimmed" }]);
    const s3 = recordingSink();
    bus.subscribe({ pattern: "t", start: { kind: "fromSeq", seq: 3n } }, s3);
    expect(s3.gaps()).toEqual([]);
    expect(s3.ids()).toEqual(["t#3", "t#4", "t#5"]);
  });

  it("trims by bytes, keeping at least the newest event", async () => {
    // Each event: 10 data bytes + 1 topic char + 64 = 75 bytes.
    const bus = createMemoryBus({ retentionBytes: 200 });
    for (let i = 1; i <= 5; i++) await bus.publish("t", bytes("0123456789"), {});
    expect(bus.stats()).toMatchObject({ retainedEvents: 2, retainedBytes: 150 });
    const s = recordingSink();
    bus.subscribe({ pattern: "t", start: { kind: "fromSeq", seq: 1n } }, s);
    expect(s.gaps()).toEqual([{ topic: "t", fromSeq: 1n, toSeq: 3n, cause: "trimmed" }]);
    expect(s.ids()).toEqual(["t#4", "t#5"]);
    await bus.publish("t", new Uint8Array(1000), {});
    expect(bus.stats()).toMatchObject({ retainedEvents: 1, retainedBytes: 1065 });
  });

  it("earliest after trimming starts at the first retained event without a gap", async () => {
    const bus = createMemoryBus({ retentionEvents: 2 });
    for (let i = 1; i <= 5; i++) await bus.publish("t", bytes(String(i)), {});
    const s = recordingSink();
    bus.subscribe({ pattern: "t", start: { kind: "earliest" } }, s);
    expect(s.received.map((r) => r.kind)).toEqual(["event", "event"]);
    expect(s.ids()).toEqual(["t#4", "t#5"]);
  });

  it("reports a gap when the log is trimmed past a paused replay, then continues", async () => {
    const bus = createMemoryBus({ retentionEvents: 3 });
    for (let i = 1; i <= 3; i++) await bus.publish("t", bytes(String(i)), {});
    const s = recordingSink(1);
    const sub = bus.subscribe({ pattern: "t", start: { kind: "earliest" } }, s);
    expect(s.ids()).toEqual(["t#1"]);
    for (let i = 4; i <= 8; i++) await bus.publish("t", bytes(String(i)), {});
    expect(s.ids()).toEqual(["t#1"]);
    s.budget = Number.POSITIVE_INFINITY;
    sub.resume();
    expect(s.received.slice(1).map((r) => (r.kind === "gap" ? r.gap : `t#${r.event.seq}`))).toEqual([
      { topic: "t", fromSeq: 2n, toSeq: 5n, cause: "trimmed" },
      "t#6",
      "t#7",
      "t#8",
    ]);
    await bus.publish("t", bytes("9"), {});
    expect(s.ids().at(-1)).toBe("t#9");
  });
});

describe("memory bus: subscription lifecycle", () => {
  it("counts open subscriptions exactly; close is idempotent and stops deliveries", async () => {
    const bus = createMemoryBus();
    const s = recordingSink();
    const sub = bus.subscribe({ pattern: "a.>", start: live }, s);
    const sub2 = bus.subscribe({ pattern: "a.b", start: live }, recordingSink());
    expect(bus.stats().subscriptionsActive).toBe(2);
    sub.close();
    sub.close();
    expect(bus.stats().subscriptionsActive).toBe(1);
    await bus.publish("a.b", bytes("x"), {});
    expect(s.calls).toBe(0);
    sub2.close();
    expect(bus.stats().subscriptionsActive).toBe(0);
    expect(bus.internals()).toEqual({ indexedSubscriptions: 0, trieNodes: 1, indexedExactTopics: 0 });
  });

  it("prunes trie nodes as wildcard subscriptions close", () => {
    const bus = createMemoryBus();
    const s1 = bus.subscribe({ pattern: "a.*.c", start: live }, recordingSink());
    expect(bus.internals().trieNodes).toBe(4);
    const s2 = bus.subscribe({ pattern: "a.b.*", start: live }, recordingSink());
    expect(bus.internals().trieNodes).toBe(6);
    const s3 = bus.subscribe({ pattern: "a.>", start: live }, recordingSink());
    expect(bus.internals().trieNodes).toBe(6);
    s1.close();
    expect(bus.internals().trieNodes).toBe(4);
    s3.close();
    expect(bus.internals().trieNodes).toBe(4);
    s2.close();
    expect(bus.internals()).toEqual({ indexedSubscriptions: 0, trieNodes: 1, indexedExactTopics: 0 });
  });

  it("never calls a sink again after close() from inside a fan-out callback", async () => {
    const bus = createMemoryBus();
    const closer = recordingSink();
    const victimA = recordingSink();
    const victimB = recordingSink();
    bus.subscribe({ pattern: "t", start: live }, closer);
    const subA = bus.subscribe({ pattern: "t.>", start: live }, victimA);
    const subB = bus.subscribe({ pattern: ">", start: live }, victimB);
    // "t" is an exact subscription and is reached first; it closes the other two before they are.
    closer.onEvent = () => {
      subA.close();
      subB.close();
    };
    await bus.publish("t", bytes("x"), {});
    await bus.publish("t.x", bytes("x"), {});
    expect(closer.calls).toBe(1);
    expect(victimA.calls).toBe(0);
    expect(victimB.calls).toBe(0);
    expect(bus.stats().subscriptionsActive).toBe(1);
  });

  it("lets a live subscription close itself from its own callback", async () => {
    const bus = createMemoryBus();
    const s = recordingSink();
    const sub = bus.subscribe({ pattern: "t", start: live }, s);
    s.onEvent = () => sub.close();
    await bus.publish("t", bytes("x"), {});
    await bus.publish("t", bytes("y"), {});
    expect(s.events().map(text)).toEqual(["x"]);
    expect(bus.stats().subscriptionsActive).toBe(0);
    expect(bus.internals().indexedSubscriptions).toBe(0);
  });

  it("stops a replay at once when the sink closes the subscription mid-replay", async () => {
    const bus = createMemoryBus();
    for (let i = 0; i < 5; i++) await bus.publish("t", bytes(String(i)), {});
    const s = recordingSink();
    const holder: { sub?: BusSubscription } = {};
    s.onEvent = () => {
      if (s.events().length === 2) holder.sub?.close();
    };
    // Pause after one delivery so `holder.sub` is set before the closing callback runs.
    s.budget = 1;
    holder.sub = bus.subscribe({ pattern: "t", start: { kind: "earliest" } }, s);
    s.budget = Number.POSITIVE_INFINITY;
    holder.sub.resume();
    expect(s.events().map(text)).toEqual(["0", "1"]);
    expect(bus.stats().subscriptionsActive).toBe(0);
    await bus.publish("t", bytes("x"), {});
    expect(s.events()).toHaveLength(2);
  });

  it("closes a throwing sink's subscription without affecting the others", async () => {
    const errors: unknown[] = [];
    const bus = createMemoryBus({ onSinkError: (e) => errors.push(e) });
    const before = recordingSink();
    const after = recordingSink();
    const failures: BusError[] = [];
    let thrown = 0;
    bus.subscribe({ pattern: "t", start: live }, before);
    bus.subscribe(
      { pattern: "t", start: live },
      {
        event() {
          thrown++;
          throw new Error("boom");
        },
        gap() {},
        wantsMore: () => true,
        fail: (e) => failures.push(e),
      },
    );
    bus.subscribe({ pattern: ">", start: live }, after);
    await bus.publish("t", bytes("1"), {});
    await bus.publish("t", bytes("2"), {});
    expect(before.events().map(text)).toEqual(["1", "2"]);
    expect(after.events().map(text)).toEqual(["1", "2"]);
    expect(errors).toHaveLength(1);
    expect(thrown).toBe(1);
    // The sink is told once, so its stream can end instead of idling.
    expect(failures.map((f) => [f.kind, f.message])).toEqual([["unavailable", "bus subscription closed: its sink threw (boom)"]]);
    expect(bus.stats().subscriptionsActive).toBe(2);
  });

  it("closes a subscription whose wantsMore throws during replay", async () => {
    const bus = createMemoryBus();
    await bus.publish("t", bytes("1"), {});
    const sub = bus.subscribe(
      { pattern: "t", start: { kind: "earliest" } },
      {
        event() {},
        gap() {},
        wantsMore() {
          throw new Error("boom");
        },
      },
    );
    void sub;
    expect(bus.stats().subscriptionsActive).toBe(0);
  });

  it("close() closes every subscription; later publish and subscribe fail with unavailable", async () => {
    const bus = createMemoryBus();
    const s = recordingSink();
    bus.subscribe({ pattern: ">", start: live }, s);
    await bus.publish("t", bytes("1"), {});
    await bus.close();
    await bus.close();
    expect(bus.stats().subscriptionsActive).toBe(0);
    await expect(bus.publish("t", bytes("2"), {})).rejects.toMatchObject({ kind: "unavailable", message: "bus is closed" });
    expect(() => bus.subscribe({ pattern: "t", start: live }, recordingSink())).toThrow(
      expect.objectContaining({ kind: "unavailable" }),
    );
    expect(s.events()).toHaveLength(1);
  });
});
