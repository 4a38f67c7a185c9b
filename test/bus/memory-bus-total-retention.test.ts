import { describe, expect, it } from "vitest";
import type { GapNotice, StartPosition, StoredEvent } from "../../src/bus/bus.js";
import { decodeCursor } from "../../src/bus/cursor-codec.js";
import { createMemoryBus, type MemoryBus } from "../../src/bus/memory-bus.js";
import { OldestFirst } from "../../src/bus/memory-retention.js";
import { TopicLog } from "../../src/bus/topic-log.js";
import { type RecordingSink, bytes, prng, recordingSink } from "./sinks.js";

// With a one-character topic and no headers, 35 data bytes make an event of exactly 100 bytes.
const DATA = new Uint8Array(35);
const CAP = 1000; // ten such events

function entries(s: RecordingSink): unknown[] {
  return s.received.map((r) => (r.kind === "gap" ? r.gap : `${r.event.topic}#${r.event.seq}`));
}

function gap(topic: string, fromSeq: number, toSeq: number): GapNotice {
  return { topic, fromSeq: BigInt(fromSeq), toSeq: BigInt(toSeq), cause: "trimmed" };
}

function globalOf(e: StoredEvent): number {
  const parts = decodeCursor(e.cursor);
  if (typeof parts === "string") throw new Error(parts);
  return parts.global;
}

/** "topic#seq" of everything `pattern` retains, oldest first, read through an unbounded earliest subscription. */
function retained(bus: MemoryBus, pattern = ">"): string[] {
  const s = recordingSink();
  bus.subscribe({ pattern, start: { kind: "earliest" } }, s).close();
  expect(s.gaps()).toEqual([]);
  return s.ids();
}

/** Checks that per topic, events and gaps cover consecutive seqs without overlap, events in global order, each once. */
function expectTiled(s: RecordingSink): Map<string, bigint> {
  const next = new Map<string, bigint>();
  const seen = new Set<StoredEvent>();
  let lastGlobal = 0;
  for (const r of s.received) {
    if (r.kind === "gap") {
      expect(r.gap.cause).toBe("trimmed");
      expect(r.gap.fromSeq).toBe(next.get(r.gap.topic) ?? r.gap.fromSeq);
      expect(r.gap.toSeq).toBeGreaterThanOrEqual(r.gap.fromSeq);
      next.set(r.gap.topic, r.gap.toSeq + 1n);
    } else {
      const e = r.event;
      expect(seen.has(e)).toBe(false);
      seen.add(e);
      expect(e.seq).toBe(next.get(e.topic) ?? e.seq);
      next.set(e.topic, e.seq + 1n);
      expect(globalOf(e)).toBeGreaterThan(lastGlobal);
      lastGlobal = globalOf(e);
    }
  }
  return next;
}

