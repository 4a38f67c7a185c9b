import { describe, expect, it } from "vitest";
import type { StartPosition } from "../../src/bus/bus.js";
import { createMemoryBus } from "../../src/bus/memory-bus.js";
import { recordingSink } from "./sinks.js";

const data = new Uint8Array([1]);

/** Resuming after a subscription's start cursor delivers exactly what the subscription itself delivered. */
async function expectEquivalent(pattern: string, start: StartPosition, retentionEvents = 100): Promise<void> {
  const bus = createMemoryBus({ retentionEvents });
  for (let i = 0; i < 6; i++) await bus.publish(`sc.${i % 2 === 0 ? "a" : "b"}`, data, {});
  const direct = recordingSink();
  const sub = bus.subscribe({ pattern, start }, direct);
  expect(sub.startCursor).not.toBe("");
  const resumed = recordingSink();
  const again = bus.subscribe({ pattern, start: { kind: "afterCursor", cursor: sub.startCursor } }, resumed);
  await bus.publish("sc.a", data, {});
  expect(resumed.ids()).toEqual(direct.ids());
  expect(resumed.gaps()).toEqual(direct.gaps());
  sub.close();
  again.close();
}

describe("memory bus start cursors", () => {
  it("live: the head cursor", async () => {
    const bus = createMemoryBus();
    const e = await bus.publish("sc.a", data, {});
    const sub = bus.subscribe({ pattern: "sc.a", start: { kind: "live" } }, recordingSink());
    expect(sub.startCursor).toBe(e.cursor);
    sub.close();
  });
  it("earliest on a pattern", () => expectEquivalent("sc.*", { kind: "earliest" }));
  it("last N across topics", () => expectEquivalent("sc.>", { kind: "last", count: 3 }));
  it("from_seq inside retention", () => expectEquivalent("sc.a", { kind: "fromSeq", seq: 2n }));
  it("from_seq 1", () => expectEquivalent("sc.b", { kind: "fromSeq", seq: 1n }));
  it("from_seq below retention keeps the trimmed gap", () => expectEquivalent("sc.a", { kind: "fromSeq", seq: 1n }, 2));
  it("from_seq beyond the head has no cursor", async () => {
    const bus = createMemoryBus();
    await bus.publish("sc.a", data, {});
    const sub = bus.subscribe({ pattern: "sc.a", start: { kind: "fromSeq", seq: 5n } }, recordingSink());
    expect(sub.startCursor).toBe("");
    sub.close();
  });
});
