/**
 * EventService.PublishBatch over real transports: results per event in
 * request order, consecutive seqs per topic, subscribers see exactly those
 * events; admission is all-or-nothing (a bad event, a missing right, a limit:
 * the whole batch is refused with that event's code and index, and nothing is
 * published); the rate limit counts events; the Redis bus does the same.
 */
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { EventService, type PublishRequestSchema } from "../../gen/runnel/v1/event_pb.js";
import { AdminService } from "../../gen/runnel/v1/admin_pb.js";
import { TailService } from "../../gen/runnel/v1/tail_pb.js";
import { DOORS } from "../../src/auth/access.js";
import type { Config } from "../../src/config.js";
import type { RunnelServer } from "../../src/server.js";
import { writeAuthFixture, type AuthFixture } from "../harness/auth-fixture.js";
import { subscribe } from "../harness/lifecycle.js";
import { parseProm, promValue } from "../harness/prom.js";
import { describeRedis, startRedis, type RedisProcess } from "../harness/redis.js";
import { expectNoStreams, startServer } from "../harness/server.js";
import { TRANSPORTS } from "../harness/transports.js";

type Event = MessageInitShape<typeof PublishRequestSchema>;

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);
const bearer = (token: string | undefined): Record<string, string> => (token === undefined ? {} : { authorization: `Bearer ${token}` });

/** The error a call failed with (fails the test when it succeeded). */
async function refusal(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (e) {
    return ConnectError.from(e);
  }
  throw new Error("the call succeeded");
}

async function metric(server: RunnelServer, name: string, labels: Record<string, string> = {}): Promise<number> {
  return promValue(parseProm(await server.metrics.render()), name, labels) ?? 0;
}

/** Events of two topics, interleaved: a0 b0 a1 b1 ... */
function interleaved(a: string, b: string, n: number): Event[] {
  const events: Event[] = [];
  for (let i = 0; i < n; i++) {
    events.push({ topic: a, data: enc(`${a}-${i}`), headers: { i: String(i) } });
    events.push({ topic: b, data: enc(`${b}-${i}`) });
  }
  return events;
}

/**
 * Publish a batch over two topics with a subscriber on each, and check the
 * results (seqs consecutive per topic in batch order, cursors) and what each
 * subscriber received (exactly those events, in order).
 */
async function publishAndCheck(server: RunnelServer, client: Client<typeof EventService>, prefix: string): Promise<void> {
  const [a, b] = [`${prefix}.a`, `${prefix}.b`];
  await client.publish({ topic: a, data: enc("before") }); // a starts at seq 2 in the batch, b at 1
  const subA = subscribe(client, { topic: a });
  const subB = subscribe(client, { topic: b });
  await Promise.all([subA.subscribed, subB.subscribed]);
  const publishedBefore = await metric(server, "runnel_events_published_total");

  const events = interleaved(a, b, 5);
  const res = await client.publishBatch({ events });

  expect(res.results).toHaveLength(events.length);
  const seqs = res.results.map((r) => r.seq);
  expect(seqs).toEqual([2n, 1n, 3n, 2n, 4n, 3n, 5n, 4n, 6n, 5n]);
  expect(new Set(res.results.map((r) => r.cursor)).size).toBe(events.length);
  for (const r of res.results) expect(r.time).toBeDefined();
  expect(await metric(server, "runnel_events_published_total")).toBe(publishedBefore + events.length);

  await expect.poll(() => subA.events().length + subB.events().length).toBe(events.length);
  for (const [sub, topic] of [[subA, a], [subB, b]] as const) {
    const got = sub.events();
    const mine = res.results.filter((_, i) => events[i]!.topic === topic);
    expect(got.map((e) => e.topic)).toEqual(mine.map(() => topic));
    expect(got.map((e) => e.seq)).toEqual(mine.map((r) => r.seq));
    expect(got.map((e) => e.cursor)).toEqual(mine.map((r) => r.cursor));
    expect(got.map((e) => dec(e.data))).toEqual([0, 1, 2, 3, 4].map((i) => `${topic}-${i}`));
  }
  expect(subA.events().map((e) => e.headers["i"])).toEqual(["0", "1", "2", "3", "4"]);
  subA.abort.abort();
  subB.abort.abort();
  await Promise.all([subA.done, subB.done]);
  await expectNoStreams(server);
}

/** The next seq of `topic`, found without publishing to it: a `last: 1` replay's event seq + 1 (1 when empty). */
async function nextSeq(client: Client<typeof EventService>, topic: string): Promise<bigint> {
  const sub = subscribe(client, { topic, start: { case: "last", value: 1 } });
  await sub.subscribed;
  // Replay is synchronous on the memory bus: the last retained event (if any) follows Subscribed at once.
  await new Promise((r) => setTimeout(r, 100));
  const events = sub.events();
  sub.abort.abort();
  await sub.done;
  return events.length === 0 ? 1n : events[events.length - 1]!.seq + 1n;
}

