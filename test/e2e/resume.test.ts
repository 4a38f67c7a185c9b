/**
 * Resume: a client that leaves (cancel, admin close, server restart) and
 * comes back with its cursor gets exactly what it missed, in order, once;
 * what retention no longer holds is reported with a Gap of exact bounds.
 */
import { Code, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/runnel/v1/admin_pb.js";
import { ClosingReason, EventService, GapReason } from "../../gen/runnel/v1/event_pb.js";
import { rawSubscribe } from "../harness/raw-connect.js";
import type { RunnelServer } from "../../src/server.js";
import { expectNoStreams, startServer, waitFor } from "../harness/server.js";
import { Subscriber } from "../harness/subscriber.js";
import { TRANSPORTS } from "../harness/transports.js";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const slug = (s: string): string => s.replace(/[^a-z0-9]/g, "_");

async function publishAll(client: Client<typeof EventService>, items: [topic: string, data: string][]): Promise<string[]> {
  const cursors: string[] = [];
  for (const [topic, data] of items) cursors.push((await client.publish({ topic, data: enc(data) })).cursor);
  return cursors;
}

describe("resume after a cursor", () => {
  let server: RunnelServer;
  let client: Client<typeof EventService>;
  beforeAll(async () => {
    server = await startServer();
    client = createClient(EventService, createConnectTransport({ baseUrl: server.url, httpVersion: "2" }));
  });
  afterAll(async () => {
    await server.shutdown(1_000);
  });
  afterEach(async () => {
    await expectNoStreams(server);
  });

  for (const t of TRANSPORTS) {
    it(`exact topic over ${t.name}: exactly the missed events, in order, once`, async () => {
      const transport = t.create(server.url);
      const topic = `resume.exact.${slug(t.name)}`;
      const first = Subscriber.open(transport, { topic });
      await first.ready();
      await publishAll(client, [1, 2, 3].map((i) => [topic, `e${i}`]));
      await first.eventCount(3);
      await first.cancel();
      expect(first.error?.code).toBe(Code.Canceled);
      const cursor = first.events.at(-1)!.cursor;

      await publishAll(client, [4, 5, 6, 7].map((i) => [topic, `e${i}`]));
      const second = Subscriber.open(transport, { topic, start: { case: "afterCursor", value: cursor } });
      await second.ready();
      await second.eventCount(4);
      // A live publish after the replay arrives once, right after it.
      await publishAll(client, [[topic, "e8"]]);
      await second.eventCount(5);
      await second.cancel();
      expect(second.texts).toEqual(["e4", "e5", "e6", "e7", "e8"]);
      expect(second.events.map((e) => e.seq)).toEqual([4n, 5n, 6n, 7n, 8n]);
      expect(second.gaps).toEqual([]);
      expect(second.kinds[0]).toBe("subscribed");
    });
  }

  it("pattern across several topics: the missed events of every matching topic, in publish order", async () => {
    const transport = TRANSPORTS[2]!.create(server.url);
    const pattern = "resume.pat.*";
    const first = Subscriber.open(transport, { topic: pattern });
    await first.ready();
    await publishAll(client, [
      ["resume.pat.a", "a1"],
      ["resume.pat.b", "b1"],
      ["resume.other.a", "x1"],
      ["resume.pat.c", "c1"],
    ]);
    await first.eventCount(3);
    await first.cancel();
    expect(first.texts).toEqual(["a1", "b1", "c1"]);
    const cursor = first.events.at(-1)!.cursor;

    const missed: [string, string][] = [
      ["resume.pat.b", "b2"],
      ["resume.pat.a", "a2"],
      ["resume.other.a", "x2"],
      ["resume.pat.a.deep", "deep1"],
      ["resume.pat.d", "d1"],
      ["resume.pat.c", "c2"],
      ["resume.pat.a", "a3"],
    ];
    await publishAll(client, missed);
    const second = Subscriber.open(transport, { topic: pattern, start: { case: "afterCursor", value: cursor } });
    await second.ready();
    await second.eventCount(5);
    await publishAll(client, [["resume.pat.b", "b3"]]);
    await second.eventCount(6);
    await second.cancel();
    expect(second.texts).toEqual(["b2", "a2", "d1", "c2", "a3", "b3"]);
    expect(second.positions).toEqual([
      "resume.pat.b#2",
      "resume.pat.a#2",
      "resume.pat.d#1",
      "resume.pat.c#2",
      "resume.pat.a#3",
      "resume.pat.b#3",
    ]);
    expect(second.gaps).toEqual([]);
  });

  it("resume with the cursor of Closing (admin close) loses nothing", async () => {
    const transport = TRANSPORTS[1]!.create(server.url);
    const admin = createClient(AdminService, transport);
    const topic = "resume.closing";
    const first = Subscriber.open(transport, { topic });
    const { subscriptionId } = await first.ready();
    await publishAll(client, [1, 2, 3].map((i) => [topic, `e${i}`]));
    await first.eventCount(3);
    expect((await admin.closeStream({ id: subscriptionId })).closed).toBe(true);
    await first.finished();
    expect(first.error?.code).toBe(Code.Unavailable);
    expect(first.kinds).toEqual(["subscribed", "event", "event", "event", "closing"]);
    expect(first.closing?.reason).toBe(ClosingReason.ADMIN);
    expect(first.closing?.resumeCursor).toBe(first.events[2]!.cursor);

    await publishAll(client, [4, 5].map((i) => [topic, `e${i}`]));
    const second = Subscriber.open(transport, { topic, start: { case: "afterCursor", value: first.closing!.resumeCursor } });
    await second.eventCount(2);
    await second.cancel();
    expect(second.texts).toEqual(["e4", "e5"]);
  });

  it("admin close in the middle of a flood: events before Closing + events after resume = every event once", async () => {
    const transport = TRANSPORTS[0]!.create(server.url);
    const admin = createClient(AdminService, transport);
    const topic = "resume.flood";
    const total = 300;
    const first = Subscriber.open(transport, { topic });
    const { subscriptionId } = await first.ready();
    const publishing = (async () => {
      for (let i = 1; i <= total; i++) await client.publish({ topic, data: enc(`e${i}`) });
    })();
    await first.eventCount(50);
    await admin.closeStream({ id: subscriptionId });
    await first.finished();
    await publishing;
    expect(first.error?.code).toBe(Code.Unavailable);
    expect(first.kinds.at(-1)).toBe("closing");
    const before = first.events;
    expect(first.closing!.resumeCursor).toBe(before.at(-1)!.cursor);

    const second = Subscriber.open(transport, { topic, start: { case: "afterCursor", value: first.closing!.resumeCursor } });
    await second.eventCount(total - before.length);
    await second.cancel();
    const all = [...before, ...second.events].map((e) => Number(e.seq));
    expect(all).toEqual(Array.from({ length: total }, (_, i) => i + 1));
  });
});

describe("resume after a slow-consumer disconnect", () => {
  it("a stalled subscriber gets Closing(SLOW_CONSUMER) + ResourceExhausted; its resume cursor loses nothing", async () => {
    const server = await startServer({ maxQueueEvents: 10, closeFlushMs: 10_000, heartbeatMs: 60_000 });
    try {
      const client = createClient(EventService, createConnectTransport({ baseUrl: server.url, httpVersion: "2" }));
      const topic = "slowdc.t";
      const total = 1_000;
      // A raw HTTP/2 stream that does not read: the server's writes block once its small window is full.
      const raw = rawSubscribe(server.url, { topic }, { initialWindowSize: 1024 });
      await waitFor(() => server.bus.stats().subscriptionsActive === 1, 5_000, "subscription registered");
      for (let i = 1; i <= total; i++) await client.publish({ topic, data: enc(`e${i}`) });
      const entry = server.ledger.list()[0]!;
      await waitFor(() => "ended" in entry && entry.ended === true, 5_000, "stream ended as a slow consumer");
      expect(server.bus.stats().subscriptionsActive).toBe(0); // the source is released at once, before the Closing is flushed

      raw.startReading();
      await raw.until(() => raw.endStream !== undefined, 10_000, "end of stream");
      expect(raw.endStream!.error?.code).toBe("resource_exhausted");
      const kinds = raw.messages.map((m) => m.kind.case);
      expect(kinds[0]).toBe("subscribed");
      expect(kinds.at(-1)).toBe("closing");
      const closing = raw.messages.at(-1)!.kind.value as { reason: ClosingReason; resumeCursor: string };
      expect(closing.reason).toBe(ClosingReason.SLOW_CONSUMER);
      const before = raw.messages.flatMap((m) => (m.kind.case === "event" ? [m.kind.value] : []));
      expect(before.length).toBeGreaterThan(0);
      expect(before.length).toBeLessThan(total);
      expect(closing.resumeCursor).toBe(before.at(-1)!.cursor);
      await raw.close();
      await waitFor(() => server.ledger.size === 0, 5_000, "ledger empty");
      expect(server.ledger.endedCount("runnel.v1.EventService/Subscribe", "slow_consumer")).toBe(1);

      const again = Subscriber.open(createConnectTransport({ baseUrl: server.url, httpVersion: "2" }), {
        topic,
        start: { case: "afterCursor", value: closing.resumeCursor },
      });
      await again.eventCount(total - before.length);
      await again.cancel();
      expect([...before, ...again.events].map((e) => Number(e.seq))).toEqual(Array.from({ length: total }, (_, i) => i + 1));
      expect(again.gaps).toEqual([]);
    } finally {
      await server.shutdown(1_000);
    }
  });
});

describe("resume past retention", () => {
  let server: RunnelServer;
  let client: Client<typeof EventService>;
  beforeAll(async () => {
    server = await startServer({ retentionEvents: 5 });
    client = createClient(EventService, createConnectTransport({ baseUrl: server.url, httpVersion: "2" }));
  });
  afterAll(async () => {
    await server.shutdown(1_000);
  });
  afterEach(async () => {
    await waitFor(() => server.ledger.size === 0, 5_000, "ledger empty");
  });

  it("exact topic: Gap(TRIMMED) with the exact bounds, then the retained events", async () => {
    const transport = TRANSPORTS[1]!.create(server.url);
    const topic = "trim.exact";
    const first = Subscriber.open(transport, { topic });
    await first.ready();
    await publishAll(client, [1, 2].map((i) => [topic, `e${i}`]));
    await first.eventCount(2);
    await first.cancel();

    await publishAll(client, Array.from({ length: 10 }, (_, i) => [topic, `e${i + 3}`] as [string, string])); // e3..e12; e8..e12 retained
    const second = Subscriber.open(transport, { topic, start: { case: "afterCursor", value: first.events[1]!.cursor } });
    await second.eventCount(5);
    await second.cancel();
    expect(second.kinds).toEqual(["subscribed", "gap", "event", "event", "event", "event", "event"]);
    const gap = second.gaps[0]!;
    expect({ topic: gap.topic, from: gap.fromSeq, to: gap.toSeq, reason: gap.reason }).toEqual({
      topic,
      from: 3n,
      to: 7n,
      reason: GapReason.TRIMMED,
    });
    expect(second.events.map((e) => e.seq)).toEqual([8n, 9n, 10n, 11n, 12n]);
  });

  it("pattern: one Gap(TRIMMED) per topic, each right before that topic's first retained event", async () => {
    const transport = TRANSPORTS[2]!.create(server.url);
    const pattern = "trim.pat.*";
    const first = Subscriber.open(transport, { topic: pattern });
    await first.ready();
    await publishAll(client, [
      ["trim.pat.a", "a1"],
      ["trim.pat.b", "b1"],
    ]);
    await first.eventCount(2);
    await first.cancel();
    const interleaved: [string, string][] = [];
    for (let i = 2; i <= 9; i++) interleaved.push(["trim.pat.a", `a${i}`], ["trim.pat.b", `b${i}`]);
    await publishAll(client, interleaved); // a5..a9 and b5..b9 retained
    const second = Subscriber.open(transport, { topic: pattern, start: { case: "afterCursor", value: first.events[1]!.cursor } });
    await second.eventCount(10);
    await second.cancel();
    const seen = second.messages.slice(1).map((m) => {
      if (m.kind.case === "gap") return `gap ${m.kind.value.topic} ${m.kind.value.fromSeq}-${m.kind.value.toSeq} ${GapReason[m.kind.value.reason]}`;
      if (m.kind.case === "event") return `${m.kind.value.topic}#${m.kind.value.seq}`;
      return m.kind.case;
    });
    expect(seen).toEqual([
      "gap trim.pat.a 2-4 TRIMMED",
      "trim.pat.a#5",
      "gap trim.pat.b 2-4 TRIMMED",
      "trim.pat.b#5",
      "trim.pat.a#6",
      "trim.pat.b#6",
      "trim.pat.a#7",
      "trim.pat.b#7",
      "trim.pat.a#8",
      "trim.pat.b#8",
      "trim.pat.a#9",
      "trim.pat.b#9",
    ]);
  });
});

describe("resume across a restart", () => {
  it("a cursor from another server instance yields Gap(RESET), then the new server's events", async () => {
    const topic = "restart.t";
    const old = await startServer();
    let cursor: string;
    try {
      const oldClient = createClient(EventService, createConnectTransport({ baseUrl: old.url, httpVersion: "2" }));
      const sub = Subscriber.open(createConnectTransport({ baseUrl: old.url, httpVersion: "2" }), { topic });
      await sub.ready();
      await publishAll(oldClient, [1, 2, 3].map((i) => [topic, `old${i}`]));
      await sub.eventCount(3);
      await sub.cancel();
      cursor = sub.events[2]!.cursor;
    } finally {
      await old.shutdown(1_000);
    }

    const fresh = await startServer();
    try {
      const transport = createConnectTransport({ baseUrl: fresh.url, httpVersion: "2" });
      const freshClient = createClient(EventService, transport);
      await publishAll(freshClient, [1, 2].map((i) => [topic, `new${i}`]));
      const sub = Subscriber.open(transport, { topic, start: { case: "afterCursor", value: cursor } });
      await sub.eventCount(2);
      await publishAll(freshClient, [[topic, "new3"]]);
      await sub.eventCount(3);
      await sub.cancel();
      expect(sub.kinds).toEqual(["subscribed", "gap", "event", "event", "event"]);
      const gap = sub.gaps[0]!;
      expect({ topic: gap.topic, from: gap.fromSeq, to: gap.toSeq, reason: gap.reason }).toEqual({
        topic,
        from: 0n,
        to: 0n,
        reason: GapReason.RESET,
      });
      expect(sub.texts).toEqual(["new1", "new2", "new3"]);
      expect(sub.events.map((e) => e.seq)).toEqual([1n, 2n, 3n]);
      await waitFor(() => fresh.ledger.size === 0, 5_000, "ledger empty");
    } finally {
      await fresh.shutdown(1_000);
    }
  });
});
