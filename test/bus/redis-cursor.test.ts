/** Redis-bus cursors and stream ids: one spelling each, readable refusals. */
import { describe, expect, it } from "vitest";
import { encodeCursor } from "../../src/bus/cursor-codec.js";
import { decodeRedisCursor, encodeRedisCursor } from "../../src/bus/redis-cursor.js";
import { compareIds, idBefore, parseId, ZERO_ID } from "../../src/bus/redis-ids.js";

describe("redis cursors", () => {
  it("round-trips epoch, id, seq and topic", () => {
    const id = parseId("1700000000000-3")!;
    const cursor = encodeRedisCursor("0123456789ab", id, 42, "orders.eu");
    expect(decodeRedisCursor(cursor)).toEqual({ epoch: "0123456789ab", id, seq: 42, topic: "orders.eu" });
    expect(decodeRedisCursor(encodeRedisCursor("", ZERO_ID, 0, ""))).toEqual({ epoch: "", id: ZERO_ID, seq: 0, topic: "" });
  });

  it("refuses what is not its own, naming the memory bus's cursors", () => {
    expect(decodeRedisCursor("")).toBe("cursor is empty");
    expect(decodeRedisCursor("not a cursor!")).toMatch(/not a runnel cursor/);
    expect(decodeRedisCursor(encodeCursor({ epoch: "0123456789ab", global: 1, seq: 1, topic: "t" }))).toMatch(/in-memory bus/);
    const text = (s: string): string => Buffer.from(s).toString("base64url");
    expect(decodeRedisCursor(text("r1:ab:1-0:0:t"))).toMatch(/not a runnel cursor/); // seq 0 with a topic
    expect(decodeRedisCursor(text("r1:ab:1-0:3:"))).toMatch(/not a runnel cursor/); // seq without a topic
    expect(decodeRedisCursor(text("r1:ab:99999999999999999-0:1:t"))).toMatch(/not a runnel cursor/); // id beyond 2^53
    expect(decodeRedisCursor(text("r1:XY:1-0:1:t"))).toMatch(/not a runnel cursor/); // epoch is hex
  });
});

describe("stream ids", () => {
  it("orders by milliseconds, then sequence, and steps back across a millisecond", () => {
    const a = parseId("5-0")!;
    const b = parseId("5-1")!;
    expect(compareIds(a, b)).toBeLessThan(0);
    expect(compareIds(idBefore(b), a)).toBe(0);
    const before = idBefore(a);
    expect(before.ms).toBe(4);
    expect(compareIds(before, a)).toBeLessThan(0);
    expect(compareIds(before, parseId("4-999")!)).toBeGreaterThan(0);
    expect(idBefore(ZERO_ID)).toBe(ZERO_ID);
    expect(parseId("01-0")).toBeUndefined();
    expect(parseId("1-")).toBeUndefined();
  });
});
