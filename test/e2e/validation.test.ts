/**
 * Bad requests get InvalidArgument with a message that says what is wrong;
 * oversized requests are refused by connect's readMaxBytes; after each, the
 * server keeps serving and holds nothing for the failed call.
 */
import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { EventService } from "../../gen/runnel/v1/event_pb.js";
import type { RunnelServer } from "../../src/server.js";
import { expectNoStreams, startServer, waitFor } from "../harness/server.js";
import { Subscriber, type SubscribeInit } from "../harness/subscriber.js";
import { TRANSPORTS } from "../harness/transports.js";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const READ_MAX = 64 * 1024;
/** Rows refused by a configurable limit (src/limits): ResourceExhausted, not InvalidArgument. */
const LIMITS = new Set(["too long topic", "too many headers", "too large headers", "too long pattern", "too deep pattern"]);

async function callError(call: () => Promise<unknown>): Promise<ConnectError> {
  try {
    await call();
  } catch (e) {
    return ConnectError.from(e);
  }
  throw new Error("call succeeded; expected an error");
}

/** Open a subscription and return the status it ends with (it must end by itself). */
async function subscribeError(transport: Transport, request: SubscribeInit): Promise<{ error: ConnectError; kinds: (string | undefined)[] }> {
  const sub = Subscriber.open(transport, request);
  await sub.finished(5_000);
  if (sub.error === undefined) throw new Error("subscription ended without an error");
  return { error: sub.error, kinds: sub.kinds };
}