describe("PublishBatch", () => {
  describe("happy path on every protocol", () => {
    let server: RunnelServer;
    beforeAll(async () => {
      server = await startServer();
    });
    afterAll(async () => {
      await server.shutdown(1_000);
    });

    TRANSPORTS.forEach((t, n) => {
      it(`results in request order, consecutive seqs per topic, subscribers see exactly those events (${t.name})`, async () => {
        await publishAndCheck(server, createClient(EventService, t.create(server.url)), `pb${n}`);
      });
    });
  });

  describe("refusals", () => {
    let server: RunnelServer | undefined;
    afterEach(async () => {
      if (server !== undefined) {
        await expectNoStreams(server);
        await server.shutdown(1_000);
      }
      server = undefined;
    });

    async function start(config: Partial<Config> = {}): Promise<Client<typeof EventService>> {
      server = await startServer(config);
      return createClient(EventService, TRANSPORTS[2]!.create(server.url));
    }

    it("one invalid topic at index 2: InvalidArgument naming events[2], nothing published", async () => {
      const client = await start();
      await client.publishBatch({ events: [{ topic: "ok.a" }, { topic: "ok.b" }] });
      const before = [await nextSeq(client, "ok.a"), await nextSeq(client, "ok.b")];
      const published = await metric(server!, "runnel_events_published_total");
      const err = await refusal(client.publishBatch({ events: [{ topic: "ok.a" }, { topic: "ok.b" }, { topic: "ok..bad" }, { topic: "ok.a" }] }));
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toMatch(/^events\[2\]: /);
      expect([await nextSeq(client, "ok.a"), await nextSeq(client, "ok.b")]).toEqual(before);
      expect(await metric(server!, "runnel_events_published_total")).toBe(published);
      // An empty header name is refused the same way, with its index.
      const headers = await refusal(client.publishBatch({ events: [{ topic: "ok.a" }, { topic: "ok.a", headers: { "": "x" } }] }));
      expect(headers.code).toBe(Code.InvalidArgument);
      expect(headers.rawMessage).toMatch(/^events\[1\]: header names/);
      expect(await nextSeq(client, "ok.a")).toBe(before[0]);
    });

    it("an empty batch: InvalidArgument", async () => {
      const client = await start();
      const err = await refusal(client.publishBatch({ events: [] }));
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toMatch(/at least one event/);
    });

    it("more than --max-batch-events: ResourceExhausted, counted as batch_events, nothing published", async () => {
      const client = await start({ maxBatchEvents: 5 });
      const events = Array.from({ length: 6 }, (_, i) => ({ topic: "mb.a", data: enc(String(i)) }));
      const err = await refusal(client.publishBatch({ events }));
      expect(err.code).toBe(Code.ResourceExhausted);
      expect(err.rawMessage).toMatch(/6 events \(at most 5\)/);
      expect(await metric(server!, "runnel_limit_hits_total", { limit: "batch_events" })).toBe(1);
      expect(await nextSeq(client, "mb.a")).toBe(1n);
      expect((await client.publishBatch({ events: events.slice(0, 5) })).results.map((r) => r.seq)).toEqual([1n, 2n, 3n, 4n, 5n]);
    });

    it("the publish rate counts events: a rate of 5 and a batch of 6 is ResourceExhausted, nothing published; 5 pass", async () => {
      const client = await start({ publishRate: 5 });
      const events = Array.from({ length: 6 }, () => ({ topic: "rate.a" }));
      const err = await refusal(client.publishBatch({ events }));
      expect(err.code).toBe(Code.ResourceExhausted);
      expect(err.rawMessage).toMatch(/publish rate of 5\/s/);
      expect(await metric(server!, "runnel_limit_hits_total", { limit: "publish_rate" })).toBe(1);
      expect(await nextSeq(client, "rate.a")).toBe(1n);
      // All or none: the refused batch took no token, so a batch of 5 gets all five.
      expect((await client.publishBatch({ events: events.slice(0, 5) })).results).toHaveLength(5);
      // ... and then even a single Publish is over the rate.
      expect((await refusal(client.publish({ topic: "rate.a" }))).code).toBe(Code.ResourceExhausted);
    });

    it("an oversized event inside a batch: the code single Publish answers (ResourceExhausted), with its index", async () => {
      const client = await start({ maxEventBytes: 100 });
      const big = new Uint8Array(101);
      const single = await refusal(client.publish({ topic: "big.a", data: big }));
      const err = await refusal(client.publishBatch({ events: [{ topic: "big.a" }, { topic: "big.a", data: big }] }));
      expect(err.code).toBe(single.code);
      expect(err.code).toBe(Code.ResourceExhausted);
      expect(err.rawMessage).toBe(`events[1]: ${single.rawMessage}`);
      expect(await nextSeq(client, "big.a")).toBe(1n);
    });
  });

  describe("auth", () => {
    let server: RunnelServer;
    let fixture: AuthFixture;
    let client: Client<typeof EventService>;
    let admin: string;
    beforeAll(async () => {
      fixture = await writeAuthFixture();
      server = await startServer({ auth: fixture.path });
      client = createClient(EventService, TRANSPORTS[1]!.create(server.url));
      admin = await fixture.jwt("HS256", { sub: "batch-admin", runnel_subscribe: [">"], runnel_publish: [">"] });
    });
    afterAll(async () => {
      await server.shutdown(1_000);
    });

    /** nextSeq as a caller that may subscribe to everything. */
    async function seqOf(topic: string): Promise<bigint> {
      const authed = createClient(EventService, TRANSPORTS[2]!.create(server.url));
      const r = await authed.publishBatch({ events: [{ topic }] }, { headers: bearer(admin) });
      return r.results[0]!.seq; // the probe itself is the next seq; callers compare probes
    }

    it("a token allowed orders.eu.* with one orders.us.x event: PermissionDenied naming it, nothing published", async () => {
      const eu = await fixture.jwt("ES256", { sub: "eu-writer", runnel_publish: ["orders.eu.*"] });
      const ok = await client.publishBatch({ events: [{ topic: "orders.eu.a" }, { topic: "orders.eu.b" }] }, { headers: bearer(eu) });
      expect(ok.results.map((r) => r.seq)).toEqual([1n, 1n]);
      const deniedBefore = await metric(server, "runnel_auth_refused_total", { code: "permission_denied" });
      const err = await refusal(
        client.publishBatch({ events: [{ topic: "orders.eu.a" }, { topic: "orders.eu.b" }, { topic: "orders.us.x" }] }, { headers: bearer(eu) }),
      );
      expect(err.code).toBe(Code.PermissionDenied);
      expect(err.rawMessage).toMatch(/^events\[2\]: .*orders\.us\.x/);
      expect(await metric(server, "runnel_auth_refused_total", { code: "permission_denied" })).toBe(deniedBefore + 1);
      // Nothing was published: the next event of each topic takes the seq right after the accepted batch.
      expect(await seqOf("orders.eu.a")).toBe(2n);
      expect(await seqOf("orders.eu.b")).toBe(2n);
      expect(await seqOf("orders.us.x")).toBe(1n);
    });

    it("a caller with no publish right at all is refused at the door, like Publish", async () => {
      const reader = await fixture.jwt("RS256", { sub: "reader", runnel_subscribe: ["orders.>"] });
      const batch = await refusal(client.publishBatch({ events: [{ topic: "orders.eu.a" }] }, { headers: bearer(reader) }));
      const single = await refusal(client.publish({ topic: "orders.eu.a" }, { headers: bearer(reader) }));
      expect(batch.code).toBe(Code.PermissionDenied);
      expect(single.code).toBe(Code.PermissionDenied);
    });

    it("every runnel method has a door rule (an unknown one would be refused); PublishBatch's is Publish's", () => {
      for (const service of [EventService, TailService, AdminService]) {
        for (const m of service.methods) expect(DOORS[`${service.typeName}/${m.name}`], `${service.typeName}/${m.name}`).toBeDefined();
      }
      expect(DOORS["runnel.v1.EventService/PublishBatch"]).toBe(DOORS["runnel.v1.EventService/Publish"]);
    });

    it("no token or an unknown one: Unauthenticated", async () => {
      for (const token of [undefined, "nope"]) {
        const err = await refusal(client.publishBatch({ events: [{ topic: "orders.eu.a" }] }, { headers: bearer(token) }));
        expect(err.code).toBe(Code.Unauthenticated);
      }
    });
  });

  describeRedis("on the Redis bus", () => {
    let redis: RedisProcess;
    let server: RunnelServer;
    beforeAll(async () => {
      redis = await startRedis();
      server = await startServer({ bus: redis.url });
    });
    afterAll(async () => {
      await server.shutdown(1_000);
      await redis.stop();
    });

    it("results in request order, consecutive seqs per topic, subscribers see exactly those events", async () => {
      await publishAndCheck(server, createClient(EventService, TRANSPORTS[2]!.create(server.url)), "rb");
    });

    it("an invalid topic at index 1: InvalidArgument, nothing reaches Redis", async () => {
      const client = createClient(EventService, TRANSPORTS[1]!.create(server.url));
      const err = await refusal(client.publishBatch({ events: [{ topic: "rv.a" }, { topic: "rv.*" }] }));
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toMatch(/^events\[1\]: /);
      const r = redis.client();
      try {
        expect(await r.hget("runnel:seqs", "rv.a")).toBeNull();
      } finally {
        r.disconnect();
      }
      expect((await client.publishBatch({ events: [{ topic: "rv.a" }, { topic: "rv.a" }] })).results.map((x) => x.seq)).toEqual([1n, 2n]);
    });
  });
});
