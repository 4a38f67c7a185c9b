/**
 * A Connect-protocol Subscribe over a bare node:http2 stream. connect-es
 * clients read ahead (a subscriber that stops iterating still drains the
 * socket), so a genuinely slow consumer needs a stream whose reading the test
 * controls: this one does not read until `startReading()` is called, and with
 * a small HTTP/2 window the server's writes block after a few KiB.
 *
 * The Connect streaming wire format: each message is an envelope of 1 flag
 * byte + 4-byte big-endian length + payload; flag 0x02 marks the end-stream
 * envelope whose payload is JSON ({"error": {...}} when the call failed).
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from "node:http2";
import { SubscribeRequestSchema, SubscribeResponseSchema, type SubscribeResponse } from "../../gen/runnel/v1/event_pb.js";
import type { SubscribeInit } from "./subscriber.js";
import { waitFor } from "./server.js";

/** Flag of the end-stream envelope in the Connect streaming protocol. */
export const END_STREAM_FLAG = 0x02;

/** One envelope: flags and payload. */
export interface Envelope {
  readonly flags: number;
  readonly data: Uint8Array;
}

/** Wrap `data` in an envelope. */
export function encodeEnvelope(data: Uint8Array, flags = 0): Buffer {
  const out = Buffer.alloc(5 + data.length);
  out.writeUInt8(flags, 0);
  out.writeUInt32BE(data.length, 1);
  out.set(data, 5);
  return out;
}

/** Splits a byte stream into envelopes, across chunk boundaries. */
export class EnvelopeParser {
  private buffer: Buffer = Buffer.alloc(0);

  /** Feed a chunk; returns the envelopes it completed. */
  push(chunk: Uint8Array): Envelope[] {
    this.buffer = this.buffer.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.buffer, chunk]);
    const out: Envelope[] = [];
    while (this.buffer.length >= 5) {
      const length = this.buffer.readUInt32BE(1);
      if (this.buffer.length < 5 + length) break;
      out.push({ flags: this.buffer.readUInt8(0), data: new Uint8Array(this.buffer.subarray(5, 5 + length)) });
      this.buffer = this.buffer.subarray(5 + length);
    }
    return out;
  }

  /** Bytes received that do not form a whole envelope yet. */
  get pending(): number {
    return this.buffer.length;
  }
}

/** The JSON end-stream message of a Connect stream. */
export interface EndStream {
  error?: { code: string; message?: string };
  metadata?: Record<string, string[]>;
}

/** Options of a raw subscription. */
export interface RawSubscribeOptions {
  /** The HTTP/2 stream window this client advertises (SETTINGS_INITIAL_WINDOW_SIZE). Default 65,535. */
  readonly initialWindowSize?: number;
}

/** A raw Connect Subscribe call; nothing is read until `startReading()`. */
export class RawSubscription {
  readonly messages: SubscribeResponse[] = [];
  endStream: EndStream | undefined;
  responseHeaders: IncomingHttpHeaders | undefined;
  /** Set when the HTTP/2 stream closed (by either side). */
  closed = false;
  private readonly parser = new EnvelopeParser();
  private reading = false;

  constructor(
    readonly session: ClientHttp2Session,
    readonly stream: ClientHttp2Stream,
  ) {
    stream.once("response", (headers) => (this.responseHeaders = headers));
    stream.once("close", () => (this.closed = true));
    stream.on("error", () => undefined); // RST by either side is an expected outcome here
    session.on("error", () => undefined);
  }

  /** Attach the data listener: from now on everything the server sent and sends is parsed. */
  startReading(): void {
    if (this.reading) return;
    this.reading = true;
    this.stream.on("data", (chunk: Buffer) => {
      for (const env of this.parser.push(chunk)) {
        if ((env.flags & END_STREAM_FLAG) !== 0) this.endStream = JSON.parse(new TextDecoder().decode(env.data)) as EndStream;
        else this.messages.push(fromBinary(SubscribeResponseSchema, env.data));
      }
    });
  }

  /** Wait for `check` while reading; fails with what was seen so far. */
  async until(check: () => boolean, timeoutMs = 10_000, what = "condition"): Promise<void> {
    await waitFor(check, timeoutMs, `${what} (seen ${this.messages.length} messages, end ${JSON.stringify(this.endStream)})`);
  }

  /** Cancel the call (RST_STREAM CANCEL) and close the session. */
  async close(): Promise<void> {
    if (!this.stream.closed) this.stream.close(http2.constants.NGHTTP2_CANCEL);
    await new Promise<void>((resolve) => {
      if (this.session.closed || this.session.destroyed) return resolve();
      this.session.close(() => resolve());
    });
  }
}

/** Start `POST /runnel.v1.EventService/Subscribe` with the Connect protocol over a fresh HTTP/2 session. */
export function rawSubscribe(baseUrl: string, request: SubscribeInit, options: RawSubscribeOptions = {}): RawSubscription {
  const session = http2.connect(baseUrl, { settings: { initialWindowSize: options.initialWindowSize ?? 65_535 } });
  const stream = session.request({
    ":method": "POST",
    ":path": "/runnel.v1.EventService/Subscribe",
    "content-type": "application/connect+proto",
    "connect-protocol-version": "1",
  });
  stream.end(encodeEnvelope(toBinary(SubscribeRequestSchema, create(SubscribeRequestSchema, request))));
  return new RawSubscription(session, stream);
}
