/**
 * Limits over real transports: past each one the caller gets
 * ResourceExhausted with a message, runnel_limit_hits_total{limit} counts
 * it, the refused stream leaves nothing behind, and a stream that ends
 * frees its place at once (counts come from the ledger).
 */
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import { EventService, type SubscribeRequestSchema } from "../../gen/runnel/v1/event_pb.js";
import { Limits } from "../../src/limits/limits.js";
import { HARDENING_DEFAULTS } from "../../src/limits/hardening-config.js";
import { Ledger, type LedgerEntry } from "../../src/stream/ledger.js";
import type { Config } from "../../src/config.js";
import type { RunnelServer } from "../../src/server.js";
import { Registry } from "prom-client";
import { TOKENS, writeAuthFixture } from "../harness/auth-fixture.js";
import { parseProm, promValue } from "../harness/prom.js";
import { expectNoStreams, startServer, waitFor } from "../harness/server.js";
import { TRANSPORTS } from "../harness/transports.js";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

/** A subscription held open until `close()`; `first` settles with "subscribed" or the error it failed with. */
function hold(client: Client<typeof EventService>, req: MessageInitShape<typeof SubscribeRequestSchema>, token?: string) {
  const abort = new AbortController();
  const first = (async (): Promise<"subscribed" | ConnectError> => {
    try {
      const headers = token === undefined ? {} : { authorization: `Bearer ${token}` };
      for await (const m of client.subscribe(req, { signal: abort.signal, headers })) {
        if (m.kind.case === "subscribed") return "subscribed";
      }
      return new ConnectError("ended without Subscribed", Code.Internal);
    } catch (e) {
      return ConnectError.from(e);
    }
  })();
  return { first, close: () => abort.abort() };
}

async function hits(server: RunnelServer, limit: string): Promise<number> {
  return promValue(parseProm(await server.metrics.render()), "runnel_limit_hits_total", { limit }) ?? 0;
}

async function refused(p: Promise<"subscribed" | ConnectError>, message: RegExp): Promise<void> {
  const r = await p;
  expect(r).toBeInstanceOf(ConnectError);
  expect((r as ConnectError).code).toBe(Code.ResourceExhausted);
  expect((r as ConnectError).rawMessage).toMatch(message);
}

