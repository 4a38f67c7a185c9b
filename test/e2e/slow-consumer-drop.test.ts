/**
 * Drop-oldest: a subscriber that stops reading loses its oldest queued events
 * instead of its stream. The events it misses are reported with Gap(DROPPED)
 * whose ranges cover exactly the missing seqs; the stream stays open and
 * keeps delivering. The consumer is a raw HTTP/2 stream that really stops
 * reading (a connect-es client would read ahead).
 */
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { EventService, GapReason, SlowConsumerPolicy, type SubscribeResponse } from "../../gen/runnel/v1/event_pb.js";
import type { RunnelServer } from "../../src/server.js";
import { rawSubscribe, type RawSubscription } from "../harness/raw-connect.js";
import { expectNoStreams, startServer, waitFor } from "../harness/server.js";

const MAX_QUEUE = 10;
const PAYLOAD = new Uint8Array(200).fill(120);

/** Publish `count` events to each topic (round robin), `parallel` calls in flight. */
async function flood(client: Client<typeof EventService>, topics: string[], count: number, parallel = 50): Promise<void> {
  const jobs: string[] = [];
  for (let i = 0; i < count; i++) for (const t of topics) jobs.push(t);
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < jobs.length) {
        const topic = jobs[next++]!;
        await client.publish({ topic, data: PAYLOAD });
      }
    }),
  );
}

async function metric(server: RunnelServer, name: string): Promise<number> {
  const text = await server.metrics.render();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line === undefined ? NaN : Number(line.split(" ").at(-1));
}

/**
 * Walk one topic's messages in order: every seq from 1 to `last` must appear
 * exactly once, either as an event or inside one Gap(DROPPED); returns the
 * gaps and the count of events seen.
 */
function coverage(messages: SubscribeResponse[], topic: string, last: number): { gaps: [number, number][]; events: number } {
  let expected = 1;
  const gaps: [number, number][] = [];
  let events = 0;
  for (const m of messages) {
    if (m.kind.case === "event" && m.kind.value.topic === topic) {
      expect({ topic, seq: Number(m.kind.value.seq) }).toEqual({ topic, seq: expected });
      expected++;
      events++;
    } else if (m.kind.case === "gap" && m.kind.value.topic === topic) {
      const g = m.kind.value;
      expect(g.reason).toBe(GapReason.DROPPED);
      expect({ topic, from: Number(g.fromSeq) }).toEqual({ topic, from: expected });
      expect(g.toSeq).toBeGreaterThanOrEqual(g.fromSeq);
      gaps.push([Number(g.fromSeq), Number(g.toSeq)]);
      expected = Number(g.toSeq) + 1;
    }
  }
  expect({ topic, end: expected - 1 }).toEqual({ topic, end: last });
  return { gaps, events };
}

describe("slow consumer, drop-oldest policy", () => {
  let server: RunnelServer;
  let client: Client<typeof EventService>;
  const raws: RawSubscription[] = [];

  beforeAll(async () => {
    server = await startServer({ maxQueueEvents: MAX_QUEUE, heartbeatMs: 60_000 });
    client = createClient(EventService, createConnectTransport({ baseUrl: server.url, httpVersion: "2" }));
  });
  afterAll(async () => {
    for (const r of raws) await r.close();
    await server.shutdown(1_000);
  });
  afterEach(async () => {
    await expectNoStreams(server);
  });

  it("exact topic: Gap(DROPPED) ranges cover exactly the missing seqs; the stream stays open", async () => {
    const topic = "slow.exact";
    const total = 2_000;
    const droppedBefore = await metric(server, "runnel_events_dropped_total");
    const raw = rawSubscribe(server.url, { topic, slowConsumer: SlowConsumerPolicy.DROP_OLDEST }, { initialWindowSize: 1024 });
    raws.push(raw);
    await waitFor(() => server.bus.stats().subscriptionsActive === 1, 5_000, "subscription registered");

    await flood(client, [topic], total);
    const entry = server.ledger.list()[0]!;
    await waitFor(() => entry.queued === MAX_QUEUE, 5_000, "queue full");
    const dropped = (await metric(server, "runnel_events_dropped_total")) - droppedBefore;
    expect(dropped).toBeGreaterThan(0);
    expect(server.ledger.size).toBe(1); // still open

    raw.startReading();
    await raw.until(() => raw.messages.some((m) => m.kind.case === "event" && m.kind.value.seq === BigInt(total)), 10_000, "last event");
    // The stream survived: a later publish arrives.
    await client.publish({ topic, data: PAYLOAD });
    await raw.until(() => raw.messages.some((m) => m.kind.case === "event" && m.kind.value.seq === BigInt(total + 1)), 10_000, "event after the gap");

    expect(raw.responseHeaders?.[":status"]).toBe(200);
    expect(raw.endStream).toBeUndefined();
    expect(raw.messages[0]!.kind.case).toBe("subscribed");
    const { gaps, events } = coverage(raw.messages, topic, total + 1);
    expect(gaps.length).toBeGreaterThanOrEqual(1);
    const gapTotal = gaps.reduce((n, [from, to]) => n + (to - from + 1), 0);
    expect(gapTotal + events).toBe(total + 1);
    expect(gapTotal).toBe(dropped); // everything counted as dropped was reported, and nothing else
    expect(await metric(server, "runnel_events_dropped_total")).toBe(droppedBefore + dropped);
    expect(entry.eventsSent).toBe(events);

    await raw.close();
  });

  it("pattern over two topics: one gap range per topic, each covering exactly that topic's missing seqs", async () => {
    const topics = ["slow.pat.a", "slow.pat.b"];
    const perTopic = 1_000;
    const droppedBefore = await metric(server, "runnel_events_dropped_total");
    const raw = rawSubscribe(server.url, { topic: "slow.pat.*", slowConsumer: SlowConsumerPolicy.DROP_OLDEST }, { initialWindowSize: 1024 });
    raws.push(raw);
    await waitFor(() => server.bus.stats().subscriptionsActive === 1, 5_000, "subscription registered");
    await flood(client, topics, perTopic);
    const entry = server.ledger.list()[0]!;
    await waitFor(() => entry.queued === MAX_QUEUE, 5_000, "queue full");

    raw.startReading();
    const lastSeen = (t: string): boolean => raw.messages.some((m) => m.kind.case === "event" && m.kind.value.topic === t && m.kind.value.seq === BigInt(perTopic));
    await raw.until(() => topics.every(lastSeen), 10_000, "last event of each topic");
    await client.publish({ topic: topics[0]!, data: PAYLOAD });
    await raw.until(() => raw.messages.some((m) => m.kind.case === "event" && m.kind.value.seq === BigInt(perTopic + 1)), 10_000, "event after the gap");

    const dropped = (await metric(server, "runnel_events_dropped_total")) - droppedBefore;
    const a = coverage(raw.messages, topics[0]!, perTopic + 1);
    const b = coverage(raw.messages, topics[1]!, perTopic);
    const gapTotal = [...a.gaps, ...b.gaps].reduce((n, [from, to]) => n + (to - from + 1), 0);
    expect(gapTotal).toBeGreaterThan(0);
    expect(gapTotal).toBe(dropped);
    expect(raw.endStream).toBeUndefined();
    await raw.close();
  });
});
