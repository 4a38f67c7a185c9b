/**
 * A node cut off from Redis while the firehose is trimmed past its reader:
 * when it comes back, the reader sees the firehose count jump, and its
 * subscriptions replay what they missed from the topic streams: every event
 * exactly once, in order, on a subscription that stayed open throughout.
 */
import net, { type Socket } from "node:net";
import { Writable } from "node:stream";
import { afterAll, beforeAll, expect, it } from "vitest";
import { pino } from "pino";
import { createRedisBus, type RedisBus } from "../../src/bus/redis-bus.js";
import { waitFor } from "../harness/server.js";
import { describeRedis, startRedis, type RedisProcess } from "../harness/redis.js";
import { bytes, recordingSink } from "./sinks.js";

/** A relay to Redis that can be taken down (connections cut, new ones refused) and brought back. */
async function gate(targetPort: number): Promise<{ url: string; down(): void; up(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let open = true;
  const server = net.createServer((client) => {
    if (!open) {
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, "127.0.0.1");
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("error", () => undefined);
      s.on("close", () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `redis://127.0.0.1:${port}`,
    down() {
      open = false;
      for (const s of sockets) s.destroy();
    },
    up() {
      open = true;
    },
    close: () => new Promise((r) => server.close(() => r())),
  };
}

describeRedis("Redis bus: a reader that missed trimmed firehose entries", () => {
  let redis: RedisProcess;
  let g: Awaited<ReturnType<typeof gate>>;
  let a: RedisBus;
  let b: RedisBus;
  const logs: string[] = [];
  beforeAll(async () => {
    redis = await startRedis();
    g = await gate(redis.port);
    a = createRedisBus({ url: redis.url, log: pino({ level: "silent" }) });
    const capture = new Writable({
      write(chunk: Buffer, _enc, done) {
        logs.push(chunk.toString());
        done();
      },
    });
    b = createRedisBus({ url: g.url, log: pino({ level: "warn" }, capture) });
    await Promise.all([a.ready(), b.ready()]);
  });
  afterAll(async () => {
    await a.close();
    await b.close();
    await g.close();
    await redis.stop();
  });

  it("replays from the topic streams: every event once, in order", async () => {
    const sink = recordingSink();
    const sub = b.subscribe({ pattern: "rs.>", start: { kind: "live" } }, sink);
    await a.publish("rs.t", bytes("1"), {});
    await waitFor(() => sink.events().length === 1, 5_000, "first event");

    g.down();
    await waitFor(() => !b.health().connected, 5_000, "node B cut off");
    for (let i = 2; i <= 6; i++) await a.publish(i % 2 === 0 ? "rs.t" : "rs.u", bytes(String(i)), {});
    const probe = redis.client();
    await probe.call("XTRIM", "runnel:firehose", "MAXLEN", "0");
    probe.disconnect();
    g.up();
    await waitFor(() => b.health().connected, 15_000, "node B back");
    await a.publish("rs.t", bytes("7"), {});

    await waitFor(() => sink.events().length === 7, 15_000, "7 events");
    expect(sink.events().map((e) => new TextDecoder().decode(e.data))).toEqual(["1", "2", "3", "4", "5", "6", "7"]);
    expect(sink.gaps()).toEqual([]);
    expect(logs.some((l) => l.includes("fell behind the firehose"))).toBe(true);
    sub.close();
    expect(b.stats().subscriptionsActive).toBe(0);
  });
});
