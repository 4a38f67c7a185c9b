/**
 * Subscribers speaking JSON and binary protobuf, over Connect and gRPC-web,
 * must see exactly the same events (one shared message per event serves all).
 */
import { createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { toJson } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventSchema, EventService, type Event } from "../../gen/runnel/v1/event_pb.js";
import type { RunnelServer } from "../../src/server.js";
import { expectNoStreams, startServer } from "../harness/server.js";

async function eventsVia(transport: Transport, topic: string, count: number): Promise<Event[]> {
  const client = createClient(EventService, transport);
  const abort = new AbortController();
  const events: Event[] = [];
  for await (const m of client.subscribe({ topic, start: { case: "earliest", value: true } }, { signal: abort.signal })) {
    if (m.kind.case === "event") events.push(m.kind.value);
    if (events.length === count) {
      abort.abort();
      break;
    }
  }
  return events;
}

describe("event encodings", () => {
  let server: RunnelServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(() => server.shutdown(1_000));

  it("JSON and binary subscribers over Connect and gRPC-web receive the same events", async () => {
    const client = createClient(EventService, createConnectTransport({ baseUrl: server.url, httpVersion: "2" }));
    const topic = "enc.e2e";
    for (let i = 0; i < 5; i++) {
      await client.publish({ topic, data: new Uint8Array([i, 200, 7]), headers: { n: String(i), emoji: "🙂" } });
    }
    const variants: Transport[] = [
      createConnectTransport({ baseUrl: server.url, httpVersion: "2", useBinaryFormat: true }),
      createConnectTransport({ baseUrl: server.url, httpVersion: "2", useBinaryFormat: false }),
      createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", useBinaryFormat: false }),
      createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1", useBinaryFormat: false }),
      createGrpcWebTransport({ baseUrl: server.url, httpVersion: "2", useBinaryFormat: true }),
    ];
    const results = [];
    for (const t of variants) results.push((await eventsVia(t, topic, 5)).map((e) => toJson(EventSchema, e)));
    expect(results[0]).toHaveLength(5);
    expect((results[0]![2] as { headers: Record<string, string> }).headers).toEqual({ n: "2", emoji: "🙂" });
    for (const r of results.slice(1)) expect(r).toEqual(results[0]);
    await expectNoStreams(server);
  });
});