describe("memory bus: bound on bytes retained across topics", () => {
  it("rejects a bound below 1", () => {
    expect(() => createMemoryBus({ maxRetainedBytes: 0 })).toThrow(RangeError);
  });

  it("stays within the bound and trims the globally oldest event first, whatever its topic", async () => {
    const bus = createMemoryBus({ maxRetainedBytes: CAP });
    const order = "aabcabbbcacaabcbbaccabcab";
    for (const [i, t] of [...order].entries()) {
      const e = await bus.publish(t, DATA, {});
      expect(e.size).toBe(100);
      expect(bus.stats()).toMatchObject({ retainedEvents: Math.min(i + 1, 10), retainedBytes: Math.min(i + 1, 10) * 100 });
    }
    expect(retained(bus)).toEqual(["b#6", "b#7", "a#7", "c#5", "c#6", "a#8", "b#8", "c#7", "a#9", "b#9"]);
    expect(retained(bus, "a")).toEqual(["a#7", "a#8", "a#9"]);
    expect(retained(bus, "b")).toEqual(["b#6", "b#7", "b#8", "b#9"]);
    expect(retained(bus, "c")).toEqual(["c#5", "c#6", "c#7"]);
    // from_seq sees these trims as it sees per-topic ones.
    const s = recordingSink();
    bus.subscribe({ pattern: "c", start: { kind: "fromSeq", seq: 1n } }, s);
    expect(entries(s)).toEqual([gap("c", 1, 4), "c#5", "c#6", "c#7"]);
  });

  it("applies after per-topic retention, and counts what per-topic retention already trimmed", async () => {
    const bus = createMemoryBus({ maxRetainedBytes: 500, retentionEvents: 2 });
    for (const t of "aaaaabbbcc") await bus.publish(t, DATA, {});
    // Per topic: a#4 a#5, b#2 b#3, c#1 c#2 (600 bytes); the bus-wide bound then trims a#4, the oldest.
    expect(bus.stats()).toMatchObject({ retainedEvents: 5, retainedBytes: 500 });
    expect(retained(bus)).toEqual(["a#5", "b#2", "b#3", "c#1", "c#2"]);
  });

  it("can empty a topic: it keeps its seqs, every start position handles it, and its next event continues", async () => {
    const bus = createMemoryBus({ maxRetainedBytes: CAP });
    const a: StoredEvent[] = [];
    for (let i = 0; i < 3; i++) a.push(await bus.publish("a", DATA, {}));
    const b: StoredEvent[] = [];
    for (let i = 0; i < 10; i++) b.push(await bus.publish("b", DATA, {}));
    expect(bus.stats()).toMatchObject({ topics: 2, retainedEvents: 10, retainedBytes: 1000 });
    expect(retained(bus, "a")).toEqual([]);
    expect(retained(bus, ">")).toEqual(b.map((e) => `b#${e.seq}`));

    const subs: Record<string, RecordingSink> = {};
    const open = (name: string, pattern: string, start: StartPosition) => {
      const s = recordingSink();
      subs[name] = s;
      return bus.subscribe({ pattern, start }, s);
    };
    open("earliest", "a", { kind: "earliest" });
    open("last", "a", { kind: "last", count: 5 });
    open("live", "a", { kind: "live" });
    const from1 = open("from1", "a", { kind: "fromSeq", seq: 1n });
    const from3 = open("from3", "a", { kind: "fromSeq", seq: 3n });
    const from4 = open("from4", "a", { kind: "fromSeq", seq: 4n });
    const from5 = open("from5", "a", { kind: "fromSeq", seq: 5n });
    open("afterA1", "a", { kind: "afterCursor", cursor: a[0]!.cursor });
    open("afterA3", "a", { kind: "afterCursor", cursor: a[2]!.cursor });
    open("allAfterA1", ">", { kind: "afterCursor", cursor: a[0]!.cursor });
    open("allAfterB1", ">", { kind: "afterCursor", cursor: b[0]!.cursor });
    const everything = open("everything", ">", { kind: "earliest" });

    for (const name of ["earliest", "last", "live", "from4", "from5", "afterA3"]) expect(entries(subs[name]!), name).toEqual([]);
    expect(entries(subs.from1!)).toEqual([gap("a", 1, 3)]);
    expect(entries(subs.from3!)).toEqual([gap("a", 3, 3)]);
    expect(entries(subs.afterA1!)).toEqual([gap("a", 2, 3)]);
    const bIds = b.map((e) => `b#${e.seq}`);
    expect(entries(subs.allAfterA1!)).toEqual([gap("a", 2, 3), ...bIds]);
    expect(entries(subs.allAfterB1!)).toEqual(bIds.slice(1));
    expect(entries(subs.everything!)).toEqual(bIds);

    // Start cursors of from_seq on the emptied topic resume where those subscriptions started.
    expect(from5.startCursor).toBe("");
    for (const [sub, expected] of [
      [from1, [gap("a", 1, 3)]],
      [from3, [gap("a", 3, 3)]],
      [from4, []],
    ] as const) {
      const s = recordingSink();
      bus.subscribe({ pattern: "a", start: { kind: "afterCursor", cursor: sub.startCursor } }, s);
      expect(entries(s)).toEqual(expected);
    }
    // "Before everything" on a pattern: the emptied topic's whole history is a gap, ordered first.
    const s0 = recordingSink();
    bus.subscribe({ pattern: ">", start: { kind: "afterCursor", cursor: everything.startCursor } }, s0);
    expect(entries(s0)).toEqual([gap("a", 1, 3), ...bIds]);

    const next = await bus.publish("a", DATA, {});
    expect(next.seq).toBe(4n);
    for (const name of ["earliest", "last", "live", "from1", "from3", "from4", "afterA1", "afterA3"]) {
      expect(subs[name]!.ids().at(-1), name).toBe("a#4");
    }
    expect(subs.from5!.ids()).toEqual([]);
    expect(subs.everything!.ids()).toEqual([...bIds, "a#4"]);
    expect(retained(bus)).toEqual([...bIds.slice(1), "a#4"]);
    for (const s of Object.values(subs)) expectTiled(s);
  });

  it("resume after a cursor whose events the bound trimmed: exact gaps, then the retained events in order, once", async () => {
    const bus = createMemoryBus({ maxRetainedBytes: CAP });
    const all: StoredEvent[] = [];
    for (let i = 0; i < 30; i++) all.push(await bus.publish("abc"[i % 3]!, DATA, {}));
    const cursor = all[4]!.cursor; // b#2, position 5; everything up to position 20 is trimmed
    expect(`${all[4]!.topic}#${all[4]!.seq}`).toBe("b#2");

    const one = recordingSink();
    bus.subscribe({ pattern: "b", start: { kind: "afterCursor", cursor } }, one);
    expect(entries(one)).toEqual([gap("b", 3, 7), "b#8", "b#9", "b#10"]);

    const s = recordingSink();
    bus.subscribe({ pattern: ">", start: { kind: "afterCursor", cursor } }, s);
    expect(entries(s)).toEqual([
      gap("c", 2, 6),
      "c#7",
      gap("a", 3, 7),
      "a#8",
      gap("b", 3, 7),
      "b#8",
      "c#8",
      "a#9",
      "b#9",
      "c#9",
      "a#10",
      "b#10",
      "c#10",
    ]);
    const live = await bus.publish("a", DATA, {});
    expect(s.events().at(-1)).toBe(live);
    expect(one.events().at(-1)?.seq).toBe(10n);
    expectTiled(s);
    expectTiled(one);
  });

  it("a paced replay that the bound trims behind sees the gaps, then the rest, each event once", async () => {
    const bus = createMemoryBus({ maxRetainedBytes: CAP });
    for (let i = 0; i < 3; i++) await bus.publish("a", DATA, {});
    let n = 0;
    const publishBC = async (count: number) => {
      for (let i = 0; i < count; i++) await bus.publish("bc"[n++ % 2]!, DATA, {});
    };
    await publishBC(6);
    const s = recordingSink(2);
    const sub = bus.subscribe({ pattern: ">", start: { kind: "earliest" } }, s);
    expect(s.ids()).toEqual(["a#1", "a#2"]);
    await publishBC(4); // the last trims a#3: topic a is now empty while the replay still wants it
    expect(retained(bus, "a")).toEqual([]);
    s.budget = 2;
    sub.resume();
    expect(entries(s)).toEqual(["a#1", "a#2", gap("a", 3, 3), "b#1", "c#1"]);

    // Fall behind: three publishes per two deliveries, so the bound trims past the replay.
    for (let round = 0; round < 10; round++) {
      await publishBC(3);
      s.budget = 2;
      sub.resume();
    }
    expect(s.gaps().length).toBeGreaterThan(1);
    // Catch up two at a time without new publishes.
    for (let round = 0; round < 20; round++) {
      s.budget = 2;
      sub.resume();
    }
    const next = expectTiled(s);
    // Caught up: live now, and each topic ended at its newest seq.
    expect(next.get("b")).toBe(BigInt(Math.ceil(n / 2)) + 1n);
    expect(next.get("c")).toBe(BigInt(Math.floor(n / 2)) + 1n);
    s.budget = 0;
    const a4 = await bus.publish("a", DATA, {});
    expect(a4.seq).toBe(4n);
    expect(s.events().at(-1)).toBe(a4);
    expectTiled(s);
  });

  it("a replay whose topic is emptied during a fan-out (publish from a sink) still reports it and goes on", async () => {
    const bus = createMemoryBus({ maxRetainedBytes: 200 });
    await bus.publish("x", DATA, {});
    const paused = recordingSink(0);
    const sub = bus.subscribe({ pattern: ">", start: { kind: "earliest" } }, paused);
    const echo = recordingSink();
    let echoes = 0;
    echo.onEvent = (e) => {
      if (e.topic === "a" && echoes++ === 0) {
        void bus.publish("b", DATA, {});
        void bus.publish("b", DATA, {});
      }
    };
    bus.subscribe({ pattern: "a", start: { kind: "live" } }, echo);
    await bus.publish("a", DATA, {});
    expect(bus.stats()).toMatchObject({ retainedEvents: 2, retainedBytes: 200 });
    expect(retained(bus)).toEqual(["b#1", "b#2"]);
    paused.budget = Number.POSITIVE_INFINITY;
    sub.resume();
    expect(entries(paused)).toEqual([gap("x", 1, 1), gap("a", 1, 1), "b#1", "b#2"]);
    await bus.publish("a", DATA, {});
    expect(paused.ids().at(-1)).toBe("a#2");
    expectTiled(paused);
  });

  it("keeps a single event larger than the bound, alone", async () => {
    const bus = createMemoryBus({ maxRetainedBytes: CAP });
    for (const t of "ababa") await bus.publish(t, DATA, {});
    const big = await bus.publish("c", new Uint8Array(2000), {});
    expect(big.size).toBe(2065);
    expect(bus.stats()).toMatchObject({ topics: 3, retainedEvents: 1, retainedBytes: 2065 });
    expect(retained(bus)).toEqual(["c#1"]);
    const s = recordingSink();
    bus.subscribe({ pattern: "a", start: { kind: "fromSeq", seq: 1n } }, s);
    expect(entries(s)).toEqual([gap("a", 1, 3)]);
    // The next event, small, pushes the big one out.
    await bus.publish("a", DATA, {});
    expect(bus.stats()).toMatchObject({ retainedEvents: 1, retainedBytes: 100 });
    expect(retained(bus)).toEqual(["a#4"]);
    expect(entries(s)).toEqual([gap("a", 1, 3), "a#4"]);
    await bus.publish("c", new Uint8Array(2000), {});
    expect(retained(bus)).toEqual(["c#2"]);
  });

  it("randomized against a model, with per-topic retention too: same retained events, stats and gaps", async () => {
    const topics = ["a", "b", "c", "d.x", "d.y"];
    for (let seed = 1; seed <= 20; seed++) {
      const rnd = prng(seed);
      const cap = 300 + Math.floor(rnd() * 3000);
      const retentionEvents = 1 + Math.floor(rnd() * 8);
      const bus = createMemoryBus({ maxRetainedBytes: cap, retentionEvents, retentionBytes: 2000 });
      const model = new Model(cap, retentionEvents, 2000);
      for (let i = 0; i < 400; i++) {
        const topic = topics[Math.floor(rnd() * topics.length)]!;
        const e = await bus.publish(topic, new Uint8Array(Math.floor(rnd() * 400)), {});
        model.publish(e);
        expect(bus.stats(), `seed ${seed} step ${i}`).toMatchObject({
          retainedEvents: model.count,
          retainedBytes: model.bytes,
        });
        expect(model.bytes <= cap || model.count === 1).toBe(true);
        if (i % 50 === 49) {
          expect(retained(bus), `seed ${seed} step ${i}`).toEqual(model.retainedIds());
          for (const t of topics) {
            const s = recordingSink();
            bus.subscribe({ pattern: t, start: { kind: "fromSeq", seq: 1n } }, s).close();
            expect(entries(s), `seed ${seed} step ${i} topic ${t}`).toEqual(model.fromSeq1(t));
          }
        }
      }
      await bus.close();
    }
  });

  it("randomized paced replays under the bound: per topic, events and gaps tile the seqs, then live continues", async () => {
    const topics = ["a.x", "a.y", "a.z", "b"];
    for (let seed = 200; seed < 240; seed++) {
      const rnd = prng(seed);
      const bus = createMemoryBus({ maxRetainedBytes: 300 + Math.floor(rnd() * 1500), retentionEvents: 2 + Math.floor(rnd() * 6) });
      const published: StoredEvent[] = [];
      const publish = async () =>
        published.push(await bus.publish(topics[Math.floor(rnd() * topics.length)]!, new Uint8Array(Math.floor(rnd() * 100)), {}));
      for (let i = 0; i < 20; i++) await publish();
      const from = published[Math.floor(rnd() * published.length)]!;
      const start: StartPosition = seed % 2 === 0 ? { kind: "earliest" } : { kind: "afterCursor", cursor: from.cursor };
      const sink = recordingSink(1);
      const sub = bus.subscribe({ pattern: "a.*", start }, sink);
      for (let step = 0; step < 40; step++) {
        for (let i = Math.floor(rnd() * 6); i > 0; i--) await publish();
        sink.budget = Math.floor(rnd() * 3);
        sub.resume();
      }
      sink.budget = Number.POSITIVE_INFINITY;
      sub.resume();
      const next = expectTiled(sink);
      if (start.kind === "afterCursor") {
        // Nothing at or before the cursor is delivered.
        for (const e of sink.events()) expect(globalOf(e)).toBeGreaterThan(globalOf(from));
        if (from.topic.startsWith("a.")) {
          const firstOfTopic = sink.received.find((r) => (r.kind === "gap" ? r.gap.topic : r.event.topic) === from.topic);
          if (firstOfTopic !== undefined) {
            const firstSeq = firstOfTopic.kind === "gap" ? firstOfTopic.gap.fromSeq : firstOfTopic.event.seq;
            expect(firstSeq, `seed ${seed}`).toBe(from.seq + 1n);
          }
        }
      }
      // Caught up: each topic's next event is the next seq after what was delivered or reported.
      for (const t of ["a.x", "a.y", "a.z"]) {
        const newest = await bus.publish(t, bytes("end"), {});
        expect(sink.events().at(-1)).toBe(newest);
        if (next.has(t)) expect(newest.seq, `seed ${seed} ${t}`).toBe(next.get(t));
      }
      expectTiled(sink);
      await bus.close();
    }
  });

  it("100,000 publishes over 1,000 topics stay within the bound, quickly", { timeout: 20_000 }, async () => {
    const cap = 200_000;
    const bus = createMemoryBus({ maxRetainedBytes: cap, retentionEvents: 50 });
    const watcher = recordingSink();
    bus.subscribe({ pattern: ">", start: { kind: "live" } }, watcher);
    const published: StoredEvent[] = [];
    const random = prng(7);
    for (let i = 0; i < 100_000; i++) {
      // Skewed: a tenth of the topics get most of the traffic, so per-topic retention trims too.
      const topic = `t.${Math.floor(random() * (random() < 0.25 ? 1000 : 100))}`;
      published.push(await bus.publish(topic, bytes("x".repeat(Math.floor(random() * 200))), {}));
      const stats = bus.stats();
      if (stats.retainedBytes > cap) throw new Error(`over the bound after ${i + 1} publishes: ${stats.retainedBytes}`);
    }
    expect(bus.stats().topics).toBe(1000);
    expect(watcher.events()).toHaveLength(100_000);
    const kept = retained(bus);
    expect(kept.length).toBe(bus.stats().retainedEvents);
    // Whatever is retained is in publish order and ends with the newest event.
    expect(kept.at(-1)).toBe(`${published.at(-1)!.topic}#${published.at(-1)!.seq}`);
    await bus.close();
  });
});

