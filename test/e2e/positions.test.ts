/**
 * What a subscription sees: which topics a pattern matches, where each start
 * position begins, that Subscribed always comes first (with the heartbeat
 * interval in force and the head cursor), and that seqs count per topic
 * from 1 without holes.
 */
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { EventService, GapReason } from "../../gen/runnel/v1/event_pb.js";
import type { RunnelServer } from "../../src/server.js";
import { expectNoStreams, startServer } from "../harness/server.js";
import { Subscriber, type SubscribeInit } from "../harness/subscriber.js";
import { TRANSPORTS } from "../harness/transports.js";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const RETENTION = 20;

describe("patterns and start positions", () => {
  let server: RunnelServer;
  let client: Client<typeof EventService>;
  const transport = () => TRANSPORTS[1]!.create(server.url); // connect h2

  async function pub(topic: string, data = topic): Promise<{ seq: bigint; cursor: string }> {
    const r = await client.publish({ topic, data: enc(data) });
    return { seq: r.seq, cursor: r.cursor };
  }

  beforeAll(async () => {
    server = await startServer({ retentionEvents: RETENTION, heartbeatMs: 30_000 });
    client = createClient(EventService, createConnectTransport({ baseUrl: server.url, httpVersion: "2" }));
  });
  afterAll(async () => {
    await server.shutdown(1_000);
  });
  afterEach(async () => {
    await expectNoStreams(server);
  });

  describe("patterns", () => {
    const published = [
      "pt.eu.created",
      "pt.us.created",
      "pt.eu.deleted",
      "pt.eu.x.created",
      "pt.created",
      "pt",
      "pt.a.b.c.d",
      "other.eu.created",
      "ptx.eu.created",
    ];
    // Each pattern's own end marker (a topic it matches) is published after everything else.
    const cases: [pattern: string, expected: string[], marker: string][] = [
      ["pt.*.created", ["pt.eu.created", "pt.us.created"], "pt.end.created"],
      ["pt.>", ["pt.eu.created", "pt.us.created", "pt.eu.deleted", "pt.eu.x.created", "pt.created", "pt.a.b.c.d"], "pt.end"],
      ["pt.eu.created", ["pt.eu.created"], "pt.eu.created"],
      ["*.eu.created", ["pt.eu.created", "other.eu.created", "ptx.eu.created"], "end.eu.created"],
      ["pt.*", ["pt.created"], "pt.end"],
      ["*", ["pt"], "end"],
      [">", published, "end"],
      ["pt.*.>", ["pt.eu.created", "pt.us.created", "pt.eu.deleted", "pt.eu.x.created", "pt.a.b.c.d"], "pt.end.x"],
    ];

    it("each pattern gets exactly its matching topics, in publish order", async () => {
      const subs = cases.map(([pattern]) => Subscriber.open(transport(), { topic: pattern }));
      for (const s of subs) await s.ready();
      for (const topic of published) await pub(topic);
      for (const marker of new Set(cases.map((c) => c[2]))) await pub(marker, "end");
      for (const [i, s] of subs.entries()) {
        const [pattern, expected, marker] = cases[i]!;
        await s.until(() => s.events.some((e) => e.topic === marker && new TextDecoder().decode(e.data) === "end"), 5_000, `end marker of ${pattern}`);
        await s.cancel();
        const got = s.events.filter((e) => new TextDecoder().decode(e.data) !== "end").map((e) => e.topic);
        expect({ pattern, got }).toEqual({ pattern, got: expected });
      }
    });
  });

  describe("start positions", () => {
    it("live (no start): nothing from before, everything after; Subscribed.head_cursor is the newest event's cursor", async () => {
      const topic = "sp.live";
      await pub(topic, "before1");
      const last = await pub("sp.live.elsewhere", "before2"); // the head is bus-wide
      const sub = Subscriber.open(transport(), { topic });
      const subscribed = await sub.ready();
      expect(subscribed.headCursor).toBe(last.cursor);
      await pub(topic, "after1");
      await pub(topic, "after2");
      await sub.eventCount(2);
      await sub.cancel();
      expect(sub.texts).toEqual(["after1", "after2"]);
      expect(sub.events.map((e) => e.seq)).toEqual([2n, 3n]);
    });

    it("after_cursor = Subscribed.head_cursor resumes exactly after the subscription started", async () => {
      const topic = "sp.head";
      await pub(topic, "old");
      const first = Subscriber.open(transport(), { topic });
      const { headCursor } = await first.ready();
      await first.cancel();
      await pub(topic, "n1");
      await pub(topic, "n2");
      const second = Subscriber.open(transport(), { topic, start: { case: "afterCursor", value: headCursor } });
      await second.eventCount(2);
      await second.cancel();
      expect(second.texts).toEqual(["n1", "n2"]);
    });

    it("from_seq within retention: that seq onwards, then live", async () => {
      const topic = "sp.fromseq";
      for (let i = 1; i <= 10; i++) await pub(topic, `e${i}`);
      const sub = Subscriber.open(transport(), { topic, start: { case: "fromSeq", value: 4n } });
      await sub.eventCount(7);
      await pub(topic, "e11");
      await sub.eventCount(8);
      await sub.cancel();
      expect(sub.events.map((e) => e.seq)).toEqual([4n, 5n, 6n, 7n, 8n, 9n, 10n, 11n]);
      expect(sub.gaps).toEqual([]);
    });

    it("from_seq = next seq waits for it; from_seq on an unknown topic starts at that seq", async () => {
      const topic = "sp.fromseq.next";
      for (let i = 1; i <= 3; i++) await pub(topic, `e${i}`);
      const next = Subscriber.open(transport(), { topic, start: { case: "fromSeq", value: 4n } });
      const fresh = Subscriber.open(transport(), { topic: "sp.fromseq.fresh", start: { case: "fromSeq", value: 1n } });
      await next.ready();
      await fresh.ready();
      await pub(topic, "e4");
      await pub("sp.fromseq.fresh", "f1");
      await next.eventCount(1);
      await fresh.eventCount(1);
      await next.cancel();
      await fresh.cancel();
      expect(next.texts).toEqual(["e4"]);
      expect(fresh.texts).toEqual(["f1"]);
    });

    it("from_seq below retention: Gap(TRIMMED) for the missing seqs, then every retained event", async () => {
      const topic = "sp.fromseq.trimmed";
      for (let i = 1; i <= 30; i++) await pub(topic, `e${i}`); // e11..e30 retained
      const sub = Subscriber.open(transport(), { topic, start: { case: "fromSeq", value: 1n } });
      await sub.eventCount(RETENTION);
      await sub.cancel();
      expect(sub.kinds.slice(0, 3)).toEqual(["subscribed", "gap", "event"]);
      const gap = sub.gaps[0]!;
      expect({ topic: gap.topic, from: gap.fromSeq, to: gap.toSeq, reason: gap.reason }).toEqual({
        topic,
        from: 1n,
        to: 10n,
        reason: GapReason.TRIMMED,
      });
      expect(sub.events.map((e) => Number(e.seq))).toEqual(Array.from({ length: 20 }, (_, i) => i + 11));
      expect(sub.gaps).toHaveLength(1);
    });

    it("last N across topics: the N newest matching events in publish order, then live", async () => {
      const order = ["sp.last.a", "sp.last.b", "sp.last.a", "sp.last.c", "sp.nolast.a", "sp.last.b", "sp.last.c", "sp.last.a"];
      for (const [i, topic] of order.entries()) await pub(topic, `m${i}`);
      const sub = Subscriber.open(transport(), { topic: "sp.last.*", start: { case: "last", value: 4 } });
      await sub.eventCount(4);
      await pub("sp.last.b", "live");
      await sub.eventCount(5);
      await sub.cancel();
      expect(sub.texts).toEqual(["m3", "m5", "m6", "m7", "live"]);
      expect(sub.positions).toEqual(["sp.last.c#1", "sp.last.b#2", "sp.last.c#2", "sp.last.a#3", "sp.last.b#3"]);

      const more = Subscriber.open(transport(), { topic: "sp.last.*", start: { case: "last", value: 1000 } });
      await more.eventCount(8);
      await more.cancel();
      expect(more.texts).toEqual(["m0", "m1", "m2", "m3", "m5", "m6", "m7", "live"]);

      const zero = Subscriber.open(transport(), { topic: "sp.last.*", start: { case: "last", value: 0 } });
      await zero.ready();
      await pub("sp.last.c", "after-zero");
      await zero.eventCount(1);
      await zero.cancel();
      expect(zero.texts).toEqual(["after-zero"]);
    });

    it("earliest: every retained matching event in publish order (trimmed topics start at their oldest retained, no gap)", async () => {
      await pub("sp.early.a", "a1");
      await pub("sp.early.b", "b1");
      for (let i = 2; i <= 25; i++) await pub("sp.early.a", `a${i}`); // a6..a25 retained
      await pub("sp.early.b", "b2");
      const sub = Subscriber.open(transport(), { topic: "sp.early.>", start: { case: "earliest", value: true } });
      await sub.eventCount(22);
      await sub.cancel();
      expect(sub.texts).toEqual(["b1", ...Array.from({ length: 20 }, (_, i) => `a${i + 6}`), "b2"]);
      expect(sub.gaps).toEqual([]);
    });
  });

  describe("Subscribed and seqs", () => {
    const starts: [string, SubscribeInit["start"]][] = [
      ["live", { case: undefined }],
      ["earliest", { case: "earliest", value: true }],
      ["last", { case: "last", value: 3 }],
      ["from_seq", { case: "fromSeq", value: 1n }],
    ];
    for (const [name, start] of starts) {
      it(`Subscribed is first for a ${name} start, with the heartbeat interval and the head cursor`, async () => {
        const topic = `sf.${name}`;
        for (let i = 1; i <= 5; i++) await pub(topic, `e${i}`);
        const head = await pub("sf.other", "newest");
        const sub = Subscriber.open(transport(), { topic, start, heartbeatMs: 0 });
        const subscribed = await sub.ready();
        expect(subscribed.heartbeatMs).toBe(30_000);
        expect(subscribed.headCursor).toBe(head.cursor);
        expect(subscribed.subscriptionId).toMatch(/\S+/);
        if (name !== "live") await sub.eventCount(name === "last" ? 3 : 5);
        await sub.cancel();
        expect(sub.kinds[0]).toBe("subscribed");
        expect(sub.kinds.filter((k) => k === "subscribed")).toHaveLength(1);
      });
    }

    it("seq counts per topic from 1 without holes, also under concurrent publishes", async () => {
      const topics = ["sq.a", "sq.b", "sq.c"];
      const sub = Subscriber.open(transport(), { topic: "sq.*" });
      await sub.ready();
      const results = await Promise.all(
        Array.from({ length: 150 }, (_, i) => client.publish({ topic: topics[i % 3]!, data: enc(String(i)) }).then((r) => ({ topic: topics[i % 3]!, seq: r.seq }))),
      );
      for (const topic of topics) {
        const seqs = results.filter((r) => r.topic === topic).map((r) => Number(r.seq)).sort((a, b) => a - b);
        expect(seqs).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
      }
      await sub.eventCount(150);
      await sub.cancel();
      for (const topic of topics) {
        const delivered = sub.events.filter((e) => e.topic === topic).map((e) => Number(e.seq));
        expect(delivered).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
      }
    });
  });
});
