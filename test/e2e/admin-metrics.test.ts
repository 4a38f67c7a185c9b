/**
 * The operator's view: AdminService lists every live stream as the ledger
 * knows it and closes one with Closing(ADMIN); /metrics exposes every metric
 * DESIGN.md names with values that match what happened; /healthz says ok,
 * and 503 while shutting down; plain Connect JSON over HTTP/1.1 (what
 * `buf curl` sends) works.
 */
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/runnel/v1/admin_pb.js";
import { ClosingReason, EventService, SlowConsumerPolicy } from "../../gen/runnel/v1/event_pb.js";
import type { RunnelServer } from "../../src/server.js";
import { openFdCount } from "../harness/procfs.js";
import { parseProm, promFamilies, promValue, type Sample } from "../harness/prom.js";
import { rawSubscribe } from "../harness/raw-connect.js";
import { startServer, waitFor } from "../harness/server.js";
import { Subscriber } from "../harness/subscriber.js";
import { TRANSPORTS } from "../harness/transports.js";

const SUBSCRIBE = "runnel.v1.EventService/Subscribe";
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const slug = (s: string): string => s.replace(/[^a-z0-9]/g, "_");

async function scrape(server: RunnelServer): Promise<{ text: string; samples: Sample[] }> {
  const res = await fetch(`${server.url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
  const text = await res.text();
  return { text, samples: parseProm(text) };
}

describe("AdminService and /metrics", () => {
  let server: RunnelServer;
  let events: Client<typeof EventService>;
  let admin: Client<typeof AdminService>;
  beforeAll(async () => {
    server = await startServer({ heartbeatMs: 60_000 });
    const transport = createConnectTransport({ baseUrl: server.url, httpVersion: "2" });
    events = createClient(EventService, transport);
    admin = createClient(AdminService, transport);
  });
  afterAll(async () => {
    await server.shutdown(1_000);
  });

  it("every metric DESIGN.md names is exposed, at zero on a fresh server", async () => {
    const { text, samples } = await scrape(server);
    const families = promFamilies(text);
    for (const name of [
      "runnel_streams_active",
      "runnel_bus_subscriptions_active",
      "runnel_tail_watchers_active",
      "runnel_tail_open_files",
      "runnel_streams_ended_total",
      "runnel_stream_release_seconds",
      "runnel_events_published_total",
      "runnel_events_delivered_total",
      "runnel_events_dropped_total",
      "process_open_fds",
    ]) {
      expect(families, name).toContain(name);
    }
    expect(promValue(samples, "runnel_streams_active", { rpc: SUBSCRIBE })).toBe(0);
    expect(promValue(samples, "runnel_bus_subscriptions_active")).toBe(0);
    expect(promValue(samples, "runnel_tail_watchers_active")).toBe(0);
    expect(promValue(samples, "runnel_tail_open_files")).toBe(0);
    expect(promValue(samples, "runnel_events_published_total")).toBe(0);
    expect(promValue(samples, "runnel_events_delivered_total")).toBe(0);
    expect(promValue(samples, "runnel_events_dropped_total")).toBe(0);
    expect(promValue(samples, "runnel_stream_release_seconds_count")).toBe(0);
    for (const cause of ["completed", "canceled", "deadline", "disconnect", "dead_peer", "slow_consumer", "shutdown", "lifetime", "admin", "error"]) {
      expect(promValue(samples, "runnel_streams_ended_total", { rpc: SUBSCRIBE, cause }), cause).toBe(0);
    }
  });

  it("ListStreams shows each live stream; CloseStream ends it with Closing(ADMIN) and Unavailable; metrics follow", async () => {
    const startedAt = Date.now();
    const subs = TRANSPORTS.map((t) => Subscriber.open(t.create(server.url), { topic: `adm.list.${slug(t.name)}` }));
    const ids: string[] = [];
    for (const s of subs) ids.push((await s.ready()).subscriptionId);
    for (const t of TRANSPORTS) {
      await events.publish({ topic: `adm.list.${slug(t.name)}`, data: enc("one") });
      await events.publish({ topic: `adm.list.${slug(t.name)}`, data: enc("two") });
    }
    for (const s of subs) await s.eventCount(2);

    const { streams } = await admin.listStreams({});
    expect(streams).toHaveLength(TRANSPORTS.length);
    for (const [i, t] of TRANSPORTS.entries()) {
      const info = streams.find((s) => s.id === ids[i]);
      expect(info, t.name).toBeDefined();
      expect(info!.rpc).toBe(SUBSCRIBE);
      expect(info!.protocol).toBe(t.name); // "connect http/1.1", "grpc h2", ...
      expect(info!.peer).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(info!.peer).not.toBe(`127.0.0.1:${server.port}`);
      expect(info!.topic).toBe(`adm.list.${slug(t.name)}`);
      expect(info!.path).toBe("");
      expect(info!.eventsSent).toBe(2n);
      expect(info!.queued).toBe(0);
      expect(info!.queuedBytes).toBe(0n);
      const started = timestampMs(info!.started!);
      const lastWrite = timestampMs(info!.lastWrite!);
      expect(started).toBeGreaterThanOrEqual(startedAt - 1);
      expect(lastWrite).toBeGreaterThanOrEqual(started);
      expect(lastWrite).toBeLessThanOrEqual(Date.now());
    }
    // Streams are listed oldest first.
    expect(streams.map((s) => s.id)).toEqual([...streams].sort((a, b) => timestampMs(a.started!) - timestampMs(b.started!)).map((s) => s.id));

    let m = (await scrape(server)).samples;
    expect(promValue(m, "runnel_streams_active", { rpc: SUBSCRIBE })).toBe(5);
    expect(promValue(m, "runnel_bus_subscriptions_active")).toBe(5);
    expect(promValue(m, "runnel_events_published_total")).toBe(10);
    expect(promValue(m, "runnel_events_delivered_total")).toBe(10);

    for (const [i, s] of subs.entries()) {
      expect((await admin.closeStream({ id: ids[i]! })).closed).toBe(true);
      await s.finished();
      expect(s.error?.code, TRANSPORTS[i]!.name).toBe(Code.Unavailable);
      expect(s.kinds).toEqual(["subscribed", "event", "event", "closing"]);
      expect(s.closing!.reason).toBe(ClosingReason.ADMIN);
      expect(s.closing!.resumeCursor).toBe(s.events[1]!.cursor);
      expect(s.closing!.message).toMatch(/operator/);
    }
    await waitFor(() => server.ledger.size === 0, 5_000, "ledger empty");
    expect((await admin.listStreams({})).streams).toEqual([]);

    m = (await scrape(server)).samples;
    expect(promValue(m, "runnel_streams_active", { rpc: SUBSCRIBE })).toBe(0);
    expect(promValue(m, "runnel_bus_subscriptions_active")).toBe(0);
    expect(promValue(m, "runnel_streams_ended_total", { rpc: SUBSCRIBE, cause: "admin" })).toBe(5);
    expect(promValue(m, "runnel_stream_release_seconds_count")).toBe(5);
    expect(promValue(m, "runnel_stream_release_seconds_bucket", { le: "+Inf" })).toBe(5);
    expect(promValue(m, "runnel_stream_release_seconds_sum")).toBeGreaterThanOrEqual(0);
  });

  it("CloseStream of an unknown id -> NotFound", async () => {
    const err = await admin.closeStream({ id: "no-such-stream" }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err?.code).toBe(Code.NotFound);
    expect(err?.rawMessage).toBe('no live stream with id "no-such-stream"');
  });

  it("cancels are counted as ended streams, deliveries and publishes add up", async () => {
    const before = (await scrape(server)).samples;
    const ended = (s: Sample[], cause: string): number => promValue(s, "runnel_streams_ended_total", { rpc: SUBSCRIBE, cause })!;
    const subs = [Subscriber.open(TRANSPORTS[1]!.create(server.url), { topic: "adm.cancel" }), Subscriber.open(TRANSPORTS[0]!.create(server.url), { topic: "adm.cancel" }), Subscriber.open(TRANSPORTS[2]!.create(server.url), { topic: "adm.cancel.*" })];
    for (const s of subs) await s.ready();
    for (let i = 0; i < 3; i++) await events.publish({ topic: "adm.cancel", data: enc(`e${i}`) });
    await events.publish({ topic: "adm.cancel.x", data: enc("x") });
    await subs[0]!.eventCount(3);
    await subs[1]!.eventCount(3);
    await subs[2]!.eventCount(1);
    let m = (await scrape(server)).samples;
    expect(promValue(m, "runnel_streams_active", { rpc: SUBSCRIBE })).toBe(3);
    expect(promValue(m, "runnel_bus_subscriptions_active")).toBe(3);
    for (const s of subs) await s.cancel();
    await waitFor(() => server.ledger.size === 0, 5_000, "ledger empty");

    m = (await scrape(server)).samples;
    expect(promValue(m, "runnel_streams_active", { rpc: SUBSCRIBE })).toBe(0);
    expect(promValue(m, "runnel_bus_subscriptions_active")).toBe(0);
    expect(promValue(m, "runnel_events_published_total")! - promValue(before, "runnel_events_published_total")!).toBe(4);
    expect(promValue(m, "runnel_events_delivered_total")! - promValue(before, "runnel_events_delivered_total")!).toBe(7);
    // A client cancel is "canceled" on HTTP/2 (RST_STREAM CANCEL); on HTTP/1.1 the client can only close its socket.
    const clientEnds = ["canceled", "disconnect"].reduce((n, c) => n + ended(m, c) - ended(before, c), 0);
    expect(clientEnds).toBe(3);
    expect(ended(m, "canceled") - ended(before, "canceled")).toBeGreaterThanOrEqual(2);
    expect(promValue(m, "runnel_stream_release_seconds_count")! - promValue(before, "runnel_stream_release_seconds_count")!).toBe(3);
    for (const cause of ["error", "slow_consumer", "dead_peer", "shutdown", "lifetime", "deadline", "completed"]) {
      expect(ended(m, cause), cause).toBe(ended(before, cause));
    }
  });

  it("process_open_fds matches this process's fds", async () => {
    const { samples } = await scrape(server);
    const reported = promValue(samples, "process_open_fds")!;
    expect(Math.abs(reported - openFdCount())).toBeLessThanOrEqual(5);
  });

  it("GET /healthz -> 200 ok", async () => {
    const res = await fetch(`${server.url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("ok\n");
  });

  it("Connect JSON unary over HTTP/1.1 (what buf curl sends) works, errors included", async () => {
    const post = (path: string, body: unknown): Promise<Response> =>
      fetch(`${server.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const res = await post("/runnel.v1.EventService/Publish", { topic: "adm.json", data: Buffer.from("hello").toString("base64"), headers: { k: "v" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    const body = (await res.json()) as { seq: string; cursor: string; time: string };
    expect(body.seq).toBe("1");
    expect(body.cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(Number.isNaN(Date.parse(body.time))).toBe(false);

    const sub = Subscriber.open(TRANSPORTS[1]!.create(server.url), { topic: "adm.json", start: { case: "earliest", value: true } });
    await sub.eventCount(1);
    await sub.cancel();
    expect(sub.texts).toEqual(["hello"]);
    expect(sub.events[0]!.headers).toEqual({ k: "v" });
    expect(sub.events[0]!.cursor).toBe(body.cursor);

    const bad = await post("/runnel.v1.EventService/Publish", { topic: "adm.*" });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ code: "invalid_argument", message: 'topic "adm.*" contains wildcard "*"; publish needs an exact topic' });

    const list = await post("/runnel.v1.AdminService/ListStreams", {});
    expect(list.status).toBe(200);
    expect(await list.json()).toEqual({});
    await waitFor(() => server.ledger.size === 0, 5_000, "ledger empty");
  });
});

describe("/healthz during shutdown", () => {
  it("answers 503 on a connection that was busy when shutdown began", async () => {
    const server = await startServer({ closeFlushMs: 1_500, maxQueueEvents: 10, heartbeatMs: 60_000 });
    const events = createClient(EventService, createConnectTransport({ baseUrl: server.url, httpVersion: "2" }));
    // A subscriber that does not read holds shutdown open: its Closing cannot be flushed until closeFlushMs cuts it.
    const stalled = rawSubscribe(server.url, { topic: "hz.stall", slowConsumer: SlowConsumerPolicy.DROP_OLDEST }, { initialWindowSize: 1024 });
    await waitFor(() => server.bus.stats().subscriptionsActive === 1, 5_000, "stalled subscription");
    for (let i = 0; i < 200; i++) await events.publish({ topic: "hz.stall", data: new Uint8Array(200) });
    const entry = server.ledger.list()[0]!;
    await waitFor(() => entry.writePendingMs(Date.now()) > 0 && entry.queued > 0, 5_000, "stalled write");

    // An HTTP/1.1 request in flight (its body not sent yet) when shutdown begins.
    const socket = net.connect(server.port, "127.0.0.1");
    let received = "";
    socket.setEncoding("latin1");
    socket.on("data", (d: string) => (received += d));
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    const body = JSON.stringify({ topic: "hz.pub", data: "" });
    socket.write(
      `POST /runnel.v1.EventService/Publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\n\r\n`,
    );
    await waitFor(() => received.includes("100 Continue"), 5_000, "100 Continue");

    const shutdown = server.shutdown(5_000);
    expect(server.shuttingDown).toBe(true);
    socket.write(`${body}GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    await closed; // the server closes the connection once its last request is answered
    const statuses = [...received.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
    expect(statuses).toEqual([100, 200, 503]);
    const healthz = received.split("HTTP/1.1 503")[1]!;
    expect(healthz).toMatch(/\r\nconnection: close\r\n/i);
    expect(healthz).toMatch(/\r\n\r\n(e\r\n)?shutting down\n/); // chunked or not

    await shutdown;
    await stalled.close();
    expect(server.ledger.size).toBe(0);
    expect(server.connections.socketCount).toBe(0);
  });
});
