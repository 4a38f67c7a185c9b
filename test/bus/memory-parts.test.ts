import { describe, expect, it } from "vitest";
import type { StoredEvent } from "../../src/bus/bus.js";
import { decodeCursor, encodeCursor } from "../../src/bus/cursor-codec.js";
import { SeqCheckpoints } from "../../src/bus/memory-checkpoints.js";
import { MinHeap } from "../../src/bus/memory-heap.js";
import { TopicIndex } from "../../src/bus/memory-topic-index.js";
import { PatternIndex } from "../../src/bus/pattern-index.js";
import { TopicLog } from "../../src/bus/topic-log.js";

function fakeEvent(topic: string, seq: number, size = 10): StoredEvent {
  return { topic, seq: BigInt(seq), cursor: "", data: new Uint8Array(0), headers: {}, timeMs: 0, size };
}

describe("cursor codec", () => {
  it("round-trips, including topics with ':' in them, as unpadded base64url", () => {
    const parts = { epoch: "0123456789ab", global: 42, seq: 7, topic: "a:b.c" };
    const c = encodeCursor(parts);
    expect(c).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeCursor(c)).toEqual(parts);
    expect(Buffer.from(c, "base64url").toString()).toBe("m1:0123456789ab:42:7:a:b.c");
  });

  it("rejects anything else with a readable problem", () => {
    const enc = (s: string) => Buffer.from(s).toString("base64url");
    for (const bad of [
      enc("m2:0123456789ab:1:1:t"),
      enc("m1:0123456789AB:1:1:t"),
      enc("m1:0123456789ab:01:1:t"),
      enc("m1:0123456789ab:1:0:t"),
      enc("m1:0123456789ab:1:1:"),
      enc("m1:0123456789ab:0:1:t"),
      enc("m1:0123456789ab:99999999999999999:1:t"),
      "a".repeat(2000),
      "%%%",
    ]) {
      expect(typeof decodeCursor(bad), bad).toBe("string");
    }
    expect(decodeCursor(enc("m1:0123456789ab:0:0:"))).toEqual({ epoch: "0123456789ab", global: 0, seq: 0, topic: "" });
  });
});

describe("TopicLog", () => {
  it("appends, wraps around the ring, grows and shrinks, and answers by seq and global", () => {
    const log = new TopicLog("t");
    for (let s = 1; s <= 100; s++) {
      log.append(fakeEvent("t", s), s * 10);
      log.trimTo(5, Number.MAX_SAFE_INTEGER);
    }
    expect([log.firstSeq, log.lastSeq, log.count, log.bytes]).toEqual([96, 100, 5, 50]);
    expect(log.at(96).seq).toBe(96n);
    expect(log.globalAt(100)).toBe(1000);
    for (let s = 101; s <= 200; s++) log.append(fakeEvent("t", s), s * 10);
    expect(log.count).toBe(105);
    log.trimTo(3, Number.MAX_SAFE_INTEGER);
    expect([log.firstSeq, log.lastSeq]).toEqual([198, 200]);
    expect([log.at(198).seq, log.at(199).seq, log.at(200).seq]).toEqual([198n, 199n, 200n]);
    expect(log.firstSeqAfter(1985)).toBe(199);
    expect(log.firstSeqAfter(1990)).toBe(200);
    expect(log.firstSeqAfter(2000)).toBe(201);
  });

  it("trims by bytes but always keeps the newest event", () => {
    const log = new TopicLog("t");
    log.append(fakeEvent("t", 1, 50), 1);
    log.append(fakeEvent("t", 2, 500), 2);
    expect(log.trimTo(10, 100)).toEqual({ events: 1, bytes: 50 });
    expect([log.firstSeq, log.count, log.bytes]).toEqual([2, 1, 500]);
  });

  it("firstSeqAfter is exact when nothing or only earlier events were trimmed", () => {
    const log = new TopicLog("t");
    for (let s = 1; s <= 3; s++) log.append(fakeEvent("t", s), s * 2); // globals 2, 4, 6
    expect(log.firstSeqAfter(0)).toBe(1);
    expect(log.firstSeqAfter(3)).toBe(2);
    log.trimTo(1, Number.MAX_SAFE_INTEGER); // keeps seq 3 (global 6); last trimmed global 4
    expect(log.firstSeqAfter(5)).toBe(3);
    expect(log.firstSeqAfter(3)).toBe(2);
    expect(log.firstSeqAfter(1)).toBe(1);
  });
});

describe("SeqCheckpoints", () => {
  it("stays bounded and never answers above the truth", () => {
    const cp = new SeqCheckpoints(8);
    for (let s = 1; s <= 1000; s++) cp.record(s, s * 3);
    expect(cp.size).toBeLessThanOrEqual(8);
    expect(cp.seqAtOrBefore(2)).toBeUndefined();
    expect(cp.seqAtOrBefore(3)).toBe(1);
    for (const g of [3, 100, 1500, 2999, 3000, 5000]) {
      const truth = Math.min(1000, Math.floor(g / 3));
      const got = cp.seqAtOrBefore(g)!;
      expect(got).toBeLessThanOrEqual(truth);
      expect(truth - got).toBeLessThan(256);
    }
  });
});

describe("MinHeap", () => {
  it("pops in key order and reorders after fixTop", () => {
    const h = new MinHeap<{ key: number; id: string }>();
    for (const [key, id] of [[5, "e"], [1, "a"], [3, "c"], [2, "b"], [4, "d"]] as const) h.push({ key, id });
    h.peek()!.key = 10;
    h.fixTop();
    const out: string[] = [];
    for (let x = h.pop(); x !== undefined; x = h.pop()) out.push(x.id);
    expect(out).toEqual(["b", "c", "d", "e", "a"]);
  });
});

describe("PatternIndex", () => {
  it("collects each matching value once, and prunes back to the root", () => {
    const idx = new PatternIndex<string>();
    const add = ["a.b", "a.*", "a.>", ">", "*.b", "a.b.c", "a.*.c"];
    for (const p of add) idx.add(p, p);
    idx.add("a.*", "a.*");
    expect(idx.size).toBe(add.length);
    const collect = (t: string) => {
      const out: string[] = [];
      idx.collect(t, out);
      return out.sort();
    };
    expect(collect("a.b")).toEqual(["*.b", ">", "a.*", "a.>", "a.b"]);
    expect(collect("a.b.c")).toEqual([">", "a.*.c", "a.>", "a.b.c"]);
    expect(collect("a")).toEqual([">"]);
    expect(collect("z.z.z")).toEqual([">"]);
    for (const p of add) idx.remove(p, p);
    idx.remove("a.*", "a.*");
    expect([idx.size, idx.trieNodes, idx.exactTopicCount]).toEqual([0, 1, 0]);
  });
});

describe("TopicIndex", () => {
  it("visits only the topics a pattern matches", () => {
    const idx = new TopicIndex<string>();
    for (const t of ["a", "a.b", "a.b.c", "a.x", "b.b"]) idx.add(t, t);
    const visit = (p: string) => {
      const out: string[] = [];
      idx.forEachMatching(p, (v) => out.push(v));
      return out.sort();
    };
    expect(visit("a.>")).toEqual(["a.b", "a.b.c", "a.x"]);
    expect(visit("*.b")).toEqual(["a.b", "b.b"]);
    expect(visit("a")).toEqual(["a"]);
    expect(visit(">")).toEqual(["a", "a.b", "a.b.c", "a.x", "b.b"]);
    expect(visit("a.*.c")).toEqual(["a.b.c"]);
  });
});