describe("validation", () => {
  let server: RunnelServer;
  let client: Client<typeof EventService>;
  let transport: Transport;
  let publishCounter = 0;

  beforeAll(async () => {
    server = await startServer({ readMaxBytes: READ_MAX });
    transport = createConnectTransport({ baseUrl: server.url, httpVersion: "2" });
    client = createClient(EventService, transport);
  });
  afterAll(async () => {
    await server.shutdown(1_000);
  });

  /** After every bad request: nothing held, and a publish + subscribe round trip still works. */
  afterEach(async () => {
    await expectNoStreams(server);
    const topic = "still.serving";
    const sub = Subscriber.open(transport, { topic });
    await sub.ready();
    const data = `ok${++publishCounter}`;
    await client.publish({ topic, data: enc(data) });
    await sub.eventCount(1);
    await sub.cancel();
    expect(sub.texts).toEqual([data]);
    await waitFor(() => server.ledger.size === 0, 5_000, "ledger empty after the round trip");
  });

  describe("publish", () => {
    const cases: [name: string, topic: string, headers: Record<string, string>, message: RegExp][] = [
      ["empty topic", "", {}, /^topic is empty$/],
      ["wildcard * in topic", "orders.*.created", {}, /topic "orders\.\*\.created" contains wildcard "\*"; publish needs an exact topic/],
      ["wildcard > in topic", "orders.>", {}, /contains wildcard ">"/],
      ["empty token", "orders..created", {}, /has an empty token/],
      ["bad character", "orders.eu created", {}, /may only contain letters, digits/],
      ["too long topic", "t".repeat(257), {}, /topic is longer than 256 characters/],
      ["too many headers", "h.t", Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, "v"])), /^too many headers: 65 \(at most 64\)$/],
      ["too large headers", "h.t", { big: "x".repeat(17 * 1024) }, /^headers take 17411 bytes \(at most 16384\)$/],
    ];
    for (const [name, topic, headers, message] of cases) {
      const code = LIMITS.has(name) ? Code.ResourceExhausted : Code.InvalidArgument;
      it(`${name} -> ${Code[code]}`, async () => {
        const before = server.bus.stats().topics;
        const err = await callError(() => client.publish({ topic, headers, data: enc("x") }));
        expect(err.code).toBe(code);
        expect(err.rawMessage).toMatch(message);
        expect(server.bus.stats().topics).toBe(before);
      });
    }
  });

  describe("subscribe", () => {
    let headCursorParts: string[];
    beforeAll(async () => {
      const r = await client.publish({ topic: "v.cursor", data: enc("x") });
      headCursorParts = Buffer.from(r.cursor, "base64url").toString("utf8").split(":");
    });
    const forged = (global: number, seq: number, topic: string): string =>
      Buffer.from(`${headCursorParts[0]}:${headCursorParts[1]}:${global}:${seq}:${topic}`, "utf8").toString("base64url");

    const cases: [name: string, request: () => SubscribeInit, message: RegExp][] = [
      ["empty pattern", () => ({ topic: "" }), /^pattern is empty$/],
      ["'>' not last", () => ({ topic: "a.>.b" }), /^pattern "a\.>\.b": ">" may only be the last token$/],
      ["empty token", () => ({ topic: "a..b" }), /^pattern "a\.\.b" has an empty token/],
      ["too long pattern", () => ({ topic: `${"p".repeat(255)}.>` }), /^pattern is longer than 256 characters$/],
      ["too deep pattern", () => ({ topic: Array.from({ length: 17 }, () => "a").join(".") }), /^pattern has more than 16 tokens$/],
      ["from_seq on a pattern", () => ({ topic: "a.*", start: { case: "fromSeq", value: 3n } }), /^from_seq needs an exact topic, not the pattern "a\.\*"/],
      ["from_seq 0", () => ({ topic: "a.b", start: { case: "fromSeq", value: 0n } }), /^from_seq counts from 1$/],
      ["empty after_cursor", () => ({ topic: "a.b", start: { case: "afterCursor", value: "" } }), /^after_cursor is empty$/],
      ["malformed cursor", () => ({ topic: "a.b", start: { case: "afterCursor", value: "not a cursor!" } }), /^cursor is not a runnel cursor/],
      ["base64 garbage cursor", () => ({ topic: "a.b", start: { case: "afterCursor", value: Buffer.from("m1:zz:1:1:a").toString("base64url") } }), /^cursor is not a runnel cursor/],
      ["cursor ahead of head", () => ({ topic: "a.b", start: { case: "afterCursor", value: forged(1_000_000, 1, "v.cursor") } }), /^cursor is ahead of the newest event of this bus/],
      ["cursor of an event that never was", () => ({ topic: "a.b", start: { case: "afterCursor", value: forged(1, 99, "v.cursor") } }), /^cursor does not match any event of this bus$/],
      ["earliest = false", () => ({ topic: "a.b", start: { case: "earliest", value: false } }), /^earliest must be true when set$/],
    ];
    for (const [name, request, message] of cases) {
      const code = LIMITS.has(name) ? Code.ResourceExhausted : Code.InvalidArgument;
      for (const t of [TRANSPORTS[0]!, TRANSPORTS[2]!]) {
        it(`${name} -> ${Code[code]} (${t.name})`, async () => {
          const { error, kinds } = await subscribeError(t.create(server.url), request());
          expect(error.code).toBe(code);
          expect(error.rawMessage).toMatch(message);
          expect(kinds).toEqual([]); // no Subscribed for a request that was refused
        });
      }
    }
  });

  describe("request size", () => {
    for (const t of TRANSPORTS) {
      it(`publish larger than readMaxBytes -> ResourceExhausted (${t.name})`, async () => {
        const big = createClient(EventService, t.create(server.url));
        const err = await callError(() => big.publish({ topic: "v.big", data: new Uint8Array(READ_MAX + 1) }));
        expect(err.code).toBe(Code.ResourceExhausted);
        expect(err.rawMessage).toMatch(/readMaxBytes/);
        expect(server.bus.stats().topics).toBeGreaterThan(0);
        // The same transport still works for a request within the bound.
        const ok = await big.publish({ topic: "v.big", data: new Uint8Array(READ_MAX - 1024) });
        expect(ok.seq).toBeGreaterThan(0n);
      });
    }

    it("subscribe request larger than readMaxBytes -> ResourceExhausted", async () => {
      const { error } = await subscribeError(transport, { topic: "a.b", start: { case: "afterCursor", value: "c".repeat(READ_MAX + 1) } });
      expect(error.code).toBe(Code.ResourceExhausted);
    });
  });
});
