/**
 * HTTP-level defences, from raw sockets: slowloris headers and slow request
 * bodies are cut (HTTP/1.1 and HTTP/2) while healthy long streams are not;
 * the HTTP/2 concurrent-stream bound, oversized frames and header blocks are
 * refused; SETTINGS, PING and HEADERS+RST_STREAM floods close the flooding
 * connection and leave the server serving, its ledger empty.
 */
import { createClient } from "@connectrpc/connect";
import http2 from "node:http2";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventService } from "../../gen/runnel/v1/event_pb.js";
import type { RunnelServer } from "../../src/server.js";
import { FLAG, FRAME, RawH2, frame, grpcHeaders, headerBlock } from "../harness/raw-h2-frames.js";
import { expectNoStreams, startServer, waitFor } from "../harness/server.js";
import { Subscriber } from "../harness/subscriber.js";
import { TRANSPORTS } from "../harness/transports.js";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const PUBLISH = "/runnel.v1.EventService/Publish";
const SUBSCRIBE = "/runnel.v1.EventService/Subscribe";

/** A raw socket; resolves with what the server wrote and how long until it closed. */
function rawH1(port: number, feed: (socket: net.Socket) => void): Promise<{ text: string; closedAfterMs: number }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    const started = Date.now();
    let text = "";
    socket.on("data", (d: Buffer) => (text += d.toString("latin1")));
    socket.on("error", () => undefined);
    socket.once("close", () => resolve({ text, closedAfterMs: Date.now() - started }));
    socket.once("connect", () => feed(socket));
    setTimeout(() => {
      socket.destroy();
      reject(new Error(`server kept the connection for 15 s; got ${JSON.stringify(text.slice(0, 80))}`));
    }, 15_000).unref();
  });
}

async function stillServes(server: RunnelServer): Promise<void> {
  const client = createClient(EventService, TRANSPORTS[2]!.create(server.url));
  const r = await client.publish({ topic: "alive.check", data: enc("x") });
  expect(r.seq).toBeGreaterThan(0n);
}

