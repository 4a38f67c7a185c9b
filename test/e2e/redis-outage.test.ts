/**
 * Redis goes away mid-stream (redis-server SIGKILLed) and comes back on the
 * same port. The documented behaviour: publishes fail fast with Unavailable;
 * live streams stay open with heartbeats; when Redis returns with its data
 * (append-only file), streams continue from where they were, without loss or
 * duplicates; when it returns without its data, streams get one Gap(RESET) and
 * continue with the new events. Metrics show the connection state and
 * reconnects; the ledger is back to zero after the clients leave.
 */
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterEach, expect, it } from "vitest";
import { EventService, GapReason } from "../../gen/runnel/v1/event_pb.js";
import type { RunnelServer } from "../../src/server.js";
import { heldResources } from "../../src/stream/scope.js";
import { subscribe } from "../harness/lifecycle.js";
import { parseProm, promValue } from "../harness/prom.js";
import { describeRedis, startRedis, type RedisProcess } from "../harness/redis.js";
import { expectNoStreams, startServer, waitFor } from "../harness/server.js";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

describeRedis("Redis outage: kill -9 redis-server mid-stream, restart on the same port", () => {
  let redis: RedisProcess | undefined;
  const servers: RunnelServer[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.shutdown(500);
    await redis?.stop();
  });

  const node = async (url: string): Promise<{ server: RunnelServer; client: Client<typeof EventService> }> => {
    const server = await startServer({ bus: url, heartbeatMinMs: 100 });
    servers.push(server);
    return { server, client: createClient(EventService, createConnectTransport({ baseUrl: server.url, httpVersion: "2" })) };
  };

  /** Publish once Redis is back (each failed attempt must be Unavailable); bounded against hangs. */
  async function publishWhenBack(client: Client<typeof EventService>, topic: string, data: string): Promise<bigint> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        return (await client.publish({ topic, data: enc(data) })).seq;
      } catch (e) {
        expect(ConnectError.from(e).code).toBe(Code.Unavailable);
        if (Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  it("with its data (AOF): Unavailable, heartbeats, then the same streams continue without loss or duplicates", async () => {
    redis = await startRedis({ aof: true });
    const a = await node(redis.url);
    const b = await node(redis.url);
    const live = subscribe(a.client, { topic: "out.>", heartbeatMs: 200 });
    await live.subscribed;
    for (let i = 1; i <= 5; i++) await b.client.publish({ topic: "out.t", data: enc(`m${i}`) });
    await waitFor(() => live.events().length === 5, 10_000, "5 events before the outage");

    await redis.kill();
    const started = Date.now();
    const err = await a.client.publish({ topic: "out.t", data: enc("lost") }).then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(err?.code).toBe(Code.Unavailable);
    expect(Date.now() - started).toBeLessThan(5_000); // fails fast, not after a queue drains: a hang bound, generous
    await waitFor(async () => promValue(parseProm(await a.server.metrics.render()), "runnel_redis_connected") === 0, 10_000, "connected gauge 0");
    // A subscriber that asks for history while Redis is away waits (with heartbeats) instead of failing.
    const replay = subscribe(a.client, { topic: "out.>", start: { case: "earliest", value: true }, heartbeatMs: 200 });
    await replay.subscribed;
    const beats = live.messages.filter((m) => m.kind.case === "heartbeat").length;
    await waitFor(() => live.messages.filter((m) => m.kind.case === "heartbeat").length >= beats + 2, 10_000, "heartbeats during the outage");

    await redis.restart();
    const seq6 = await publishWhenBack(b.client, "out.t", "m6");
    for (let i = 7; i <= 10; i++) await b.client.publish({ topic: "out.t", data: enc(`m${i}`) });
    expect(seq6).toBe(6n);
    await waitFor(() => live.events().length === 10 && replay.events().length === 10, 15_000, "10 events on both streams");
    const seqs = (s: typeof live) => s.events().map((e) => Number(e.seq));
    expect(seqs(live)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(seqs(replay)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(live.messages.some((m) => m.kind.case === "gap")).toBe(false);
    const metrics = parseProm(await a.server.metrics.render());
    expect(promValue(metrics, "runnel_redis_connected")).toBe(1);
    expect(promValue(metrics, "runnel_redis_reconnects_total")).toBeGreaterThanOrEqual(1);

    live.abort.abort();
    replay.abort.abort();
    await Promise.all([live.done, replay.done]);
    await expectNoStreams(a.server);
    expect([...heldResources()]).toEqual([]);
  });

  it("without its data: one Gap(RESET), then the new events (seqs restart at 1)", async () => {
    redis = await startRedis();
    const a = await node(redis.url);
    const live = subscribe(a.client, { topic: "reset.t", heartbeatMs: 200 });
    await live.subscribed;
    for (let i = 1; i <= 3; i++) await a.client.publish({ topic: "reset.t", data: enc(`m${i}`) });
    await waitFor(() => live.events().length === 3, 10_000, "3 events");
    await redis.kill();
    await redis.restart();
    expect(await publishWhenBack(a.client, "reset.t", "n1")).toBe(1n);
    await waitFor(() => live.events().length === 4, 15_000, "the new event");
    const seen = live.messages.flatMap((m) =>
      m.kind.case === "gap" ? [`gap:${GapReason[m.kind.value.reason]}`] : m.kind.case === "event" ? [String(m.kind.value.seq)] : [],
    );
    expect(seen).toEqual(["1", "2", "3", "gap:RESET", "1"]);
    live.abort.abort();
    await live.done;
    await expectNoStreams(a.server);
  });
});
