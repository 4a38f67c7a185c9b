/**
 * A gRPC client from outside the connect-es world: @grpc/grpc-js with the
 * service loaded at run time from the .proto files (@grpc/proto-loader), no
 * generated code of ours. It publishes, subscribes, receives, cancels, and
 * the server releases the stream; it also checks health the standard way.
 */
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunnelServer } from "../../src/server.js";
import { ROOT } from "../harness/built.js";
import { expectCleanEnd, snapshot } from "../harness/lifecycle.js";
import { startServer, waitFor } from "../harness/server.js";

const PROTO_DIR = join(ROOT, "proto");

/** Load services from .proto files the way a grpc-js user does. */
function load(file: string): grpc.GrpcObject {
  const definition = protoLoader.loadSync(file, { includeDirs: [PROTO_DIR], longs: String, enums: String, defaults: true, oneofs: true, bytes: Buffer });
  return grpc.loadPackageDefinition(definition);
}

type ServiceCtor = grpc.ServiceClientConstructor;
const service = (root: grpc.GrpcObject, path: string): ServiceCtor => path.split(".").reduce((o: unknown, k) => (o as Record<string, unknown>)[k], root) as ServiceCtor;

/** A unary call as a promise. */
function unary<T>(client: grpc.Client, method: string, request: object): Promise<T> {
  return new Promise((resolve, reject) => {
    (client as unknown as Record<string, (r: object, cb: (e: grpc.ServiceError | null, v: T) => void) => void>)[method]!(request, (e, v) => (e ? reject(e) : resolve(v)));
  });
}

interface SubscribeMessage {
  kind: "subscribed" | "event" | "heartbeat" | "gap" | "closing";
  subscribed?: { subscriptionId: string };
  event?: { topic: string; seq: string; data: Buffer; cursor: string };
}

describe("@grpc/grpc-js with dynamically loaded protos", () => {
  let server: RunnelServer;
  let events: grpc.Client;
  let health: grpc.Client;
  beforeAll(async () => {
    server = await startServer({ heartbeatMs: 60_000 });
    const address = server.url.replace(/^http:\/\//, "");
    const EventService = service(load("runnel/v1/event.proto"), "runnel.v1.EventService");
    const Health = service(load("grpc/health/v1/health.proto"), "grpc.health.v1.Health");
    events = new EventService(address, grpc.credentials.createInsecure());
    health = new Health(address, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    events?.close();
    health?.close();
    await server.shutdown(1_000);
  });

  it("health Check is SERVING", async () => {
    expect(await unary(health, "Check", { service: "runnel.v1.EventService" })).toEqual({ status: "SERVING" });
    const error = await unary(health, "Check", { service: "nope" }).catch((e: grpc.ServiceError) => e);
    expect((error as grpc.ServiceError).code).toBe(grpc.status.NOT_FOUND);
  });

  it("subscribes, receives what is published, cancels; the server releases the stream", async () => {
    const before = snapshot(server);
    const call = (events as unknown as { Subscribe(r: object): grpc.ClientReadableStream<SubscribeMessage> }).Subscribe({ topic: "grpcjs.>" });
    const received: SubscribeMessage[] = [];
    call.on("data", (m: SubscribeMessage) => received.push(m));
    const ended = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
    call.on("error", () => undefined); // the cancel below surfaces as CANCELLED, asserted through "status"

    await waitFor(() => received.length === 1, 10_000, "Subscribed");
    expect(received[0]!.kind).toBe("subscribed");
    expect(server.ledger.list()[0]).toMatchObject({ protocol: "grpc h2", topic: "grpcjs.>" });

    const published = await unary<{ seq: string; cursor: string }>(events, "Publish", { topic: "grpcjs.a", data: Buffer.from("from grpc-js"), headers: { k: "v" } });
    expect(published.seq).toBe("1");
    await waitFor(() => received.length === 2, 10_000, "the event");
    expect(received[1]!.kind).toBe("event");
    expect(received[1]!.event).toMatchObject({ topic: "grpcjs.a", seq: "1", cursor: published.cursor });
    expect(received[1]!.event!.data.toString()).toBe("from grpc-js");

    call.cancel();
    expect((await ended).code).toBe(grpc.status.CANCELLED);
    await expectCleanEnd(server, before, { cause: "canceled" });
  });

  it("a bad pattern is INVALID_ARGUMENT with the server's message", async () => {
    const call = (events as unknown as { Subscribe(r: object): grpc.ClientReadableStream<SubscribeMessage> }).Subscribe({ topic: "a.>.b" });
    const status = await new Promise<grpc.StatusObject>((resolve) => {
      call.on("status", resolve);
      call.on("error", () => undefined);
      call.on("data", () => undefined);
    });
    expect(status.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(status.details).toMatch(/">" may only be the last token/);
    await waitFor(() => server.ledger.size === 0, 5_000, "ledger empty");
  });
});