describe("http defences", () => {
  let server: RunnelServer;
  beforeAll(async () => {
    // A short keepalive: after a fatal protocol error node sends GOAWAY but leaves the socket open;
    // the unanswerable PING is what closes it (within --ping-interval-ms + --ping-timeout-ms).
    server = await startServer({ headersTimeoutMs: 500, requestTimeoutMs: 1_000, h2MaxConcurrentStreams: 4, maxHttpHeaderBytes: 4_096, pingIntervalMs: 500, pingTimeoutMs: 500 });
  });
  afterAll(async () => {
    await expectNoStreams(server);
    await server.shutdown(1_000);
  });

  it("connections reset before, during and after the protocol sniff do not crash the server", async () => {
    for (const bytes of ["", "PRI * HTTP/2.0\r\n", "GET /heal"]) {
      for (let i = 0; i < 10; i++) {
        const c = net.connect(server.port, "127.0.0.1");
        await new Promise((r) => c.once("connect", r));
        if (bytes !== "") await new Promise((r) => c.write(bytes, r));
        c.resetAndDestroy();
      }
    }
    await new Promise((r) => setTimeout(r, 200));
    await stillServes(server);
  });

  it("HTTP/1.1 headers dribbled one line at a time: 408 and the connection closed", async () => {
    let timer: NodeJS.Timeout | undefined;
    const r = await rawH1(server.port, (s) => {
      s.write(`POST ${PUBLISH} HTTP/1.1\r\nHost: x\r\n`);
      timer = setInterval(() => s.write("X-Slow: 1\r\n"), 100);
    });
    clearInterval(timer);
    expect(r.text).toMatch(/^HTTP\/1\.1 408 /);
    await stillServes(server);
  });

  it("HTTP/1.1 request body that stalls: 408 and the connection closed", async () => {
    const r = await rawH1(server.port, (s) => {
      s.write(`POST ${PUBLISH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/proto\r\nContent-Length: 100\r\n\r\n12345`);
    });
    expect(r.text).toMatch(/^HTTP\/1\.1 408 /);
    await stillServes(server);
  });

  it("HTTP/1.1 header block over --max-http-header-bytes: 431", async () => {
    const r = await rawH1(server.port, (s) => {
      s.write(`POST ${PUBLISH} HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(8_000)}\r\n\r\n`);
    });
    expect(r.text).toMatch(/^HTTP\/1\.1 431 /);
  });

  it("HTTP/2 request body that stalls: the stream is refused, the session lives on", async () => {
    const session = http2.connect(server.url);
    session.on("error", () => undefined);
    const stream = session.request({ ":method": "POST", ":path": PUBLISH, "content-type": "application/grpc", te: "trailers" }, { endStream: false });
    stream.write(Buffer.from([0, 0, 0, 0, 50, 1, 2]));
    let status: number | undefined;
    stream.on("response", (h) => (status = Number(h[":status"])));
    stream.on("error", () => undefined);
    stream.resume();
    await new Promise<void>((resolve) => stream.once("close", () => resolve()));
    expect(status === 408 || stream.rstCode === http2.constants.NGHTTP2_CANCEL).toBe(true);
    expect(session.destroyed).toBe(false);
    session.close();
    await stillServes(server);
  });

  for (const t of [TRANSPORTS[0]!, TRANSPORTS[2]!]) {
    it(`a healthy stream outlives the request and header timeouts (${t.name})`, async () => {
      const sub = Subscriber.open(t.create(server.url), { topic: "defence.long" });
      await sub.ready();
      await new Promise((r) => setTimeout(r, 2_500)); // more than twice the request timeout
      await createClient(EventService, TRANSPORTS[2]!.create(server.url)).publish({ topic: "defence.long", data: enc("late") });
      await sub.eventCount(1);
      expect(sub.error).toBeUndefined();
      await sub.cancel();
    });
  }

  it("HTTP/2 concurrent streams per session are bounded by the setting", async () => {
    const conn = await RawH2.open(server.port);
    await waitFor(() => conn.serverSettings().size > 0, 5_000, "server SETTINGS");
    expect(conn.serverSettings().get(0x3)).toBe(4); // SETTINGS_MAX_CONCURRENT_STREAMS
    const authority = `127.0.0.1:${server.port}`;
    // Five request streams opened and left waiting for their bodies: one more than allowed.
    for (let i = 0; i < 5; i++) conn.write(frame(FRAME.HEADERS, FLAG.END_HEADERS, 1 + 2 * i, headerBlock(grpcHeaders(authority, SUBSCRIBE))));
    await waitFor(() => conn.resets().has(9) || conn.goawayCode() !== undefined, 5_000, "the fifth stream refused");
    // Past the bound it acknowledged, the client broke the protocol: nghttp2 refuses the stream
    // (REFUSED_STREAM) or, as node 20 does once SETTINGS were acknowledged, the whole session goes away.
    const seen = JSON.stringify(conn.frames.map((f) => [f.type, f.streamId]));
    expect(conn.resets().get(9) === http2.constants.NGHTTP2_REFUSED_STREAM || conn.goawayCode() !== undefined, seen).toBe(true);
    expect(server.ledger.size).toBeLessThanOrEqual(4);
    conn.destroy();
    await expectNoStreams(server);
    await stillServes(server);
  });

  it("a frame larger than SETTINGS_MAX_FRAME_SIZE: GOAWAY FRAME_SIZE_ERROR", async () => {
    const conn = await RawH2.open(server.port);
    const authority = `127.0.0.1:${server.port}`;
    conn.write(frame(FRAME.HEADERS, FLAG.END_HEADERS, 1, headerBlock(grpcHeaders(authority, PUBLISH))));
    conn.write(frame(FRAME.DATA, 0, 1, Buffer.alloc(20_000)));
    await conn.closed;
    expect(conn.goawayCode()).toBe(http2.constants.NGHTTP2_FRAME_SIZE_ERROR);
    await stillServes(server);
  });

  it("an HTTP/2 header block over --max-http-header-bytes is refused", async () => {
    const session = http2.connect(server.url);
    session.on("error", () => undefined);
    const stream = session.request({ ":method": "POST", ":path": PUBLISH, "content-type": "application/grpc", "x-big": "a".repeat(8_000) });
    stream.on("error", () => undefined);
    let status: number | undefined;
    stream.on("response", (h) => (status = Number(h[":status"])));
    stream.resume();
    stream.end();
    await new Promise<void>((resolve) => stream.once("close", () => resolve()));
    expect(status === 431 || stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR).toBe(true);
    session.destroy();
    await stillServes(server);
  });

  const floods: [string, (conn: RawH2, authority: string) => void][] = [
    ["SETTINGS", (conn) => {
      const one = frame(FRAME.SETTINGS, 0, 0, Buffer.from([0, 0x3, 0, 0, 0, 100]));
      for (let i = 0; i < 200; i++) conn.write(Buffer.concat(Array.from({ length: 500 }, () => one)));
    }],
    ["PING", (conn) => {
      const one = frame(FRAME.PING, 0, 0, Buffer.alloc(8));
      for (let i = 0; i < 200; i++) conn.write(Buffer.concat(Array.from({ length: 500 }, () => one)));
    }],
    ["HEADERS + RST_STREAM (rapid reset)", (conn, authority) => {
      const block = headerBlock(grpcHeaders(authority, SUBSCRIBE));
      const batch: Buffer[] = [];
      for (let i = 0; i < 5_000; i++) {
        const id = 1 + 2 * i;
        batch.push(frame(FRAME.HEADERS, FLAG.END_HEADERS, id, block), frame(FRAME.RST_STREAM, 0, id, Buffer.from([0, 0, 0, 8])));
      }
      conn.write(Buffer.concat(batch));
    }],
  ];
  for (const [name, flood] of floods) {
    it(`a ${name} flood closes the flooding connection; the server keeps serving with bounded memory`, async () => {
      const rssBefore = process.memoryUsage().rss;
      const conn = await RawH2.open(server.port);
      // The flooder never reads: the server's replies (ACKs, PONGs) back up, as an attacker's would.
      conn.socket.pause();
      flood(conn, `127.0.0.1:${server.port}`);
      await new Promise((r) => setTimeout(r, 1_000));
      conn.socket.resume(); // (a paused socket would not see the close)
      await conn.closed;
      expect(conn.goawayCode()).toBeDefined();
      expect(process.memoryUsage().rss - rssBefore).toBeLessThan(200 * 1024 * 1024);
      await expectNoStreams(server);
      await stillServes(server);
    });
  }
});