describe("OldestFirst", () => {
  it("finds the globally oldest retained event across logs, including after per-topic trims, and drops emptied logs", () => {
    const logs = [new TopicLog("a"), new TopicLog("b"), new TopicLog("c")];
    const oldest = new OldestFirst();
    const order = [0, 0, 1, 2, 0, 1, 0, 0, 2];
    const seqs = [0, 0, 0];
    for (const [i, k] of order.entries()) {
      const log = logs[k]!;
      const wasEmpty = log.count === 0;
      log.append(fakeEvent(log.topic, ++seqs[k]!), i + 1);
      if (wasEmpty) oldest.add(log);
    }
    expect(oldest.size).toBe(3);
    logs[0]!.trimTo(2, Number.MAX_SAFE_INTEGER); // a keeps seqs 4, 5 (globals 7, 8)
    const trimmedTopics: string[] = [];
    for (let i = 0; i < 6; i++) {
      const before = logs.map((l) => l.count);
      expect(oldest.trimOldest()).toEqual({ events: 1, bytes: 10 });
      trimmedTopics.push(logs[before.findIndex((c, k) => logs[k]!.count !== c)]!.topic);
    }
    // Globals 3 (b), 4 (c), 6 (b), 7 (a), 8 (a), 9 (c).
    expect(trimmedTopics).toEqual(["b", "c", "b", "a", "a", "c"]);
    expect(logs.map((l) => l.count)).toEqual([0, 0, 0]);
    expect(logs.map((l) => l.upcomingSeq)).toEqual([6, 3, 3]);
    expect(oldest.size).toBe(0);
    expect(oldest.trimOldest()).toEqual({ events: 0, bytes: 0 });
  });
});

