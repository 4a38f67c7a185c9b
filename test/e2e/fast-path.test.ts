/**
 * The lean write path for Subscribe (src/stream/fast-path.ts), against a real
 * server: every transport in binary and JSON with a gzip-compressed request;
 * response compression declined (and, as a control, what connect-es's own
 * pipeline does instead, so the checks can tell the two paths apart); a
 * backlog written in batches arrives complete and in order; bad requests get
 * connect-es's own answers.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, createClient } from "@connectrpc/connect";
import { compressionGzip, createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import type { ClientHttp2Session } from "node:http2";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventService, SubscribeRequestSchema, SubscribeResponseSchema, type SubscribeResponse } from "../../gen/runnel/v1/event_pb.js";
import type { RunnelServer } from "../../src/server.js";
import { codeOf, expectCleanEnd, snapshot, subscribe, token } from "../harness/lifecycle.js";
import { connectH2, grpcFrame, rawSubscribe } from "../harness/raw-grpc.js";
import { startServer, waitFor } from "../harness/server.js";

const encoder = new TextEncoder();

/** Every transport, with a gzip-compressed request and the given format. */
const CASES = [true, false].flatMap((binary) => {
  const format = binary ? "binary" : "json";
  const common = { useBinaryFormat: binary, sendCompression: compressionGzip, compressMinBytes: 0 };
  return [
    { name: `connect http/1.1 ${format}`, http2: false, create: (baseUrl: string) => createConnectTransport({ baseUrl, httpVersion: "1.1", ...common }) },
    { name: `connect h2 ${format}`, http2: true, create: (baseUrl: string) => createConnectTransport({ baseUrl, httpVersion: "2", ...common }) },
    { name: `grpc h2 ${format}`, http2: true, create: (baseUrl: string) => createGrpcTransport({ baseUrl, ...common }) },
    { name: `grpc-web http/1.1 ${format}`, http2: false, create: (baseUrl: string) => createGrpcWebTransport({ baseUrl, httpVersion: "1.1", ...common }) },
    { name: `grpc-web h2 ${format}`, http2: true, create: (baseUrl: string) => createGrpcWebTransport({ baseUrl, httpVersion: "2", ...common }) },
  ];
});

describe("fast path: every transport and format, compressed requests", () => {
  let server: RunnelServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(() => server.shutdown(1_000));

  for (const t of CASES) {
    it(`${t.name}: exact events, then a clean end`, async () => {
      const before = snapshot(server);
      const topic = `fast.${token(t.name)}`;
      const pub = createClient(EventService, createConnectTransport({ baseUrl: server.url, httpVersion: "2" }));
      const sub = subscribe(createClient(EventService, t.create(server.url)), { topic, heartbeatMs: 1_000 });
      await sub.subscribed;
      const sent = [encoder.encode("a"), new Uint8Array(4096).fill(7), encoder.encode("")];
      for (const data of sent) await pub.publish({ topic, data, headers: { k: "v" } });
      await waitFor(() => sub.events().length === sent.length, 10_000, "events");
      expect(sub.events().map((e) => [e.seq, new Uint8Array(e.data), e.headers])).toEqual(sent.map((data, i) => [BigInt(i + 1), data, { k: "v" }]));
      sub.abort.abort();
      expect(await codeOf(sub)).toBe(Code.Canceled);
      await expectCleanEnd(server, before, { cause: t.http2 ? "canceled" : "disconnect" });
    });
  }
});

/** A raw gRPC Subscribe that accepts gzip responses; resolves with its response headers and the decoded messages so far. */
function acceptingGzip(session: ClientHttp2Session, topic: string): { headers: Promise<Record<string, unknown>>; messages: SubscribeResponse[]; flags: number[]; close(): void } {
  const stream = session.request({
    ":method": "POST",
    ":path": "/runnel.v1.EventService/Subscribe",
    "content-type": "application/grpc+proto",
    "grpc-accept-encoding": "gzip",
    te: "trailers",
  });
  stream.end(grpcFrame(toBinary(SubscribeRequestSchema, create(SubscribeRequestSchema, { topic }))));
  const messages: SubscribeResponse[] = [];
  const flags: number[] = [];
  let pending = Buffer.alloc(0);
  stream.on("data", (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 5 && pending.length >= 5 + pending.readUInt32BE(1)) {
      const len = pending.readUInt32BE(1);
      flags.push(pending[0]!);
      if (pending[0] === 0) messages.push(fromBinary(SubscribeResponseSchema, pending.subarray(5, 5 + len)));
      pending = pending.subarray(5 + len);
    }
  });
  stream.on("error", () => undefined);
  return {
    headers: new Promise((resolve) => stream.once("response", (h) => resolve(h))),
    messages,
    flags,
    close: () => stream.close(),
  };
}

describe("fast path: response compression is declined", () => {
  for (const lean of [true, false]) {
    it(`${lean ? "lean path: uncompressed frames, no grpc-encoding" : "control, connect-es pipeline: gzip frames"}`, async () => {
      const server = await startServer({ leanSubscribe: lean });
      const session = await connectH2(server.url);
      try {
        const topic = "fast.gzip";
        const call = acceptingGzip(session, topic);
        const headers = await call.headers;
        const pub = createClient(EventService, createConnectTransport({ baseUrl: server.url, httpVersion: "2" }));
        const data = new Uint8Array(4096).fill(1);
        await pub.publish({ topic, data });
        await waitFor(() => call.flags.length >= 2, 10_000, "Subscribed and the event");
        if (lean) {
          expect(headers["grpc-encoding"]).toBeUndefined();
          expect(call.flags).toEqual([0, 0]);
          const event = call.messages[1]?.kind.case === "event" ? call.messages[1].kind.value : undefined;
          expect(new Uint8Array(event?.data ?? [])).toEqual(data);
        } else {
          expect(headers["grpc-encoding"]).toBe("gzip");
          expect(call.flags[1]).toBe(1);
        }
        call.close();
        await waitFor(() => server.ledger.size === 0, 10_000, "stream released");
      } finally {
        session.close();
        await server.shutdown(1_000);
      }
    });
  }
});

