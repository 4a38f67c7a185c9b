/**
 * What the resumable client holds per stream, released whichever way the
 * stream ends: each call's silence watchdog (an interval timer and a link to
 * the stream's abort signal) and the stream's own listener on the caller's
 * AbortSignal. Every end: the reader breaks, the reader throws, the caller
 * aborts, the server refuses the request, the client gives up retrying, the
 * server finishes the stream, a silent call is dropped and resumed, the
 * server closes the stream (Closing) and the client resumes. After each: no
 * watchdog alive (silenceWatchesLive() is 0), no listener left on the
 * caller's signal, and no stream left on the server.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { getEventListeners } from "node:events";
import { writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/runnel/v1/admin_pb.js";
import { EventService } from "../../gen/runnel/v1/event_pb.js";
import { subscribe, tail } from "../../src/client/index.js";
import { silenceWatchesLive } from "../../src/client/resumable.js";
import type { RunnelServer } from "../../src/server.js";
import { freePort } from "../../bench/ipc.js";
import { expectNoStreams, startServer, waitFor } from "../harness/server.js";
import { tempTailDir } from "../harness/tailer.js";
import { startTcpProxy } from "../harness/tcp-proxy.js";

const tmp = tempTailDir("runnel-client-resources-");
let server: RunnelServer;

beforeAll(async () => {
  // Silent HTTP/2 peers found fast (PING), heartbeats allowed down to 100 ms, Closing asks for a quick return.
  server = await startServer({ tailDirs: [tmp.dir], heartbeatMinMs: 100, pingIntervalMs: 200, pingTimeoutMs: 300, retryAfterMs: 20 });
});
afterAll(async () => {
  await server.shutdown(500);
  tmp.remove();
});

const grpc = () => createGrpcTransport({ baseUrl: server.url, pingIntervalMs: 1_000, pingTimeoutMs: 5_000 });
const publish = (topic: string, text: string) =>
  createClient(EventService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" })).publish({ topic, data: new TextEncoder().encode(text) });
const fast = { initialDelayMs: 10, maxDelayMs: 50 };

/** After a stream ended: nothing of it left in the client, nor on the server. */
async function expectReleased(signal: AbortSignal): Promise<void> {
  expect(silenceWatchesLive()).toBe(0);
  expect(getEventListeners(signal, "abort")).toHaveLength(0);
  await expectNoStreams(server);
}

/** Read `stream` until `stop` says so (true: break) or it ends; the error it ended with, if any. */
async function readUntil<T>(stream: AsyncIterable<T>, stop: (m: T) => boolean | Promise<boolean>): Promise<ConnectError | undefined> {
  try {
    for await (const m of stream) if (await stop(m)) break;
    return undefined;
  } catch (e) {
    return ConnectError.from(e);
  }
}

describe("the resumable client releases what each stream holds, however it ends", () => {
  it("the reader breaks", async () => {
    const abort = new AbortController();
    const end = await readUntil(subscribe(grpc(), { topic: "res.break" }, { signal: abort.signal }), (m) => {
      expect(silenceWatchesLive()).toBe(1);
      return m.kind.case === "subscribed";
    });
    expect(end).toBeUndefined();
    await expectReleased(abort.signal);
  });

  it("the reader throws", async () => {
    const abort = new AbortController();
    const end = await readUntil(subscribe(grpc(), { topic: "res.throw" }, { signal: abort.signal }), () => {
      throw new ConnectError("reader failed", Code.Internal);
    });
    expect(end?.rawMessage).toBe("reader failed");
    await expectReleased(abort.signal);
  });

  it("the caller aborts", async () => {
    const abort = new AbortController();
    const end = await readUntil(subscribe(grpc(), { topic: "res.abort" }, { signal: abort.signal }), (m) => {
      if (m.kind.case === "subscribed") abort.abort();
      return false;
    });
    expect(end?.code).toBe(Code.Canceled);
    await expectReleased(abort.signal);
  });

  it("the server refuses the request (not retried)", async () => {
    const abort = new AbortController();
    const end = await readUntil(subscribe(grpc(), { topic: "res..bad" }, { signal: abort.signal }), () => false);
    expect(end?.code).toBe(Code.InvalidArgument);
    await expectReleased(abort.signal);
  });

  it("the client gives up after its attempts (nothing listens)", async () => {
    const abort = new AbortController();
    const port = await freePort();
    const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` });
    const end = await readUntil(subscribe(transport, { topic: "res.gone" }, { signal: abort.signal, retry: { ...fast, maxAttempts: 2 } }), () => false);
    expect(end?.code).toBe(Code.Unavailable);
    await expectReleased(abort.signal);
  });

  it("the server finishes the stream (tail without follow)", async () => {
    const abort = new AbortController();
    writeFileSync(tmp.file("done.log"), "a\nb\n");
    const lines: string[] = [];
    const end = await readUntil(tail(grpc(), { path: "done.log", lines: 2, follow: false }, { signal: abort.signal }), (m) => {
      if (m.kind.case === "line") lines.push(m.kind.value.text);
      return false;
    });
    expect(end).toBeUndefined();
    expect(lines).toEqual(["a", "b"]);
    await expectReleased(abort.signal);
  });

  it("a silent call is dropped and resumed: the old call's watchdog is gone, one is alive; then the reader breaks", async () => {
    const abort = new AbortController();
    const proxy = await startTcpProxy(server.port);
    try {
      const transport = createGrpcTransport({ baseUrl: proxy.url, pingIntervalMs: 1_000, pingTimeoutMs: 5_000 });
      let subscribed = 0;
      const end = await readUntil(
        subscribe(transport, { topic: "res.silent", heartbeatMs: 100 }, { signal: abort.signal, retry: fast }),
        async (m) => {
          if (m.kind.case !== "subscribed") return false;
          subscribed++;
          expect(silenceWatchesLive()).toBe(1);
          if (subscribed === 1) proxy.silenceConnections();
          return subscribed === 2;
        },
      );
      expect(end).toBeUndefined();
      expect(subscribed).toBe(2);
      await expectReleased(abort.signal);
    } finally {
      await proxy.close();
    }
  });

  it("the server closes the stream (Closing) and the client resumes; then the caller aborts", async () => {
    const abort = new AbortController();
    const admin = createClient(AdminService, grpc());
    let subscribed = 0;
    const seen: string[] = [];
    const end = await readUntil(subscribe(grpc(), { topic: "res.closing" }, { signal: abort.signal, retry: fast }), async (m) => {
      if (m.kind.case === "subscribed" && ++subscribed === 1) {
        const { streams } = await admin.listStreams({});
        await admin.closeStream({ id: streams[0]!.id });
      } else if (m.kind.case === "subscribed") {
        expect(silenceWatchesLive()).toBe(1);
        await publish("res.closing", "after");
      } else if (m.kind.case === "event") {
        seen.push(new TextDecoder().decode(m.kind.value.data));
        abort.abort();
      }
      return false;
    });
    expect(end?.code).toBe(Code.Canceled);
    expect(seen).toEqual(["after"]);
    await waitFor(() => silenceWatchesLive() === 0, 5_000, "no watchdog");
    await expectReleased(abort.signal);
  });
});
