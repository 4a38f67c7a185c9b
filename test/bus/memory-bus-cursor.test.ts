import { describe, expect, it } from "vitest";
import { BusError, type StoredEvent } from "../../src/bus/bus.js";
import { decodeCursor, encodeCursor } from "../../src/bus/cursor-codec.js";
import { createMemoryBus, type MemoryBus } from "../../src/bus/memory-bus.js";
import { bytes, recordingSink, text } from "./sinks.js";

function after(cursor: string) {
  return { kind: "afterCursor", cursor } as const;
}

function entries(s: ReturnType<typeof recordingSink>): unknown[] {
  return s.received.map((r) => (r.kind === "gap" ? r.gap : `${r.event.topic}#${r.event.seq}`));
}

function invalid(bus: MemoryBus, pattern: string, cursor: string): BusError {
  try {
    bus.subscribe({ pattern, start: after(cursor) }, recordingSink());
  } catch (error) {
    expect(error).toBeInstanceOf(BusError);
    expect((error as BusError).kind).toBe("invalid");
    expect(bus.stats().subscriptionsActive).toBe(0);
    return error as BusError;
  }
  throw new Error("subscribe did not throw");
}

describe("memory bus: cursors", () => {
  it("resumes after the last cursor with exactly the missed events, in order", async () => {
    const bus = createMemoryBus();
    const first = recordingSink();
    const sub = bus.subscribe({ pattern: "orders.>", start: { kind: "live" } }, first);
    first.onEvent = () => {
      if (first.events().length === 3) sub.close();
    };
    const all: StoredEvent[] = [];
    const topics = ["orders.eu", "orders.us", "other", "orders.eu", "orders.us.west", "orders.eu"];
    for (const [i, t] of topics.entries()) all.push(await bus.publish(t, bytes(String(i)), {}));
    expect(first.events().map(text)).toEqual(["0", "1", "3"]);
    const last = first.events().at(-1)!;
    for (const t of ["orders.us", "other", "orders.eu"]) all.push(await bus.publish(t, bytes(t), {}));

    const second = recordingSink();
    bus.subscribe({ pattern: "orders.>", start: after(last.cursor) }, second);
    await bus.publish("orders.new", bytes("live"), {});
    const expected = all.filter((e, i) => e.topic.startsWith("orders.") && i > 3);
    expect(second.events().slice(0, -1)).toEqual(expected);
    expect(second.events().map(text).at(-1)).toBe("live");
    expect(second.gaps()).toEqual([]);
  });

  it("the empty bus's head cursor resumes from the very first event, without a gap", async () => {
    const bus = createMemoryBus();
    const head = bus.headCursor();
    expect(decodeCursor(head)).toMatchObject({ global: 0, seq: 0, topic: "" });
    await bus.publish("a", bytes("1"), {});
    await bus.publish("b", bytes("2"), {});
    const s = recordingSink();
    bus.subscribe({ pattern: ">", start: after(head) }, s);
    expect(entries(s)).toEqual(["a#1", "b#1"]);
  });

  it("the head cursor of a busy bus means live", async () => {
    const bus = createMemoryBus();
    await bus.publish("a", bytes("1"), {});
    const s = recordingSink();
    bus.subscribe({ pattern: ">", start: after(bus.headCursor()) }, s);
    expect(s.received).toEqual([]);
    await bus.publish("a", bytes("2"), {});
    expect(entries(s)).toEqual(["a#2"]);
  });

  it("a cursor from another bus instance gives a reset gap, then everything retained", async () => {
    const old = createMemoryBus();
    const stale = (await old.publish("t.x", bytes("old"), {})).cursor;
    const bus = createMemoryBus();
    await bus.publish("t.x", bytes("1"), {});
    await bus.publish("t.y", bytes("2"), {});
    const s = recordingSink();
    bus.subscribe({ pattern: "t.*", start: after(stale) }, s);
    expect(entries(s)).toEqual([{ topic: "t.*", fromSeq: 0n, toSeq: 0n, cause: "reset" }, "t.x#1", "t.y#1"]);
    const empty = recordingSink();
    createMemoryBus().subscribe({ pattern: "t.x", start: after(stale) }, empty);
    expect(entries(empty)).toEqual([{ topic: "t.x", fromSeq: 0n, toSeq: 0n, cause: "reset" }]);
  });

  it("rejects malformed cursors, ahead-of-head cursors and cursors naming no event", async () => {
    const bus = createMemoryBus();
    const e = await bus.publish("t", bytes("1"), {});
    const parts = decodeCursor(e.cursor);
    if (typeof parts === "string") throw new Error(parts);
    expect(invalid(bus, "t", "").message).toMatch(/empty/);
    expect(invalid(bus, "t", "not a cursor!").message).toMatch(/not a runnel cursor/);
    expect(invalid(bus, "t", Buffer.from("hello").toString("base64url")).message).toMatch(/not a runnel cursor/);
    expect(invalid(bus, "t", `${e.cursor}=`).message).toMatch(/not a runnel cursor/);
    expect(invalid(bus, "t", Buffer.from(`m1:${parts.epoch}:x:1:t`).toString("base64url")).message).toMatch(
      /not a runnel cursor/,
    );
    expect(invalid(bus, "t", encodeCursor({ ...parts, global: 2 })).message).toMatch(/cursor is ahead of/);
    expect(invalid(bus, "t", encodeCursor({ ...parts, topic: "nope" })).message).toMatch(/does not match/);
    await bus.publish("t", bytes("2"), {});
    expect(invalid(bus, "t", encodeCursor({ ...parts, seq: 2 })).message).toMatch(/does not match/);
  });

  it("gap for the cursor's own topic starts exactly after the cursor's seq", async () => {
    const bus = createMemoryBus({ retentionEvents: 3 });
    await bus.publish("a", bytes("1"), {});
    const c = (await bus.publish("a", bytes("2"), {})).cursor;
    for (let i = 3; i <= 7; i++) await bus.publish("a", bytes(String(i)), {});
    const s = recordingSink();
    bus.subscribe({ pattern: "a", start: after(c) }, s);
    expect(entries(s)).toEqual([{ topic: "a", fromSeq: 3n, toSeq: 4n, cause: "trimmed" }, "a#5", "a#6", "a#7"]);
  });

  it("gap for a topic created after the cursor starts at seq 1", async () => {
    const bus = createMemoryBus({ retentionEvents: 3 });
    const c = (await bus.publish("x.a", bytes("1"), {})).cursor;
    for (let i = 1; i <= 5; i++) await bus.publish("x.b", bytes(String(i)), {});
    const s = recordingSink();
    bus.subscribe({ pattern: "x.>", start: after(c) }, s);
    expect(entries(s)).toEqual([{ topic: "x.b", fromSeq: 1n, toSeq: 2n, cause: "trimmed" }, "x.b#3", "x.b#4", "x.b#5"]);
  });

  it("gap for another older topic uses its trim checkpoints (exact while few were trimmed)", async () => {
    const bus = createMemoryBus({ retentionEvents: 3 });
    await bus.publish("x.b", bytes("1"), {}); // global 1
    await bus.publish("x.b", bytes("2"), {}); // global 2
    const c = (await bus.publish("x.a", bytes("1"), {})).cursor; // global 3
    for (let i = 3; i <= 8; i++) await bus.publish("x.b", bytes(String(i)), {});
    const s = recordingSink();
    bus.subscribe({ pattern: "x.*", start: after(c) }, s);
    expect(entries(s)).toEqual([{ topic: "x.b", fromSeq: 3n, toSeq: 5n, cause: "trimmed" }, "x.b#6", "x.b#7", "x.b#8"]);
  });

  it("no gap when the other topic's trimmed events all precede the cursor", async () => {
    const bus = createMemoryBus({ retentionEvents: 3 });
    for (let i = 1; i <= 3; i++) await bus.publish("x.b", bytes(String(i)), {});
    const c = (await bus.publish("x.a", bytes("1"), {})).cursor;
    for (let i = 4; i <= 6; i++) await bus.publish("x.b", bytes(String(i)), {});
    const s = recordingSink();
    bus.subscribe({ pattern: "x.*", start: after(c) }, s);
    expect(entries(s)).toEqual(["x.b#4", "x.b#5", "x.b#6"]);
  });

  it("after long trimming, the gap for another topic is a bounded-error lower bound with an exact end", async () => {
    const bus = createMemoryBus({ retentionEvents: 1 });
    for (let i = 1; i <= 1000; i++) await bus.publish("b", bytes("x"), {});
    const c = (await bus.publish("a", bytes("x"), {})).cursor;
    for (let i = 1001; i <= 1100; i++) await bus.publish("b", bytes("x"), {});
    const s = recordingSink();
    bus.subscribe({ pattern: "*", start: after(c) }, s);
    const [gap] = s.gaps();
    expect(gap).toBeDefined();
    expect(gap!.topic).toBe("b");
    expect(gap!.toSeq).toBe(1099n);
    // The true first missed seq is 1001; the checkpoints may only report earlier, by less than a stride.
    expect(gap!.fromSeq).toBeLessThanOrEqual(1001n);
    expect(gap!.fromSeq).toBeGreaterThan(1001n - 128n);
    expect(s.ids()).toEqual(["b#1100"]);
  });
});
