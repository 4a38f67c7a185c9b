/**
 * Several runnel nodes (separate processes, the built CLI) on one real
 * redis-server: publish on A, subscribe on B and C; order, seqs and cursors
 * agree everywhere; a cursor issued by B resumes on C; a pattern on C sees
 * topics first published on A.
 */
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, expect, it } from "vitest";
import { EventService } from "../../gen/runnel/v1/event_pb.js";
import { subscribe, type Subscriber } from "../harness/lifecycle.js";
import { startNode, type NodeProcess } from "../harness/node-process.js";
import { describeRedis, startRedis, type RedisProcess } from "../harness/redis.js";
import { waitFor } from "../harness/server.js";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

describeRedis("three runnel nodes on one Redis", () => {
  let redis: RedisProcess;
  let nodes: NodeProcess[] = [];
  let clients: Client<typeof EventService>[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    nodes = await Promise.all([0, 1, 2].map(() => startNode(["--bus", redis.url])));
    clients = nodes.map((n, i) => createClient(EventService, i === 2 ? createGrpcTransport({ baseUrl: n.url }) : createConnectTransport({ baseUrl: n.url, httpVersion: "2" })));
  });
  afterAll(async () => {
    const codes = await Promise.all(nodes.map((n) => n.stop()));
    expect(codes).toEqual(nodes.map(() => 0));
    await redis?.stop();
  });

  it("publish on A reaches B and C in one order with the same seqs and cursors; C resumes with B's cursor", async () => {
    const [a, b, c] = clients as [Client<typeof EventService>, Client<typeof EventService>, Client<typeof EventService>];
    const onB = subscribe(b, { topic: "orders.>" });
    const onC = subscribe(c, { topic: "orders.*.created" });
    await Promise.all([onB.subscribed, onC.subscribed]);
    const sent: { topic: string; seq: bigint; cursor: string }[] = [];
    for (let i = 0; i < 30; i++) {
      const topic = i % 2 === 0 ? "orders.eu.created" : "orders.us.created";
      // Publish alternately on A and C: seqs come from Redis, not from a node.
      const r = await (i % 3 === 0 ? c : a).publish({ topic, data: enc(`o${i}`) });
      sent.push({ topic, seq: r.seq, cursor: r.cursor });
    }
    expect(sent.filter((s) => s.topic === "orders.eu.created").map((s) => s.seq)).toEqual(Array.from({ length: 15 }, (_, i) => BigInt(i + 1)));
    await waitFor(() => onB.events().length === 30 && onC.events().length === 30, 10_000, "30 events on B and C");
    const view = (s: Subscriber) => s.events().map((e) => ({ topic: e.topic, seq: e.seq, cursor: e.cursor }));
    expect(view(onB)).toEqual(sent);
    expect(view(onC)).toEqual(sent);

    // Resume on C right after B's 10th event: exactly the 20 that follow, nothing twice.
    const resumed = subscribe(c, { topic: "orders.>", start: { case: "afterCursor", value: onB.events()[9]!.cursor } });
    await waitFor(() => resumed.events().length === 20, 10_000, "20 resumed events on C");
    expect(view(resumed)).toEqual(sent.slice(10));

    // A topic first published on A after C subscribed: the pattern on C sees it.
    await a.publish({ topic: "orders.asia.created", data: enc("new") });
    await waitFor(() => onC.events().length === 31, 10_000, "new topic on C");
    expect(onC.events().at(-1)).toMatchObject({ topic: "orders.asia.created", seq: 1n });
    for (const s of [onB, onC, resumed]) s.abort.abort();
    await Promise.all([onB.done, onC.done, resumed.done]);
  });
});
