/**
 * Bad input on the Redis bus gets the right status over the wire, and the
 * server keeps serving: a memory-bus cursor, a cursor ahead of the newest
 * event, from_seq on a pattern.
 */
import { Code, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, expect, it } from "vitest";
import { EventService } from "../../gen/runnel/v1/event_pb.js";
import { encodeCursor } from "../../src/bus/cursor-codec.js";
import type { RunnelServer } from "../../src/server.js";
import { codeOf, subscribe } from "../harness/lifecycle.js";
import { describeRedis, startRedis, type RedisProcess } from "../harness/redis.js";
import { expectNoStreams, startServer } from "../harness/server.js";

describeRedis("Redis bus: bad requests", () => {
  let redis: RedisProcess;
  let server: RunnelServer;
  let client: Client<typeof EventService>;
  beforeAll(async () => {
    redis = await startRedis();
    server = await startServer({ bus: redis.url });
    client = createClient(EventService, createConnectTransport({ baseUrl: server.url, httpVersion: "2" }));
  });
  afterAll(async () => {
    await server.shutdown(1_000);
    await redis.stop();
  });

  it("InvalidArgument with a message that says what is wrong; then business as usual", async () => {
    const memoryCursor = encodeCursor({ epoch: "0123456789ab", global: 1, seq: 1, topic: "v.t" });
    const head = (await client.publish({ topic: "v.t", data: new Uint8Array([1]) })).cursor;
    const text = Buffer.from(head, "base64url").toString().split(":");
    const ahead = Buffer.from(`${text[0]}:${text[1]}:99999999999999-0:0:`).toString("base64url");
    const cases = [
      { start: { case: "afterCursor" as const, value: memoryCursor }, message: /in-memory bus/ },
      { start: { case: "afterCursor" as const, value: ahead }, message: /ahead of the newest event/ },
    ];
    for (const c of cases) {
      const sub = subscribe(client, { topic: "v.>", start: c.start });
      expect(await codeOf(sub)).toBe(Code.InvalidArgument);
      expect((await sub.done)?.rawMessage).toMatch(c.message);
    }
    const bad = subscribe(client, { topic: "v.>", start: { case: "fromSeq", value: 1n } });
    expect(await codeOf(bad)).toBe(Code.InvalidArgument);
    const ok = subscribe(client, { topic: "v.t", start: { case: "fromSeq", value: 1n } });
    await ok.subscribed;
    await expect.poll(() => ok.events().length).toBe(1);
    ok.abort.abort();
    await ok.done;
    await expectNoStreams(server);
  });
});