function fakeEvent(topic: string, seq: number, size = 10): StoredEvent {
  return { topic, seq: BigInt(seq), cursor: "", data: new Uint8Array(0), headers: {}, timeMs: 0, size };
}


/** The retention rules, written the obvious way: per topic first, then globally oldest while over the bound. */
class Model {
  private readonly all: { event: StoredEvent; alive: boolean }[] = [];
  private readonly perTopic = new Map<string, { event: StoredEvent; alive: boolean }[]>();
  count = 0;
  bytes = 0;

  constructor(
    private readonly cap: number,
    private readonly retentionEvents: number,
    private readonly retentionBytes: number,
  ) {}

  publish(event: StoredEvent): void {
    const item = { event, alive: true };
    this.all.push(item);
    const list = this.perTopic.get(event.topic) ?? [];
    this.perTopic.set(event.topic, list);
    list.push(item);
    this.count++;
    this.bytes += event.size;
    const alive = () => list.filter((x) => x.alive);
    for (;;) {
      const kept = alive();
      const bytes = kept.reduce((n, x) => n + x.event.size, 0);
      if (kept.length <= 1 || (kept.length <= this.retentionEvents && bytes <= this.retentionBytes)) break;
      this.kill(kept[0]!);
    }
    while (this.bytes > this.cap && this.count > 1) this.kill(this.all.find((x) => x.alive)!);
  }

  retainedIds(): string[] {
    return this.all.filter((x) => x.alive).map((x) => `${x.event.topic}#${x.event.seq}`);
  }

  fromSeq1(topic: string): unknown[] {
    const list = this.perTopic.get(topic) ?? [];
    const firstAlive = list.findIndex((x) => x.alive);
    const trimmed = firstAlive === -1 ? list.length : firstAlive;
    const out: unknown[] = trimmed > 0 ? [gap(topic, 1, trimmed)] : [];
    for (const x of list) if (x.alive) out.push(`${topic}#${x.event.seq}`);
    return out;
  }

  private kill(x: { event: StoredEvent; alive: boolean }): void {
    x.alive = false;
    this.count--;
    this.bytes -= x.event.size;
  }
}
