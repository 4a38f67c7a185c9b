/**
 * The resumable client comes back by itself: after the server's Closing
 * (admin, shutdown), after the server process is killed and started again,
 * after an HTTP/2 session is torn down by node's rapid-reset guard. It
 * resumes after the last cursor it saw (no loss, no duplicate on the same
 * server), surfaces a Gap for what is gone, backs off with a bound, and does
 * not retry a request the server rejected.
 */
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { EventService, GapReason } from "../../gen/runnel/v1/event_pb.js";
import { startChildServer, type ChildServer } from "../harness/child-server.js";
import { follow } from "../harness/follow.js";
import { startServer, waitFor } from "../harness/server.js";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

const publisher = (url: string) => createClient(EventService, createConnectTransport({ baseUrl: url, httpVersion: "1.1" }));

describe("resumable subscribe", () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it("admin close (Closing + Unavailable): resumes after the resume cursor, every event exactly once", async () => {
    const server = await startServer({ heartbeatMs: 60_000, retryAfterMs: 50 });
    cleanups.push(() => server.shutdown(1_000));
    const pub = publisher(server.url);
    const sub = follow(createGrpcTransport({ baseUrl: server.url }), "adm.x");
    await waitFor(() => sub.subscribed() === 1, 10_000, "subscribed");
    for (let i = 1; i <= 3; i++) await pub.publish({ topic: "adm.x", data: enc(`a${i}`) });
    await waitFor(() => sub.events.length === 3, 10_000, "3 events");
    server.ledger.list()[0]!.close("admin", "closed by an operator");
    // Published while the client is away (it waits at least the 50 ms the Closing asked for).
    for (let i = 4; i <= 5; i++) await pub.publish({ topic: "adm.x", data: enc(`a${i}`) });
    await waitFor(() => sub.subscribed() === 2, 10_000, "resubscribed");
    await pub.publish({ topic: "adm.x", data: enc("a6") });
    await waitFor(() => sub.events.length === 6, 10_000, "6 events");
    expect(sub.events.map((e) => e.seq)).toEqual([1n, 2n, 3n, 4n, 5n, 6n]);
    expect(sub.gaps).toEqual([]);
    expect(sub.retries).toHaveLength(1);
    expect(sub.retries[0]).toMatchObject({ attempt: 1, serverClosed: true, cursor: sub.events[2]!.cursor });
    expect(sub.retries[0]!.delayMs).toBeGreaterThanOrEqual(50);
    expect((await sub.stop())?.code).toBe(Code.Canceled);
    await waitFor(() => server.ledger.size === 0, 5_000, "ledger empty");
  });

  it("a live subscription resumes from the head it was given: events published while away are not lost", async () => {
    const server = await startServer({ heartbeatMs: 60_000, retryAfterMs: 50 });
    cleanups.push(() => server.shutdown(1_000));
    const pub = publisher(server.url);
    await pub.publish({ topic: "head.x", data: enc("before") });
    const sub = follow(createConnectTransport({ baseUrl: server.url, httpVersion: "2" }), "head.x");
    await waitFor(() => sub.subscribed() === 1, 10_000, "subscribed");
    server.ledger.list()[0]!.close("admin", "closed by an operator");
    await pub.publish({ topic: "head.x", data: enc("while away") });
    await waitFor(() => sub.events.length === 1, 10_000, "1 event");
    expect(sub.texts()).toEqual(["while away"]);
    await sub.stop();
  });

  it("server shut down and started again on the same port (memory bus): a RESET gap, then the new server's events", async () => {
    let server = await startServer({ heartbeatMs: 60_000, retryAfterMs: 100 });
    const port = server.port;
    cleanups.push(() => server.shutdown(1_000));
    const sub = follow(createConnectTransport({ baseUrl: server.url, httpVersion: "2" }), "restart.x");
    await waitFor(() => sub.subscribed() === 1, 10_000, "subscribed");
    await publisher(server.url).publish({ topic: "restart.x", data: enc("old") });
    await waitFor(() => sub.events.length === 1, 10_000, "first event");
    await server.shutdown(1_000);
    server = await startServer({ heartbeatMs: 60_000, port });
    await waitFor(() => sub.subscribed() === 2, 15_000, "resubscribed to the new server");
    await publisher(server.url).publish({ topic: "restart.x", data: enc("new") });
    await waitFor(() => sub.events.length === 2, 10_000, "event from the new server");
    expect(sub.texts()).toEqual(["old", "new"]);
    // The old cursor means nothing to the new bus: the client is told, not left guessing.
    expect(sub.gaps.map((g) => g.reason)).toEqual([GapReason.RESET]);
    expect(sub.retries[0]!.serverClosed).toBe(true);
    await sub.stop();
  });

  it("server process killed (SIGKILL) and started again: the client reconnects through refused connections", async () => {
    let child: ChildServer = await startChildServer();
    cleanups.push(() => child.kill());
    const sub = follow(createGrpcTransport({ baseUrl: child.url }), "kill.x", { retry: { initialDelayMs: 50, maxDelayMs: 200, maxAttempts: 100 } });
    await waitFor(() => sub.subscribed() === 1, 10_000, "subscribed");
    await publisher(child.url).publish({ topic: "kill.x", data: enc("before") });
    await waitFor(() => sub.events.length === 1, 10_000, "first event");
    await child.kill("SIGKILL");
    await waitFor(() => sub.retries.length >= 2, 10_000, "retries while the server is down");
    child = await startChildServer(child.port);
    await waitFor(() => sub.subscribed() === 2, 15_000, "resubscribed");
    await publisher(child.url).publish({ topic: "kill.x", data: enc("after") });
    await waitFor(() => sub.events.length === 2, 10_000, "event after restart");
    expect(sub.texts()).toEqual(["before", "after"]);
    expect(sub.retries.every((r) => !r.serverClosed)).toBe(true);
    expect(sub.retries.some((r) => r.error.code === Code.Unavailable)).toBe(true);
    // The backoff grows between refused attempts (each bounded by maxDelayMs).
    expect(Math.max(...sub.retries.map((r) => r.delayMs))).toBeLessThanOrEqual(200);
    await sub.stop();
  });

  it("an HTTP/2 session closed by node's rapid-reset guard (GOAWAY, error code 2): resumes on a new session without loss", async () => {
    const server = await startServer({ heartbeatMs: 60_000 });
    cleanups.push(() => server.shutdown(1_000));
    // One transport, one HTTP/2 session: the follower shares it with the streams that get cancelled.
    const transport = createConnectTransport({ baseUrl: server.url, httpVersion: "2" });
    const pub = publisher(server.url);
    const sub = follow(transport, "rr.x");
    await waitFor(() => sub.subscribed() === 1, 10_000, "subscribed");
    await pub.publish({ topic: "rr.x", data: enc("e1") });
    await waitFor(() => sub.events.length === 1, 10_000, "first event");
    const client = createClient(EventService, transport);
    for (let i = 0; i < 1_500 && sub.retries.length === 0; i += 50) {
      await Promise.all(
        Array.from({ length: 50 }, async () => {
          const abort = new AbortController();
          try {
            for await (const m of client.subscribe({ topic: "rr.churn" }, { signal: abort.signal })) if (m.kind.case === "subscribed") abort.abort();
          } catch {
            // cancelled by us, or failed with the session: either way this churn stream is over
          }
        }),
      );
    }
    expect(sub.retries.length).toBeGreaterThan(0);
    expect(sub.retries[0]!.error.message).toMatch(/session closed with error code 2/i);
    await pub.publish({ topic: "rr.x", data: enc("e2") });
    await waitFor(() => sub.events.length === 2, 10_000, "event after the session closed");
    expect(sub.events.map((e) => e.seq)).toEqual([1n, 2n]);
    expect(sub.subscribed()).toBeGreaterThanOrEqual(2);
    await sub.stop();
    await waitFor(() => server.ledger.size === 0, 10_000, "ledger empty");
  });

  it("events trimmed while the client was away arrive as a Gap, then what is retained", async () => {
    const server = await startServer({ heartbeatMs: 60_000, retentionEvents: 2, retryAfterMs: 1_000 });
    cleanups.push(() => server.shutdown(1_000));
    const pub = publisher(server.url);
    const sub = follow(createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }), "gap.x");
    await waitFor(() => sub.subscribed() === 1, 10_000, "subscribed");
    await pub.publish({ topic: "gap.x", data: enc("1") });
    await waitFor(() => sub.events.length === 1, 10_000, "first event");
    server.ledger.list()[0]!.close("admin", "closed by an operator");
    await waitFor(() => sub.retries.length === 1, 10_000, "retry scheduled");
    for (let i = 2; i <= 6; i++) await pub.publish({ topic: "gap.x", data: enc(String(i)) });
    await waitFor(() => sub.events.length === 3, 10_000, "retained events after the gap");
    expect(sub.gaps.map((g) => ({ from: g.fromSeq, to: g.toSeq, reason: g.reason }))).toEqual([{ from: 2n, to: 4n, reason: GapReason.TRIMMED }]);
    expect(sub.texts()).toEqual(["1", "5", "6"]);
    await sub.stop();
  });

  it("gives up after maxAttempts refused attempts with the last error", async () => {
    const child = await startChildServer();
    const url = child.url;
    await child.kill("SIGKILL");
    const sub = follow(createConnectTransport({ baseUrl: url, httpVersion: "1.1" }), "gone.x", { retry: { initialDelayMs: 5, maxDelayMs: 20, maxAttempts: 3 } });
    const error = await sub.done;
    expect(error?.code).toBe(Code.Unavailable);
    expect(sub.retries.map((r) => r.attempt)).toEqual([1, 2, 3]);
    expect(sub.retries.every((r) => r.delayMs >= 2 && r.delayMs <= 20)).toBe(true);
  });

  it("retryFirstCall: false: a server that never answered fails the first call at once", async () => {
    const child = await startChildServer();
    const url = child.url;
    await child.kill("SIGKILL");
    const sub = follow(createConnectTransport({ baseUrl: url, httpVersion: "2" }), "never.x", { retryFirstCall: false });
    expect((await sub.done)?.code).toBe(Code.Unavailable);
    expect(sub.retries).toEqual([]);
  });

  it("a request the server rejects is not retried", async () => {
    const server = await startServer();
    cleanups.push(() => server.shutdown(1_000));
    const sub = follow(createConnectTransport({ baseUrl: server.url, httpVersion: "2" }), "bad..topic");
    const error = await sub.done;
    expect(error?.code).toBe(Code.InvalidArgument);
    expect(sub.retries).toEqual([]);
  });
});
