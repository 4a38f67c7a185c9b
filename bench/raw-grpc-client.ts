/**
 * A minimal gRPC Subscribe client for the bench's subscriber processes: bare
 * node:http2 streams, envelopes split by their length prefix, events counted
 * by the tag of their oneof field without decoding them (decoded only in
 * latency mode, for the publish time in their data). It costs the subscriber
 * processes a fraction of what connect-node's client does, so a fan-out run
 * measures the server rather than its clients. Same client for every server.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import http2, { constants, type ClientHttp2Session } from "node:http2";
import { SubscribeRequestSchema, SubscribeResponseSchema } from "../gen/runnel/v1/event_pb.js";

/** Tags of SubscribeResponse's oneof fields (field number << 3 | length-delimited). */
const TAG_SUBSCRIBED = (1 << 3) | 2;
const TAG_EVENT = (2 << 3) | 2;
const TAG_CLOSING = (5 << 3) | 2;

/** What a raw subscription reports. */
export interface RawSink {
  subscribed(): void;
  /** An event; `data` only when asked for (latency mode). */
  event(data: Uint8Array | undefined): void;
  closing(): void;
  /** The call ended; `error` unless it ended with grpc-status 0 or by our own cancel. */
  ended(error: string | undefined): void;
}

/** Open an HTTP/2 connection to `baseUrl`. */
export function rawSession(baseUrl: string): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(baseUrl, { settings: { initialWindowSize: 1 << 20 } });
    session.once("connect", () => {
      // A connection window that does not make 900 streams share 64 KB.
      session.setLocalWindowSize(32 << 20);
      resolve(session);
    });
    session.once("error", reject);
  });
}

/** Subscribe to `topic` on `session`; returns the cancel function. */
export function rawSubscribe(session: ClientHttp2Session, topic: string, decode: boolean, sink: RawSink): () => void {
  const stream = session.request({
    ":method": "POST",
    ":path": "/runnel.v1.EventService/Subscribe",
    "content-type": "application/grpc+proto",
    te: "trailers",
  });
  const body = toBinary(SubscribeRequestSchema, create(SubscribeRequestSchema, { topic }));
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  frame.set(body, 5);
  stream.end(frame);
  let pending: Buffer | undefined;
  let status: string | undefined;
  let canceled = false;
  stream.on("response", (h) => {
    if (h["grpc-status"] !== undefined) status = String(h["grpc-status"]);
  });
  stream.on("trailers", (h) => {
    if (h["grpc-status"] !== undefined) status = String(h["grpc-status"]);
  });
  stream.on("data", (chunk: Buffer) => {
    let buf = pending === undefined ? chunk : Buffer.concat([pending, chunk]);
    let at = 0;
    while (buf.length - at >= 5) {
      const len = buf.readUInt32BE(at + 1);
      if (buf.length - at < 5 + len) break;
      const tag = len > 0 ? buf[at + 5] : 0;
      if (tag === TAG_EVENT) {
        if (decode) {
          const m = fromBinary(SubscribeResponseSchema, buf.subarray(at + 5, at + 5 + len));
          sink.event(m.kind.case === "event" ? m.kind.value.data : undefined);
        } else sink.event(undefined);
      } else if (tag === TAG_SUBSCRIBED) sink.subscribed();
      else if (tag === TAG_CLOSING) sink.closing();
      at += 5 + len;
    }
    pending = at === buf.length ? undefined : buf.subarray(at);
    buf = Buffer.alloc(0);
  });
  stream.on("error", () => undefined);
  stream.once("close", () => {
    sink.ended(canceled || status === "0" ? undefined : `grpc-status ${status ?? "none"}, rst ${stream.rstCode}`);
  });
  return () => {
    canceled = true;
    if (!stream.closed) stream.close(constants.NGHTTP2_CANCEL);
  };
}
