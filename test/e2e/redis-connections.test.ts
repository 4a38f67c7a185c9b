/**
 * Backend cost is constant in subscribers: one node holds the same number of
 * Redis connections (CLIENT LIST, as redis-server counts them) with 1
 * subscriber as with 1,000, and subscribing or leaving opens or closes none.
 * Every one of the 1,000 gets the event published on another node.
 */
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { EventService } from "../../gen/runnel/v1/event_pb.js";
import type { RunnelServer } from "../../src/server.js";
import { subscribe, type Subscriber } from "../harness/lifecycle.js";
import { parseProm, promValue } from "../harness/prom.js";
import { connectionFigures, describeRedis, startRedis, type RedisProcess } from "../harness/redis.js";
import { expectNoStreams, startServer, waitFor } from "../harness/server.js";

describeRedis("Redis connections per node", () => {
  let redis: RedisProcess;
  let server: RunnelServer;
  let other: RunnelServer;
  let probe: Redis;
  beforeAll(async () => {
    redis = await startRedis();
    probe = redis.client();
    server = await startServer({ bus: redis.url });
    other = await startServer({ bus: redis.url });
  });
  afterAll(async () => {
    await server.shutdown(1_000);
    await other.shutdown(1_000);
    probe.disconnect();
    await redis.stop();
  });

  it("CLIENT LIST shows the same count with 1,000 subscribers as with 1 (two per node); none opened or closed", async () => {
    const idle = await connectionFigures(probe);
    expect(idle.open).toBe(4); // two nodes, two connections each
    // Ten HTTP/2 sessions of 100 streams each.
    const clients: Client<typeof EventService>[] = Array.from({ length: 10 }, () =>
      createClient(EventService, createConnectTransport({ baseUrl: server.url, httpVersion: "2" })),
    );
    const subs: Subscriber[] = [subscribe(clients[0]!, { topic: "fan.>" })];
    await subs[0]!.subscribed;
    expect(await connectionFigures(probe)).toEqual(idle);
    for (let i = 1; i < 1_000; i++) subs.push(subscribe(clients[i % 10]!, { topic: i % 2 === 0 ? "fan.>" : "fan.out" }));
    await Promise.all(subs.map((s) => s.subscribed));
    expect(server.bus.stats().subscriptionsActive).toBe(1_000);
    expect(await connectionFigures(probe)).toEqual(idle);

    const pub = createClient(EventService, createConnectTransport({ baseUrl: other.url, httpVersion: "2" }));
    await pub.publish({ topic: "fan.out", data: new TextEncoder().encode("x") });
    await waitFor(() => subs.every((s) => s.events().length === 1), 30_000, "the event on all 1,000 streams");
    const metrics = parseProm(await server.metrics.render());
    expect(promValue(metrics, "runnel_redis_connected")).toBe(1);
    expect(promValue(metrics, "runnel_redis_reader_lag_seconds")).toBeGreaterThanOrEqual(0);
    expect(promValue(metrics, "runnel_bus_subscriptions_active")).toBe(1_000);

    for (const s of subs) s.abort.abort();
    await Promise.all(subs.map((s) => s.done));
    await expectNoStreams(server, 15_000);
    expect(await connectionFigures(probe)).toEqual(idle);
  });

  it("a node's shutdown closes its two Redis connections (the reader's blocking XREAD included)", async () => {
    const before = await connectionFigures(probe);
    await other.shutdown(1_000);
    await waitFor(async () => (await connectionFigures(probe)).open === before.open - 2, 10_000, "the node's connections closed");
    expect((await connectionFigures(probe)).everAccepted).toBe(before.everAccepted);
  });
});