describe("fast path: a backlog goes out in batches, complete and in order", () => {
  let server: RunnelServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(() => server.shutdown(1_000));

  it("grpc h2: paused reader, 500 events of 1 KiB, resumed", async () => {
    const session = await connectH2(server.url);
    try {
      const topic = "fast.backlog";
      const raw = rawSubscribe(session, { topic });
      await raw.subscribed;
      raw.pause();
      const pub = createClient(EventService, createConnectTransport({ baseUrl: server.url, httpVersion: "2" }));
      const n = 500;
      for (let i = 0; i < n; i++) await pub.publish({ topic, data: new Uint8Array(1024).fill(i % 256) });
      raw.resume();
      const events = (): bigint[] => raw.messages.flatMap((m) => (m.kind.case === "event" ? [m.kind.value.seq] : []));
      await waitFor(() => events().length === n, 15_000, `${n} events`);
      expect(events()).toEqual(Array.from({ length: n }, (_, i) => BigInt(i + 1)));
      expect(server.ledger.list()[0]?.eventsSent).toBe(n);
      raw.stream.close();
      await waitFor(() => server.ledger.size === 0, 10_000, "stream released");
    } finally {
      session.close();
    }
  });
});

describe("fast path: bad requests get connect-es's answers", () => {
  let server: RunnelServer;
  let session: ClientHttp2Session;
  beforeAll(async () => {
    server = await startServer();
    session = await connectH2(server.url);
  });
  afterAll(async () => {
    session.close();
    await server.shutdown(1_000);
  });

  /** One raw request; resolves with the :status, grpc-status (headers or trailers) and grpc-message. */
  function call(headers: Record<string, string>, body: Buffer): Promise<{ status: number; grpcStatus?: string; message?: string }> {
    return new Promise((resolve, reject) => {
      const stream = session.request({ ":path": "/runnel.v1.EventService/Subscribe", te: "trailers", ...headers });
      const out: { status: number; grpcStatus?: string; message?: string } = { status: 0 };
      const take = (h: Record<string, unknown>): void => {
        if (h["grpc-status"] !== undefined) out.grpcStatus = String(h["grpc-status"]);
        if (h["grpc-message"] !== undefined) out.message = decodeURIComponent(String(h["grpc-message"]));
      };
      stream.on("response", (h) => {
        out.status = Number(h[":status"]);
        take(h);
      });
      stream.on("trailers", take);
      stream.on("data", () => undefined);
      stream.on("error", reject);
      stream.on("close", () => resolve(out));
      if (!stream.writableEnded) stream.end(body);
    });
  }

  const request = grpcFrame(toBinary(SubscribeRequestSchema, create(SubscribeRequestSchema, { topic: "fast.bad" })));

  it("an unknown request encoding: Unimplemented", async () => {
    const r = await call({ ":method": "POST", "content-type": "application/grpc", "grpc-encoding": "snappy" }, request);
    expect(r.grpcStatus).toBe(String(Code.Unimplemented));
  });

  it("a gzip-compressed request is read", async () => {
    const payload = gzipSync(toBinary(SubscribeRequestSchema, create(SubscribeRequestSchema, { topic: "bad..topic" })));
    const frame = Buffer.concat([Buffer.from([1, 0, 0, 0, 0]), payload]);
    frame.writeUInt32BE(payload.length, 1);
    const r = await call({ ":method": "POST", "content-type": "application/grpc", "grpc-encoding": "gzip" }, frame);
    // The request was decompressed and parsed: the topic itself is what is refused.
    expect(r.grpcStatus).toBe(String(Code.InvalidArgument));
    expect(r.message).toMatch(/topic/);
  });

  it("two request messages: Unimplemented (protocol error)", async () => {
    const r = await call({ ":method": "POST", "content-type": "application/grpc" }, Buffer.concat([request, request]));
    expect(r.grpcStatus).toBe(String(Code.Unimplemented));
  });

  it("a bad grpc-timeout: an error status", async () => {
    const r = await call({ ":method": "POST", "content-type": "application/grpc", "grpc-timeout": "forever" }, request);
    expect(r.grpcStatus).toBe(String(Code.InvalidArgument));
  });

  it("a deadline only the server enforces: DeadlineExceeded in the trailers, the stream released", async () => {
    const before = snapshot(server);
    const r = await call({ ":method": "POST", "content-type": "application/grpc", "grpc-timeout": "300m" }, request);
    expect(r.grpcStatus).toBe(String(Code.DeadlineExceeded));
    await expectCleanEnd(server, before, { cause: "deadline" });
  });

  it("GET: 405; an unknown content type: 415", async () => {
    expect((await call({ ":method": "GET", "content-type": "application/grpc" }, Buffer.alloc(0))).status).toBe(405);
    expect((await call({ ":method": "POST", "content-type": "text/plain" }, request)).status).toBe(415);
  });

  it("the server still serves, and nothing is left", async () => {
    const sub = subscribe(createClient(EventService, createGrpcTransport({ baseUrl: server.url })), { topic: "fast.after" });
    await sub.subscribed;
    sub.abort.abort();
    await codeOf(sub);
    await waitFor(() => server.ledger.size === 0, 10_000, "ledger empty");
  });
});
