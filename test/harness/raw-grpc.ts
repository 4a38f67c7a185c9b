/**
 * A gRPC Subscribe over a bare node:http2 stream, for tests that need a client
 * that really stops reading one stream (connect-es clients read ahead, so
 * they never push back) while its connection stays healthy: the session keeps
 * answering PINGs and can carry other streams.
 */
import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import http2, { type ClientHttp2Session, type ClientHttp2Stream } from "node:http2";
import {
  SubscribeRequestSchema,
  SubscribeResponseSchema,
  type SubscribeResponse,
} from "../../gen/runnel/v1/event_pb.js";

/** One raw Subscribe call. */
export interface RawSubscribe {
  readonly stream: ClientHttp2Stream;
  /** Messages decoded so far (only while reading). */
  readonly messages: SubscribeResponse[];
  /** Resolves once Subscribed was decoded. */
  readonly subscribed: Promise<void>;
  /** Resolves when the stream closed: grpc-status from trailers (undefined if none) and the RST code. */
  readonly closed: Promise<{ grpcStatus: number | undefined; rstCode: number | undefined }>;
  /** Stop taking data: node stops consuming, so the stream's flow-control window is not refilled. */
  pause(): void;
  /** Take data again. */
  resume(): void;
}

/** Open a session to `baseUrl` (http://host:port). */
export function connectH2(baseUrl: string): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(baseUrl);
    session.once("connect", () => resolve(session));
    session.once("error", reject);
  });
}

/** The 5-byte gRPC length prefix + message. */
export function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}

/** Start Subscribe on `session` with gRPC framing (no compression). */
export function rawSubscribe(session: ClientHttp2Session, request: MessageInitShape<typeof SubscribeRequestSchema> & { topic: string }): RawSubscribe {
  const stream = session.request({
    ":method": "POST",
    ":path": "/runnel.v1.EventService/Subscribe",
    "content-type": "application/grpc+proto",
    te: "trailers",
  });
  stream.end(grpcFrame(toBinary(SubscribeRequestSchema, create(SubscribeRequestSchema, request))));
  const messages: SubscribeResponse[] = [];
  let pending: Buffer = Buffer.alloc(0);
  let onSubscribed!: () => void;
  const subscribed = new Promise<void>((resolve) => (onSubscribed = resolve));
  let grpcStatus: number | undefined;
  stream.on("response", (headers) => {
    // A trailers-only response puts grpc-status in the headers.
    if (headers["grpc-status"] !== undefined) grpcStatus = Number(headers["grpc-status"]);
  });
  stream.on("trailers", (trailers) => {
    if (trailers["grpc-status"] !== undefined) grpcStatus = Number(trailers["grpc-status"]);
  });
  stream.on("data", (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 5) {
      const len = pending.readUInt32BE(1);
      if (pending.length < 5 + len) break;
      const m = fromBinary(SubscribeResponseSchema, pending.subarray(5, 5 + len));
      pending = pending.subarray(5 + len);
      messages.push(m);
      if (m.kind.case === "subscribed") onSubscribed();
    }
  });
  stream.on("error", () => undefined);
  const closed = new Promise<{ grpcStatus: number | undefined; rstCode: number | undefined }>((resolve) => {
    stream.once("close", () => resolve({ grpcStatus, rstCode: stream.rstCode }));
  });
  return {
    stream,
    messages,
    subscribed,
    closed,
    pause: () => stream.pause(),
    resume: () => stream.resume(),
  };
}
