/**
 * Malformed wire input on raw HTTP/2 streams and HTTP/1.1 requests: bad and
 * truncated envelopes, wrong content types, trailer frames sent by a client,
 * compressed flags without an encoding. Each gets a clear status (the code a
 * careful server would pick; connect-es decides the details), nothing is
 * left in the ledger, and the same connection keeps serving.
 */
import http2, { type ClientHttp2Session } from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunnelServer } from "../../src/server.js";
import { expectNoStreams, startServer } from "../harness/server.js";

const SUBSCRIBE = "/runnel.v1.EventService/Subscribe";
const PUBLISH = "/runnel.v1.EventService/Publish";
/** SubscribeRequest{topic: "a.b"} / PublishRequest{topic: "a.b"} in protobuf binary (field 1, same bytes). */
const TOPIC_AB = Buffer.from([0x0a, 0x03, 0x61, 0x2e, 0x62]);

function envelope(flags: number, declaredLength: number, body: Buffer): Buffer {
  const b = Buffer.alloc(5 + body.length);
  b[0] = flags;
  b.writeUInt32BE(declaredLength, 1);
  body.copy(b, 5);
  return b;
}

interface Answer {
  status: number;
  grpcStatus: string | undefined;
  body: string;
}

function send(session: ClientHttp2Session, path: string, contentType: string, body: Buffer): Promise<Answer> {
  return new Promise((resolve) => {
    const st = session.request({ ":method": "POST", ":path": path, "content-type": contentType, te: "trailers" });
    let status = 0;
    let grpcStatus: string | undefined;
    let data = Buffer.alloc(0);
    st.on("response", (h) => {
      status = Number(h[":status"]);
      grpcStatus = h["grpc-status"] as string | undefined;
    });
    st.on("trailers", (t) => (grpcStatus ??= t["grpc-status"] as string | undefined));
    st.on("data", (d: Buffer) => (data = Buffer.concat([data, d])));
    st.on("error", () => undefined);
    st.on("close", () => resolve({ status, grpcStatus, body: data.toString("latin1") }));
    st.end(body);
  });
}

describe("malformed wire input", () => {
  let server: RunnelServer;
  let session: ClientHttp2Session;
  beforeAll(async () => {
    server = await startServer();
    session = http2.connect(server.url);
  });
  afterAll(async () => {
    session.close();
    await expectNoStreams(server);
    await server.shutdown(1_000);
  });

  const cases: [name: string, path: string, contentType: string, body: Buffer, expected: RegExp | { grpc: string }][] = [
    ["Connect stream: envelope longer than the body", SUBSCRIBE, "application/connect+proto", envelope(0, 1000, TOPIC_AB), /"code":"invalid_argument","message":"protocol error: incomplete envelope"/],
    ["Connect stream: two requests to a server stream", SUBSCRIBE, "application/connect+proto", Buffer.concat([envelope(0, 5, TOPIC_AB), envelope(0, 5, TOPIC_AB)]), /"code":"unimplemented","message":"protocol error: received extra input message/],
    ["Connect stream: only an end-stream envelope", SUBSCRIBE, "application/connect+proto", envelope(2, 5, TOPIC_AB), /"code":"unimplemented","message":"protocol error: missing input message/],
    ["Connect stream: empty body", SUBSCRIBE, "application/connect+proto", Buffer.alloc(0), /missing input message/],
    ["Connect stream: compressed flag, no encoding", SUBSCRIBE, "application/connect+proto", envelope(1, 5, TOPIC_AB), /"code":"internal","message":"received compressed envelope, but do not know how to decompress"/],
    ["gRPC-web: a client sending a trailer frame instead of a request", SUBSCRIBE, "application/grpc-web+proto", envelope(0x80, 13, Buffer.from("grpc-status:0")), /grpc-status: 12\r\n/],
    ["gRPC-web: message then a malformed trailer frame", PUBLISH, "application/grpc-web+proto", Buffer.concat([envelope(0, 5, TOPIC_AB), envelope(0x80, 50, Buffer.from([0xff, 0xfe, 0x3a]))]), /grpc-status: 3\r\n/],
    ["gRPC: truncated frame", PUBLISH, "application/grpc", envelope(0, 100, TOPIC_AB), { grpc: "3" }],
    ["gRPC: two bytes of a length prefix", PUBLISH, "application/grpc", Buffer.from([0, 0]), { grpc: "3" }],
    ["gRPC: compressed flag without grpc-encoding", PUBLISH, "application/grpc", envelope(1, 5, TOPIC_AB), { grpc: "13" }],
    ["gRPC: undecodable protobuf", PUBLISH, "application/grpc", envelope(0, 2, Buffer.from([0x0a, 0x05])), { grpc: "13" }],
  ];
  for (const [name, path, contentType, body, expected] of cases) {
    it(name, async () => {
      const a = await send(session, path, contentType, body);
      if (expected instanceof RegExp) {
        expect(a.status).toBe(200);
        expect(a.body).toMatch(expected);
      } else {
        expect(a.grpcStatus).toBe(expected.grpc);
      }
      expect(server.ledger.size).toBe(0);
    });
  }

  it("wrong content types: 415, on both HTTP versions", async () => {
    for (const ct of ["text/plain", "application/xml", "application/grpc+json-but-not"]) {
      expect((await send(session, PUBLISH, ct, Buffer.from("hi"))).status, ct).toBe(415);
      const res = await fetch(`${server.url}${PUBLISH}`, { method: "POST", headers: { "content-type": ct }, body: "hi" });
      expect(res.status, ct).toBe(415);
    }
  });

  it("the connection that carried all of it still serves a good request", async () => {
    const a = await send(session, PUBLISH, "application/grpc", envelope(0, 5, TOPIC_AB));
    expect(a.grpcStatus).toBe("0");
    expect(session.destroyed).toBe(false);
  });
});
