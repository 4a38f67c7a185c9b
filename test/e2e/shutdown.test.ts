/**
 * Graceful shutdown: every live stream, on HTTP/1.1 and HTTP/2, gets
 * Closing(SHUTDOWN) with the cursor to resume from and ends with Unavailable;
 * shutdown finishes well within its grace period and leaves no socket, no
 * session and no stream behind, idle keep-alive connections included.
 */
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import net from "node:net";
import { describe, expect, it } from "vitest";
import { ClosingReason, EventService } from "../../gen/runnel/v1/event_pb.js";
import { startServer, waitFor } from "../harness/server.js";
import { Subscriber } from "../harness/subscriber.js";
import { TRANSPORTS } from "../harness/transports.js";

const SUBSCRIBE = "runnel.v1.EventService/Subscribe";
const GRACE_MS = 10_000;
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const slug = (s: string): string => s.replace(/[^a-z0-9]/g, "_");

describe("graceful shutdown", () => {
  it("live streams on h1 and h2 get Closing(SHUTDOWN, resume cursor) then Unavailable; nothing is left", async () => {
    const server = await startServer({ graceMs: GRACE_MS, heartbeatMs: 60_000 });
    const events = createClient(EventService, createConnectTransport({ baseUrl: server.url, httpVersion: "2" }));

    const subs = TRANSPORTS.map((t) => Subscriber.open(t.create(server.url), { topic: `sd.${slug(t.name)}` }));
    for (const s of subs) await s.ready();
    for (const t of TRANSPORTS) for (let i = 1; i <= 2; i++) await events.publish({ topic: `sd.${slug(t.name)}`, data: enc(`e${i}`) });
    for (const s of subs) await s.eventCount(2);
    // One stream that has seen no event: its resume cursor is where it started (the head cursor).
    const quiet = Subscriber.open(TRANSPORTS[3]!.create(server.url), { topic: "sd.quiet" });
    const quietSubscribed = await quiet.ready();

    // An idle HTTP/1.1 keep-alive connection.
    const idle = net.connect(server.port, "127.0.0.1");
    let idleText = "";
    idle.setEncoding("latin1");
    idle.on("data", (d: string) => (idleText += d));
    const idleClosed = new Promise<void>((resolve) => idle.once("close", () => resolve()));
    idle.write("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    await waitFor(() => idleText.endsWith("ok\n") || idleText.includes("\r\n0\r\n\r\n"), 5_000, "healthz answer");
    expect(idleText).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(idleText).toMatch(/Connection: keep-alive/i);

    expect(server.ledger.size).toBe(6);
    expect(server.connections.socketCount).toBeGreaterThanOrEqual(4);
    const started = Date.now();
    await server.shutdown();
    const elapsed = Date.now() - started;
    expect(elapsed).toBeLessThan(GRACE_MS / 2); // a bound against waiting out the grace period, not a timing goal

    for (const [i, s] of subs.entries()) {
      await s.finished();
      const name = TRANSPORTS[i]!.name;
      expect({ name, kinds: s.kinds }).toEqual({ name, kinds: ["subscribed", "event", "event", "closing"] });
      expect({ name, code: s.error?.code }).toEqual({ name, code: Code.Unavailable });
      expect(s.closing!.reason).toBe(ClosingReason.SHUTDOWN);
      expect(s.closing!.resumeCursor).toBe(s.events[1]!.cursor);
      expect(s.closing!.retryAfterMs).toBe(server.config.retryAfterMs);
    }
    await quiet.finished();
    expect(quiet.kinds).toEqual(["subscribed", "closing"]);
    expect(quiet.error?.code).toBe(Code.Unavailable);
    expect(quiet.closing!.resumeCursor).toBe(quietSubscribed.headCursor);

    await idleClosed;
    expect(server.ledger.size).toBe(0);
    expect(server.bus.stats().subscriptionsActive).toBe(0);
    expect(server.connections.socketCount).toBe(0);
    expect(server.connections.sessionCount).toBe(0);
    expect(server.ledger.endedCount(SUBSCRIBE, "shutdown")).toBe(6);

    // The port no longer accepts connections.
    await expect(fetch(`${server.url}/healthz`)).rejects.toThrow();
  });

  it("shutdown with no streams and only idle connections returns at once and closes them", async () => {
    const server = await startServer({ graceMs: GRACE_MS });
    const h2 = createClient(EventService, createConnectTransport({ baseUrl: server.url, httpVersion: "2" }));
    const h1 = createClient(EventService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    await h2.publish({ topic: "sd.idle", data: enc("x") });
    await h1.publish({ topic: "sd.idle", data: enc("y") });
    expect(server.connections.socketCount).toBeGreaterThanOrEqual(1);
    const started = Date.now();
    await server.shutdown();
    expect(Date.now() - started).toBeLessThan(GRACE_MS / 2);
    expect(server.connections.socketCount).toBe(0);
    expect(server.connections.sessionCount).toBe(0);
  });
});
