/**
 * In-band heartbeats: the interval a client asks for is clamped to the
 * server's bounds and reported in Subscribed; heartbeats flow at about that
 * interval while nothing else is sent, and carry the resume cursor.
 */
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { EventService } from "../../gen/runnel/v1/event_pb.js";
import type { RunnelServer } from "../../src/server.js";
import { startServer, waitFor } from "../harness/server.js";
import { Subscriber } from "../harness/subscriber.js";
import { TRANSPORTS } from "../harness/transports.js";

const MIN = 50;
const MAX = 2_000;
const DEFAULT = 500;
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

describe("heartbeats", () => {
  let server: RunnelServer;
  let client: Client<typeof EventService>;
  beforeAll(async () => {
    server = await startServer({ heartbeatMinMs: MIN, heartbeatMaxMs: MAX, heartbeatMs: DEFAULT });
    client = createClient(EventService, createConnectTransport({ baseUrl: server.url, httpVersion: "2" }));
  });
  afterAll(async () => {
    await server.shutdown(1_000);
  });
  afterEach(async () => {
    await waitFor(() => server.ledger.size === 0, 5_000, "ledger empty");
  });

  it("heartbeat_ms=100 gives heartbeats at about that spacing on every transport", async () => {
    const subs = TRANSPORTS.map((t) => Subscriber.open(t.create(server.url), { topic: `hb.spacing.${t.http2 ? "h2" : "h1"}`, heartbeatMs: 100 }));
    for (const s of subs) expect((await s.ready()).heartbeatMs).toBe(100);
    // A window of about one second, measured from the first heartbeat of each stream.
    for (const s of subs) await s.until(() => s.heartbeats.length >= 1, 5_000, "first heartbeat");
    const counts0 = subs.map((s) => s.heartbeats.length);
    await new Promise((r) => setTimeout(r, 1_000));
    const counts = subs.map((s, i) => s.heartbeats.length - counts0[i]!);
    for (const s of subs) await s.cancel();
    for (const [i, n] of counts.entries()) {
      expect({ transport: TRANSPORTS[i]!.name, n, atLeast3: n >= 3, atMost15: n <= 15 }).toEqual({
        transport: TRANSPORTS[i]!.name,
        n,
        atLeast3: true,
        atMost15: true,
      });
    }
    // Nothing but heartbeats after Subscribed on an idle stream.
    for (const s of subs) expect(new Set(s.kinds.slice(1))).toEqual(new Set(["heartbeat"]));
  });

  const clamps: [asked: number, inForce: number][] = [
    [1, MIN],
    [49, MIN],
    [MIN, MIN],
    [777, 777],
    [MAX, MAX],
    [999_999, MAX],
    [0, DEFAULT],
  ];
  for (const [asked, inForce] of clamps) {
    it(`heartbeat_ms=${asked} -> Subscribed.heartbeat_ms=${inForce}`, async () => {
      const sub = Subscriber.open(TRANSPORTS[1]!.create(server.url), { topic: "hb.clamp", heartbeatMs: asked });
      expect((await sub.ready()).heartbeatMs).toBe(inForce);
      await sub.cancel();
    });
  }

  it("the clamped minimum is what the stream really uses (heartbeat_ms=1 does not flood)", async () => {
    const sub = Subscriber.open(TRANSPORTS[2]!.create(server.url), { topic: "hb.flood", heartbeatMs: 1 });
    await sub.ready();
    await sub.until(() => sub.heartbeats.length >= 1, 5_000, "first heartbeat");
    const n0 = sub.heartbeats.length;
    await new Promise((r) => setTimeout(r, 500));
    const n = sub.heartbeats.length - n0;
    await sub.cancel();
    // At 50 ms, about 10 in 500 ms; at 1 ms it would be hundreds.
    expect(n).toBeGreaterThanOrEqual(3);
    expect(n).toBeLessThanOrEqual(20);
  });

  it("heartbeats carry the resume cursor: the head cursor before any event, then the last event's cursor", async () => {
    const topic = "hb.cursor";
    await client.publish({ topic: "hb.elsewhere", data: enc("before") });
    const sub = Subscriber.open(TRANSPORTS[1]!.create(server.url), { topic, heartbeatMs: 100 });
    const { headCursor } = await sub.ready();
    await sub.until(() => sub.heartbeats.length >= 1, 5_000, "heartbeat before events");
    expect(sub.heartbeats[0]!.cursor).toBe(headCursor);
    expect(sub.heartbeats[0]!.time).toBeDefined();

    const published = [];
    for (let i = 1; i <= 3; i++) published.push(await client.publish({ topic, data: enc(`e${i}`) }));
    await sub.eventCount(3);
    const lastEventIndex = sub.messages.length - 1;
    await sub.until(() => sub.messages.length > lastEventIndex + 1 && sub.messages.at(-1)!.kind.case === "heartbeat", 5_000, "heartbeat after events");
    await sub.cancel();
    const after = sub.messages.slice(lastEventIndex + 1);
    const last = sub.events.at(-1)!;
    expect(last.cursor).toBe(published[2]!.cursor);
    for (const m of after) {
      expect(m.kind.case).toBe("heartbeat");
      if (m.kind.case === "heartbeat") expect(m.kind.value.cursor).toBe(last.cursor);
    }
  });

  it("a heartbeat cursor resumes without loss", async () => {
    const topic = "hb.resume";
    const transport = TRANSPORTS[0]!.create(server.url);
    const sub = Subscriber.open(transport, { topic, heartbeatMs: 100 });
    await sub.ready();
    await client.publish({ topic, data: enc("e1") });
    await sub.eventCount(1);
    const n = sub.messages.length;
    await sub.until(() => sub.messages.length > n && sub.messages.at(-1)!.kind.case === "heartbeat", 5_000, "heartbeat");
    await sub.cancel();
    const cursor = sub.heartbeats.at(-1)!.cursor;
    await client.publish({ topic, data: enc("e2") });
    const again = Subscriber.open(transport, { topic, start: { case: "afterCursor", value: cursor } });
    await again.eventCount(1);
    await again.cancel();
    expect(again.texts).toEqual(["e2"]);
  });
});
