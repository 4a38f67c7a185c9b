/**
 * The Redis bus against a real redis-server: gapless seqs from two bus
 * instances (two nodes in one process), every start position, resume after a
 * cursor issued by the other node, trimmed history as Gap, patterns over
 * topics created by the other node, bad cursors, and a replay paced by a
 * bounded sink that hands over to live without loss or duplicates.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { pino } from "pino";
import { BusError } from "../../src/bus/bus.js";
import { createRedisBus, type RedisBus } from "../../src/bus/redis-bus.js";
import { waitFor } from "../harness/server.js";
import { describeRedis, startRedis, type RedisProcess } from "../harness/redis.js";
import { bytes, recordingSink, text } from "./sinks.js";

const log = pino({ level: "silent" });

describeRedis("Redis bus (two nodes on one redis-server)", () => {
  let redis: RedisProcess;
  let a: RedisBus;
  let b: RedisBus;
  const open: RedisBus[] = [];
  const node = async (options: { maxlen?: number } = {}): Promise<RedisBus> => {
    const bus = createRedisBus({ url: redis.url, log, ...options });
    open.push(bus);
    await bus.ready();
    return bus;
  };

  beforeAll(async () => {
    redis = await startRedis();
    a = await node();
    b = await node();
  });
  afterAll(async () => {
    for (const bus of open) await bus.close();
    await redis.stop();
  });

  it("assigns gapless seqs per topic across nodes, and both nodes deliver the same order live", async () => {
    const onA = recordingSink();
    const onB = recordingSink();
    const subA = a.subscribe({ pattern: "seq.>", start: { kind: "live" } }, onA);
    const subB = b.subscribe({ pattern: "seq.>", start: { kind: "live" } }, onB);
    const published = await Promise.all(
      Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? a : b).publish(i % 3 === 0 ? "seq.x" : "seq.y", bytes(`m${i}`), {})),
    );
    const seqsOf = (topic: string): bigint[] => published.filter((e) => e.topic === topic).map((e) => e.seq).sort((p, q) => Number(p - q));
    expect(seqsOf("seq.x")).toEqual(Array.from({ length: 14 }, (_, i) => BigInt(i + 1)));
    expect(seqsOf("seq.y")).toEqual(Array.from({ length: 26 }, (_, i) => BigInt(i + 1)));
    await waitFor(() => onA.events().length === 40 && onB.events().length === 40, 10_000, "40 events on both nodes");
    expect(onB.events().map((e) => e.cursor)).toEqual(onA.events().map((e) => e.cursor));
    expect(onA.gaps()).toEqual([]);
    subA.close();
    subB.close();
    expect(a.stats().subscriptionsActive + b.stats().subscriptionsActive).toBe(0);
  });

  it("replays every start position on the other node; resumes after a cursor from either", async () => {
    for (let i = 1; i <= 5; i++) await a.publish("pos.one", bytes(`o${i}`), { k: `v${i}` });
    await b.publish("pos.two", bytes("t1"), {});
    const replay = async (start: Parameters<RedisBus["subscribe"]>[0]["start"], pattern = "pos.>"): Promise<string[]> => {
      const sink = recordingSink();
      const sub = b.subscribe({ pattern, start }, sink);
      await waitFor(() => sink.events().length > 0 || sink.gaps().length > 0, 5_000, "replay");
      await new Promise((r) => setTimeout(r, 100));
      sub.close();
      return sink.ids();
    };
    expect(await replay({ kind: "earliest" })).toEqual(["pos.one#1", "pos.one#2", "pos.one#3", "pos.one#4", "pos.one#5", "pos.two#1"]);
    expect(await replay({ kind: "last", count: 2 })).toEqual(["pos.one#5", "pos.two#1"]);
    expect(await replay({ kind: "fromSeq", seq: 4n }, "pos.one")).toEqual(["pos.one#4", "pos.one#5"]);
    const third = (await replayEvents(b, "pos.one", { kind: "earliest" }))[2]!;
    expect(third.headers).toEqual({ k: "v3" });
    expect(text(third)).toBe("o3");
    expect(await replay({ kind: "afterCursor", cursor: third.cursor })).toEqual(["pos.one#4", "pos.one#5", "pos.two#1"]);
  });

  it("reports trimmed history as a Gap on resume, and patterns see topics created on the other node", async () => {
    const small = await node({ maxlen: 3 });
    const first = await small.publish("trim.t", bytes("1"), {});
    for (let i = 2; i <= 6; i++) await small.publish("trim.t", bytes(String(i)), {});
    const sink = recordingSink();
    const sub = a.subscribe({ pattern: "trim.*", start: { kind: "afterCursor", cursor: first.cursor } }, sink);
    await waitFor(() => sink.events().length === 3, 5_000, "3 retained events");
    expect(sink.gaps()).toEqual([{ topic: "trim.t", fromSeq: 2n, toSeq: 3n, cause: "trimmed" }]);
    expect(sink.ids()).toEqual(["trim.t#4", "trim.t#5", "trim.t#6"]);
    await b.publish("trim.new", bytes("n"), {});
    await waitFor(() => sink.events().length === 4, 5_000, "event of a topic created on the other node");
    expect(sink.ids().at(-1)).toBe("trim.new#1");
    sub.close();
  });

  it("a pattern resume reports trimmed history of the pattern's other topics (from_seq as a lower bound), and not of untouched ones", async () => {
    const small = await node({ maxlen: 2 });
    for (let i = 1; i <= 3; i++) await small.publish("other.d", bytes(`d${i}`), {});
    const cursor = (await small.publish("other.a", bytes("a1"), {})).cursor;
    for (let i = 1; i <= 4; i++) await small.publish("other.b", bytes(`b${i}`), {});
    await small.publish("other.c", bytes("c1"), {});
    // Trims d2, which came before the cursor: no gap for other.d.
    await small.publish("other.d", bytes("d4"), {});
    const sink = recordingSink();
    const sub = a.subscribe({ pattern: "other.*", start: { kind: "afterCursor", cursor } }, sink);
    await waitFor(() => sink.events().length === 4, 5_000, "4 retained events");
    expect(sink.received.map((r) => (r.kind === "gap" ? `gap ${r.gap.topic} ${r.gap.fromSeq}..${r.gap.toSeq}` : `${r.event.topic}#${r.event.seq}`))).toEqual([
      "gap other.b 1..2",
      "other.b#3",
      "other.b#4",
      "other.c#1",
      "other.d#4",
    ]);
    sub.close();
  });

  it("--redis-max-age-ms trims events older than the bound when the topic is published to (MINID)", async () => {
    const aging = createRedisBus({ url: redis.url, log, maxAgeMs: 200 });
    open.push(aging);
    await aging.ready();
    const old = await aging.publish("age.t", bytes("old"), {});
    await new Promise((r) => setTimeout(r, 400));
    await aging.publish("age.t", bytes("new"), {});
    const sink = recordingSink();
    const sub = b.subscribe({ pattern: "age.t", start: { kind: "fromSeq", seq: 1n } }, sink);
    await waitFor(() => sink.events().length === 1, 5_000, "the retained event");
    expect(sink.gaps()).toEqual([{ topic: "age.t", fromSeq: 1n, toSeq: 1n, cause: "trimmed" }]);
    expect(sink.ids()).toEqual(["age.t#2"]);
    expect(old.seq).toBe(1n);
    sub.close();
  });

  it("a bounded sink paces the replay, then goes live without loss or duplicates while publishes continue", async () => {
    for (let i = 0; i < 300; i++) await a.publish("pace.t", bytes(String(i)), {});
    const sink = recordingSink(10);
    const sub = b.subscribe({ pattern: "pace.t", start: { kind: "earliest" } }, sink);
    let publishing = true;
    const more = (async () => {
      for (let i = 300; publishing && i < 2_000; i++) await a.publish("pace.t", bytes(String(i)), {});
    })();
    while (sink.events().length < 400) {
      await waitFor(() => sink.budget <= 0 || sink.events().length >= 400, 5_000, "sink full");
      sink.budget = 10;
      sub.resume();
    }
    publishing = false;
    await more;
    sink.budget = Number.POSITIVE_INFINITY;
    sub.resume();
    const total = Number((await a.publish("pace.t", bytes("last"), {})).seq);
    await waitFor(() => sink.events().length === total, 10_000, `${total} events`);
    expect(sink.events().map((e) => Number(e.seq))).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    sub.close();
  });

  it("rejects malformed cursors at once and cursors ahead of the head through fail()", async () => {
    expect(() => b.subscribe({ pattern: "x", start: { kind: "afterCursor", cursor: "nope" } }, recordingSink())).toThrow(BusError);
    const ahead = Buffer.from(`r1:${headEpoch(b)}:99999999999999-0:0:`).toString("base64url");
    const failed: BusError[] = [];
    const sink = { ...recordingSink(), fail: (e: BusError) => failed.push(e) };
    b.subscribe({ pattern: "x", start: { kind: "afterCursor", cursor: ahead } }, sink);
    await waitFor(() => failed.length === 1, 5_000, "fail()");
    expect(failed[0]!.kind).toBe("invalid");
    expect(b.stats().subscriptionsActive).toBe(0);
  });
});

function headEpoch(bus: RedisBus): string {
  return Buffer.from(bus.headCursor(), "base64url").toString().split(":")[1]!;
}

async function replayEvents(bus: RedisBus, pattern: string, start: { kind: "earliest" }) {
  const sink = recordingSink();
  const sub = bus.subscribe({ pattern, start }, sink);
  await new Promise((r) => setTimeout(r, 200));
  sub.close();
  return sink.events();
}
