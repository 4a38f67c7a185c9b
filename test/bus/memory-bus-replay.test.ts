import { describe, expect, it } from "vitest";
import type { StoredEvent } from "../../src/bus/bus.js";
import { decodeCursor } from "../../src/bus/cursor-codec.js";
import { createMemoryBus } from "../../src/bus/memory-bus.js";
import { matches } from "../../src/bus/topic.js";
import { type RecordingSink, bytes, prng, recordingSink } from "./sinks.js";


function globalOf(e: StoredEvent): number {
  const parts = decodeCursor(e.cursor);
  if (typeof parts === "string") throw new Error(parts);
  return parts.global;
}

describe("memory bus: paced replay", () => {
  it("replays 3 at a time while publishes continue between resumes: everything once, in order", async () => {
    const bus = createMemoryBus();
    const published: StoredEvent[] = [];
    const topics = ["a.x", "a.y", "b.x", "a.z"];
    let n = 0;
    const publish = async (count: number) => {
      for (let i = 0; i < count; i++) published.push(await bus.publish(topics[n++ % topics.length]!, bytes(String(n)), {}));
    };
    await publish(20);
    const s = recordingSink(3);
    const sub = bus.subscribe({ pattern: "a.*", start: { kind: "earliest" } }, s);
    expect(s.events()).toHaveLength(3);
    let rounds = 0;
    while (s.budget <= 0) {
      await publish(2);
      const before = s.events().length;
      await publish(1);
      // While replaying, publishes are not pushed to a full sink.
      expect(s.events().length).toBe(before);
      s.budget = 3;
      sub.resume();
      rounds++;
      expect(rounds).toBeLessThan(100);
    }
    // Caught up and live: pushes regardless of wantsMore.
    s.budget = 0;
    await publish(8);
    const expected = published.filter((e) => matches("a.*", e.topic));
    expect(s.events()).toEqual(expected);
    expect(new Set(s.events()).size).toBe(expected.length);
    expect(s.gaps()).toEqual([]);
  });

  it("includes a topic created during replay", async () => {
    const bus = createMemoryBus();
    await bus.publish("a.1", bytes("1"), {});
    await bus.publish("a.1", bytes("2"), {});
    const s = recordingSink(1);
    const sub = bus.subscribe({ pattern: "a.>", start: { kind: "earliest" } }, s);
    await bus.publish("a.new.deep", bytes("3"), {});
    await bus.publish("a.1", bytes("4"), {});
    await bus.publish("a.new.deep", bytes("5"), {});
    await bus.publish("b.new", bytes("6"), {});
    expect(s.ids()).toEqual(["a.1#1"]);
    s.budget = Number.POSITIVE_INFINITY;
    sub.resume();
    expect(s.ids()).toEqual(["a.1#1", "a.1#2", "a.new.deep#1", "a.1#3", "a.new.deep#2"]);
    await bus.publish("a.other", bytes("7"), {});
    expect(s.ids().at(-1)).toBe("a.other#1");
  });

  it("resume is a cheap no-op when live, closed, or re-entered from a sink", async () => {
    const bus = createMemoryBus();
    for (let i = 0; i < 4; i++) await bus.publish("t", bytes(String(i)), {});
    const s = recordingSink();
    const holder: { resume?: () => void } = {};
    s.onEvent = () => holder.resume?.();
    const sub = bus.subscribe({ pattern: "t", start: { kind: "earliest" } }, s);
    holder.resume = () => sub.resume();
    sub.resume();
    await bus.publish("t", bytes("4"), {});
    expect(s.ids()).toEqual(["t#1", "t#2", "t#3", "t#4", "t#5"]);
    sub.close();
    sub.resume();
    expect(s.ids()).toHaveLength(5);
  });

  it("paces the reset gap too, and replays after it", async () => {
    const other = createMemoryBus();
    const stale = (await other.publish("t", bytes("x"), {})).cursor;
    const bus = createMemoryBus();
    await bus.publish("t", bytes("1"), {});
    const s = recordingSink(0);
    const sub = bus.subscribe({ pattern: "t", start: { kind: "afterCursor", cursor: stale } }, s);
    expect(s.received).toEqual([]);
    await bus.publish("t", bytes("2"), {});
    s.budget = Number.POSITIVE_INFINITY;
    sub.resume();
    expect(s.received.map((r) => r.kind)).toEqual(["gap", "event", "event"]);
    expect(s.gaps()[0]!.cause).toBe("reset");
  });

  it("randomized: paused and resumed replays deliver each matching event once, in global order", async () => {
    const topics = ["a.x", "a.y", "a.x.z", "b.x", "a.q", "c"];
    const patterns = ["a.*", "a.>", ">", "a.x", "*.x"];
    for (let seed = 1; seed <= 40; seed++) {
      const rnd = prng(seed);
      const bus = createMemoryBus();
      const published: StoredEvent[] = [];
      const publish = async () => published.push(await bus.publish(topics[Math.floor(rnd() * topics.length)]!, bytes("x"), {}));
      for (let i = Math.floor(rnd() * 30); i > 0; i--) await publish();
      const pattern = patterns[seed % patterns.length]!;
      const startKind = published.length === 0 ? 0 : seed % 3;
      const cursorEvent = published[Math.floor(rnd() * published.length)];
      const lastCount = Math.floor(rnd() * 10);
      const sink: RecordingSink = recordingSink(Math.floor(rnd() * 4));
      const sub = bus.subscribe(
        {
          pattern,
          start:
            startKind === 0
              ? { kind: "earliest" }
              : startKind === 1
                ? { kind: "afterCursor", cursor: cursorEvent!.cursor }
                : { kind: "last", count: lastCount },
        },
        sink,
      );
      const before = published.filter((e) => matches(pattern, e.topic));
      for (let step = 0; step < 30; step++) {
        for (let i = Math.floor(rnd() * 4); i > 0; i--) await publish();
        sink.budget = Math.floor(rnd() * 4);
        sub.resume();
      }
      sink.budget = Number.POSITIVE_INFINITY;
      sub.resume();
      for (let i = 0; i < 5; i++) await publish();

      const matching = published.filter((e) => matches(pattern, e.topic));
      const later = matching.slice(before.length);
      const expected =
        startKind === 0
          ? matching
          : startKind === 1
            ? matching.filter((e) => globalOf(e) > globalOf(cursorEvent!))
            : [...before.slice(Math.max(0, before.length - lastCount)), ...later];
      const got = sink.events();
      expect(got, `seed ${seed} pattern ${pattern}`).toEqual(expected);
      expect(sink.gaps()).toEqual([]);
      await bus.close();
    }
  });

  it("randomized with tight retention: per topic, events and gaps tile the seqs without overlap", async () => {
    const topics = ["a.x", "a.y", "a.z", "b"];
    for (let seed = 100; seed < 130; seed++) {
      const rnd = prng(seed);
      const bus = createMemoryBus({ retentionEvents: 1 + Math.floor(rnd() * 4) });
      const publish = () => bus.publish(topics[Math.floor(rnd() * topics.length)]!, bytes("x"), {});
      for (let i = 0; i < 20; i++) await publish();
      const sink = recordingSink(1);
      const sub = bus.subscribe({ pattern: "a.*", start: { kind: "earliest" } }, sink);
      for (let step = 0; step < 40; step++) {
        for (let i = Math.floor(rnd() * 5); i > 0; i--) await publish();
        sink.budget = Math.floor(rnd() * 3);
        sub.resume();
      }
      sink.budget = Number.POSITIVE_INFINITY;
      sub.resume();
      const nextSeq = new Map<string, bigint>();
      let lastGlobal = 0;
      for (const r of sink.received) {
        if (r.kind === "gap") {
          expect(r.gap.cause).toBe("trimmed");
          const expected = nextSeq.get(r.gap.topic);
          if (expected !== undefined) expect(r.gap.fromSeq).toBe(expected);
          expect(r.gap.toSeq).toBeGreaterThanOrEqual(r.gap.fromSeq);
          nextSeq.set(r.gap.topic, r.gap.toSeq + 1n);
        } else {
          const e = r.event;
          expect(matches("a.*", e.topic)).toBe(true);
          const expected = nextSeq.get(e.topic);
          if (expected !== undefined) expect(e.seq, `seed ${seed}`).toBe(expected);
          nextSeq.set(e.topic, e.seq + 1n);
          expect(globalOf(e)).toBeGreaterThan(lastGlobal);
          lastGlobal = globalOf(e);
        }
      }
      // Caught up: every matching topic ends at its newest seq.
      for (const t of ["a.x", "a.y", "a.z"]) {
        const newest = await bus.publish(t, bytes("end"), {});
        expect(sink.events().at(-1)).toBe(newest);
        if (nextSeq.has(t)) expect(newest.seq).toBe(nextSeq.get(t));
        nextSeq.set(t, newest.seq + 1n);
      }
      await bus.close();
    }
  });
});
