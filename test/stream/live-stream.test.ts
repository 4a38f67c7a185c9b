/**
 * Unit tests of the lifecycle core without a network: how a LiveStream
 * yields, drops, closes and finishes. (Real transports are in test/e2e.)
 */
import { Code, ConnectError, createHandlerContext } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { EventService } from "../../gen/runnel/v1/event_pb.js";
import { Ledger } from "../../src/stream/ledger.js";
import { openStream, type StreamMessages, type StreamSettings } from "../../src/stream/live-stream.js";
import { heldResources } from "../../src/stream/scope.js";

type Msg = { kind: "event"; topic: string; seq: bigint } | { kind: "control"; name: string };

const messages: StreamMessages<Msg> = {
  heartbeat: () => ({ kind: "control", name: "heartbeat" }),
  closing: (cause, cursor) => ({ kind: "control", name: `closing:${cause}:${cursor}` }),
  cursorOf: (m) => (m.kind === "event" ? `${m.topic}#${m.seq}` : undefined),
  dropKey: (m) => (m.kind === "event" ? { key: m.topic, seq: m.seq } : undefined),
  dropped: (key, from, to) => ({ kind: "control", name: `dropped:${key}:${from}-${to}` }),
};

function settings(overrides: Partial<StreamSettings> = {}): StreamSettings {
  return {
    rpc: "test/Stream",
    limits: { queue: { maxItems: 3, maxBytes: 1 << 20 }, lifetimeMs: 0, closeFlushMs: 1_000, retryAfterMs: 0 },
    policy: "drop-oldest",
    heartbeatMs: 0,
    ...overrides,
  };
}

function context() {
  return createHandlerContext({
    service: EventService,
    method: EventService.method.subscribe,
    protocolName: "test",
    requestMethod: "POST",
    url: "http://localhost/test",
  });
}

const ev = (seq: number): Msg => ({ kind: "event", topic: "t", seq: BigInt(seq) });
const names = (ms: Msg[]): string[] => ms.map((m) => (m.kind === "event" ? `t#${m.seq}` : m.name));

describe("LiveStream", () => {
  it("drop-oldest drops events but never control messages, and reports the drop first", async () => {
    const ledger = new Ledger();
    const ctx = context();
    const gen = openStream<Msg>(ctx, ledger, settings(), messages, (s) => {
      s.send({ kind: "control", name: "subscribed" });
      for (let i = 1; i <= 6; i++) s.deliver(ev(i), 1);
    });
    const got: Msg[] = [];
    for (let i = 0; i < 4; i++) got.push((await gen.next()).value as Msg);
    expect(names(got)).toEqual(["dropped:t:1-4", "subscribed", "t#5", "t#6"]);
    ctx.abort(new ConnectError("bye", Code.Canceled)); // parked at yield: the core return()s the generator
    expect((await gen.next()).done).toBe(true);
    expect(ledger.size).toBe(0);
    expect(ledger.finallyRan).toBe(1);
    expect(ledger.endedCount("test/Stream", "canceled")).toBe(1);
  });

  it("close() sends Closing with the last sent cursor, then the cause's code; sources are released at once", async () => {
    const ledger = new Ledger();
    let released = 0;
    const gen = openStream<Msg>(context(), ledger, settings({ policy: "disconnect" }), messages, (s) => {
      s.own("source", { close: () => released++ });
      s.deliver(ev(1), 1);
      s.deliver(ev(2), 1);
    });
    expect(names([(await gen.next()).value as Msg])).toEqual(["t#1"]);
    ledger.list()[0]!.close("shutdown", "going away");
    expect(released).toBe(1);
    expect(names([(await gen.next()).value as Msg])).toEqual(["closing:shutdown:t#1"]);
    const end = await gen.next().catch((e: unknown) => e);
    expect(end).toBeInstanceOf(ConnectError);
    expect((end as ConnectError).code).toBe(Code.Unavailable);
    expect(ledger.size).toBe(0);
    expect(ledger.endedCount("test/Stream", "shutdown")).toBe(1);
  });

  it("a generator parked at yield with nobody reading still finishes when the client aborts", async () => {
    const ledger = new Ledger();
    const ctx = context();
    let released = 0;
    const gen = openStream<Msg>(ctx, ledger, settings(), messages, (s) => {
      s.own("source", { close: () => released++ });
      s.deliver(ev(1), 1);
    });
    await gen.next(); // parked at yield; nobody calls next() again
    ctx.abort(new ConnectError("gone", Code.Canceled));
    await new Promise((r) => setImmediate(r));
    expect(released).toBe(1);
    expect([...heldResources()]).toEqual([]); // the source and the abort listener alike
    expect(ledger.finallyRan).toBe(1);
    expect(ledger.size).toBe(0);
  });

  it("the disconnect policy ends a stream whose queue overflows with slow_consumer", async () => {
    const ledger = new Ledger();
    const gen = openStream<Msg>(context(), ledger, settings({ policy: "disconnect" }), messages, (s) => {
      s.startAt("start");
      for (let i = 1; i <= 4; i++) s.deliver(ev(i), 1);
    });
    expect(names([(await gen.next()).value as Msg])).toEqual(["closing:slow_consumer:start"]);
    const end = await gen.next().catch((e: unknown) => e);
    expect((end as ConnectError).code).toBe(Code.ResourceExhausted);
    expect(ledger.endedCount("test/Stream", "slow_consumer")).toBe(1);
  });

  it("a setup error ends the stream before anything is sent", async () => {
    const ledger = new Ledger();
    const gen = openStream<Msg>(context(), ledger, settings(), messages, () => {
      throw new ConnectError("bad request", Code.InvalidArgument);
    });
    const end = await gen.next().catch((e: unknown) => e);
    expect((end as ConnectError).code).toBe(Code.InvalidArgument);
    expect(ledger.size).toBe(0);
    expect(ledger.endedCount("test/Stream", "error")).toBe(1);
  });

  it("a request already aborted when the stream opens ends at once, its finally counted once", async () => {
    const ledger = new Ledger();
    const ctx = context();
    ctx.abort(new ConnectError("gone before we started", Code.Canceled));
    let setupRan = false;
    const gen = openStream<Msg>(ctx, ledger, settings(), messages, () => {
      setupRan = true;
    });
    expect(ledger.size).toBe(0);
    const end = await gen.next().catch((e: unknown) => e);
    expect(end instanceof ConnectError || (end as IteratorResult<Msg>).done === true).toBe(true);
    expect(setupRan).toBe(false);
    expect(ledger.finallyRan).toBe(1);
    expect(ledger.endedCount("test/Stream", "canceled")).toBe(1);
  });

  it("a stream opened while the server shuts down ends at once with Unavailable, before Subscribed", async () => {
    const ledger = new Ledger();
    ledger.refuseNew();
    let setupRan = false;
    const gen = openStream<Msg>(context(), ledger, settings(), messages, () => {
      setupRan = true;
    });
    const end = await gen.next().catch((e: unknown) => e);
    expect((end as ConnectError).code).toBe(Code.Unavailable);
    expect(setupRan).toBe(false);
    expect(ledger.size).toBe(0);
    expect(ledger.finallyRan).toBe(1);
    expect(ledger.endedCount("test/Stream", "shutdown")).toBe(1);
  });
});