describe("limits", () => {
  let server: RunnelServer | undefined;
  afterEach(async () => {
    if (server !== undefined) {
      await expectNoStreams(server);
      await server.shutdown(1_000);
    }
    server = undefined;
  });

  for (const t of [TRANSPORTS[0]!, TRANSPORTS[2]!]) {
    it(`streams per peer and in total; a closed stream frees its place (${t.name})`, async () => {
      server = await startServer({ maxStreamsPerPeer: 3, maxStreams: 3 });
      const client = createClient(EventService, t.create(server.url));
      const held = [hold(client, { topic: "l.a" }), hold(client, { topic: "l.b" }), hold(client, { topic: "l.c" })];
      for (const h of held) expect(await h.first).toBe("subscribed");
      const fourth = hold(client, { topic: "l.d" });
      await refused(fourth.first, /limit/);
      expect((await hits(server, "streams_total")) + (await hits(server, "streams_per_peer"))).toBe(1);
      held[0]!.close();
      await waitFor(() => server!.ledger.size === 2, 10_000, "one stream released");
      const again = hold(client, { topic: "l.e" });
      expect(await again.first).toBe("subscribed");
      for (const h of [...held, again]) h.close();
    });
  }

  it("the per-address limit names the address", async () => {
    server = await startServer({ maxStreamsPerPeer: 1 });
    const client = createClient(EventService, TRANSPORTS[1]!.create(server.url));
    const a = hold(client, { topic: "l.a" });
    expect(await a.first).toBe("subscribed");
    await refused(hold(client, { topic: "l.b" }).first, /^127\.0\.0\.1 has 1 live streams, the limit per address$/);
    expect(await hits(server, "streams_per_peer")).toBe(1);
    a.close();
  });

  it("streams per token: one token at its limit does not stop another", async () => {
    const fixture = await writeAuthFixture();
    server = await startServer({ auth: fixture.path, maxStreamsPerToken: 2 });
    const client = createClient(EventService, TRANSPORTS[2]!.create(server.url));
    const mine = [hold(client, { topic: "orders.eu.a" }, TOKENS.euReader), hold(client, { topic: "orders.eu.b" }, TOKENS.euReader)];
    for (const h of mine) expect(await h.first).toBe("subscribed");
    await refused(hold(client, { topic: "orders.eu.c" }, TOKENS.euReader).first, /^token:eu-reader has 2 live streams, the limit per token$/);
    const other = hold(client, { topic: "orders.eu.c" }, TOKENS.admin);
    expect(await other.first).toBe("subscribed");
    expect(await hits(server, "streams_per_token")).toBe(1);
    for (const h of [...mine, other]) h.close();
  });

  it("pattern subscriptions per node; exact topics are not counted", async () => {
    server = await startServer({ maxPatternSubscriptions: 1 });
    const client = createClient(EventService, TRANSPORTS[2]!.create(server.url));
    const p = hold(client, { topic: "l.>" });
    expect(await p.first).toBe("subscribed");
    await refused(hold(client, { topic: "l.*" }).first, /pattern subscriptions/);
    const exact = hold(client, { topic: "l.x" });
    expect(await exact.first).toBe("subscribed");
    p.close();
    exact.close();
  });

  it("publishes per second per token (token bucket)", async () => {
    const fixture = await writeAuthFixture();
    server = await startServer({ auth: fixture.path, publishRate: 2, publishBurst: 3 });
    const client = createClient(EventService, TRANSPORTS[2]!.create(server.url));
    const as = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });
    for (let i = 0; i < 3; i++) await client.publish({ topic: "orders.x", data: enc("x") }, as(TOKENS.writer));
    const err = await client.publish({ topic: "orders.x", data: enc("x") }, as(TOKENS.writer)).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err?.code).toBe(Code.ResourceExhausted);
    expect(err?.rawMessage).toMatch(/^token:writer is over its publish rate of 2\/s; slow down$/);
    // Another token has its own bucket; the first one refills.
    await client.publish({ topic: "orders.x", data: enc("x") }, as(TOKENS.admin));
    await waitFor(
      () => client.publish({ topic: "orders.x", data: enc("x") }, as(TOKENS.writer)).then(() => true, () => false),
      5_000,
      "the bucket to refill",
    );
    expect(await hits(server, "publish_rate")).toBeGreaterThanOrEqual(1);
  });

  it("event size, header count and bytes, topic length and depth", async () => {
    server = await startServer({ maxEventBytes: 100, maxEventHeaders: 2, maxEventHeaderBytes: 20, maxTopicLength: 12, maxTopicDepth: 3 });
    const client = createClient(EventService, TRANSPORTS[1]!.create(server.url));
    const cases: [string, () => Promise<unknown>, string, RegExp][] = [
      ["data", () => client.publish({ topic: "a.b", data: new Uint8Array(101) }), "event_bytes", /^event data is 101 bytes \(at most 100\)$/],
      ["headers", () => client.publish({ topic: "a.b", data: enc("x"), headers: { a: "1", b: "2", c: "3" } }), "event_headers", /too many headers: 3/],
      ["header bytes", () => client.publish({ topic: "a.b", data: enc("x"), headers: { a: "x".repeat(20) } }), "event_header_bytes", /headers take 21 bytes/],
      ["topic length", () => client.publish({ topic: "abcdef.ghijkl", data: enc("x") }), "topic_length", /longer than 12/],
      ["topic depth", () => client.publish({ topic: "a.b.c.d", data: enc("x") }), "topic_depth", /more than 3 tokens/],
    ];
    for (const [name, call, limit, message] of cases) {
      const err = await call().then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      expect(err?.code, name).toBe(Code.ResourceExhausted);
      expect(err?.rawMessage, name).toMatch(message);
      expect(await hits(server, limit), name).toBe(1);
    }
    await refused(hold(client, { topic: "a.b.c.>" }).first, /^pattern has more than 3 tokens$/);
    expect(server.bus.stats().topics).toBe(0);
    // Within every bound: accepted.
    await client.publish({ topic: "a.b.c", data: new Uint8Array(100), headers: { a: "1", b: "x".repeat(17) } });
  });
});

describe("Limits.admitStream for tails (TailService counts each stream under tail:PATH)", () => {
  it("concurrent tails per file", () => {
    const ledger = new Ledger();
    const registry = new Registry();
    const limits = new Limits({ ...HARDENING_DEFAULTS, maxTailsPerFile: 2 } as Config, ledger, registry);
    const entry = (id: string, tally: string[]): LedgerEntry =>
      ({ id, rpc: "runnel.v1.TailService/Tail", tally, resources: () => new Map() }) as unknown as LedgerEntry;
    const tally = ["peer:127.0.0.1", "principal:anonymous", "tail:app/x.log"];
    const entries = [entry("1", tally), entry("2", tally), entry("3", tally)];
    ledger.add(entries[0]!);
    limits.admitStream(tally);
    ledger.add(entries[1]!);
    limits.admitStream(tally);
    ledger.add(entries[2]!);
    expect(() => limits.admitStream(tally)).toThrow(/^\[resource_exhausted\] "app\/x\.log" is tailed by 2 streams, the limit per file$/);
    // Another file is not affected; a released stream frees its place.
    expect(() => limits.admitStream(["tail:app/y.log"])).not.toThrow();
    ledger.remove(entries[2]!, "error", 0);
    ledger.remove(entries[1]!, "canceled", 0);
    ledger.add(entries[2]!);
    expect(() => limits.admitStream(tally)).not.toThrow();
    expect(ledger.tallyOf("tail:app/x.log")).toBe(2);
  });
});
