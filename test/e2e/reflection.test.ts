/**
 * gRPC server reflection, read with a real client over the wire: the service
 * list, descriptors with their dependencies that build a working registry,
 * files not repeated on one stream, NOT_FOUND for unknown names, and the
 * v1alpha version older tools ask for.
 */
import { createFileRegistry, fromBinary, type FileRegistry } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { create } from "@bufbuild/protobuf";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunnelServer } from "../../src/server.js";
import { ServerReflection, type ServerReflectionRequest, type ServerReflectionResponse } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionAlpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { closeWaitCount } from "../harness/procfs.js";
import { startServer, waitFor } from "../harness/server.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ServerReflectionRequestSchema } from "../../gen/grpc/reflection/v1/reflection_pb.js";

type RequestInit = MessageInitShape<typeof ServerReflectionRequestSchema>;

describe("server reflection", () => {
  let server: RunnelServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(() => server.shutdown(1_000));

  /** Send `requests` on one bidi stream and collect the answers. */
  async function ask(requests: RequestInit[]): Promise<ServerReflectionResponse[]> {
    const client = createClient(ServerReflection, createGrpcTransport({ baseUrl: server.url }));
    async function* send(): AsyncIterable<RequestInit> {
      yield* requests;
    }
    const out: ServerReflectionResponse[] = [];
    for await (const r of client.serverReflectionInfo(send())) out.push(r);
    return out;
  }

  /** A registry from the descriptors received (like a reflection client: any order in, dependencies first into the set). */
  function registryOf(responses: ServerReflectionResponse[]): FileRegistry {
    const bytes = responses.flatMap((r) => (r.messageResponse.case === "fileDescriptorResponse" ? r.messageResponse.value.fileDescriptorProto : []));
    const byName = new Map(bytes.map((b) => fromBinary(FileDescriptorProtoSchema, b)).map((f) => [f.name, f]));
    const ordered: FileDescriptorProto[] = [];
    const visit = (name: string): void => {
      const f = byName.get(name);
      if (f === undefined || ordered.includes(f)) return;
      f.dependency.forEach(visit);
      ordered.push(f);
    };
    [...byName.keys()].forEach(visit);
    return createFileRegistry(create(FileDescriptorSetSchema, { file: ordered }));
  }

  it("lists every service the server serves", async () => {
    const [r] = await ask([{ messageRequest: { case: "listServices", value: "" } }]);
    expect(r!.messageResponse.case).toBe("listServicesResponse");
    const names = r!.messageResponse.case === "listServicesResponse" ? r!.messageResponse.value.service.map((s) => s.name) : [];
    expect(names).toEqual([
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
      "runnel.v1.AdminService",
      "runnel.v1.EventService",
      "runnel.v1.TailService",
    ]);
  });

  it("a symbol's file comes with its dependencies and builds a registry; files are not repeated on one stream", async () => {
    const responses = await ask([
      { messageRequest: { case: "fileContainingSymbol", value: "runnel.v1.EventService.Subscribe" } },
      { messageRequest: { case: "fileContainingSymbol", value: "runnel.v1.SubscribeResponse" } },
      { messageRequest: { case: "fileByFilename", value: "runnel/v1/admin.proto" } },
    ]);
    const names = responses.map((r) =>
      r.messageResponse.case === "fileDescriptorResponse" ? r.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b).name) : [r.messageResponse.case],
    );
    expect(names[0]).toContain("runnel/v1/event.proto");
    expect(names[0]).toContain("google/protobuf/timestamp.proto");
    expect(names[1]).toEqual([]); // already sent on this stream
    expect(names[2]).toEqual(["runnel/v1/admin.proto"]);
    const registry = registryOf(responses);
    const subscribe = registry.getService("runnel.v1.EventService")?.methods.find((m) => m.name === "Subscribe");
    expect(subscribe?.methodKind).toBe("server_streaming");
    expect(subscribe?.output.typeName).toBe("runnel.v1.SubscribeResponse");
    expect(registry.getMessage("runnel.v1.Event")?.fields.map((f) => f.name)).toContain("cursor");
  });

  it("unknown names are NOT_FOUND answers on a stream that keeps serving", async () => {
    const responses = await ask([
      { messageRequest: { case: "fileContainingSymbol", value: "no.such.Thing" } },
      { messageRequest: { case: "fileByFilename", value: "nope.proto" } },
      { messageRequest: { case: "listServices", value: "" } },
    ]);
    const kinds = responses.map((r) => (r.messageResponse.case === "errorResponse" ? r.messageResponse.value.errorCode : r.messageResponse.case));
    expect(kinds).toEqual([Code.NotFound, Code.NotFound, "listServicesResponse"]);
    const original = responses[0]!.originalRequest as ServerReflectionRequest;
    expect(original.messageRequest).toEqual({ case: "fileContainingSymbol", value: "no.such.Thing" });
  });

  it("v1alpha answers the same", async () => {
    const client = createClient(ServerReflectionAlpha, createGrpcTransport({ baseUrl: server.url }));
    async function* send() {
      yield { messageRequest: { case: "fileContainingSymbol" as const, value: "grpc.health.v1.Health" } };
    }
    const out = [];
    for await (const r of client.serverReflectionInfo(send())) out.push(r);
    expect(out).toHaveLength(1);
    const files = out[0]!.messageResponse.case === "fileDescriptorResponse" ? out[0]!.messageResponse.value.fileDescriptorProto : [];
    expect(files.map((b) => fromBinary(FileDescriptorProtoSchema, b).name)).toEqual(["grpc/health/v1/health.proto"]);
  });

  it("a reflection stream the client abandons mid-way leaves no CLOSE_WAIT socket, and the server keeps answering", async () => {
    const client = createClient(ServerReflection, createGrpcTransport({ baseUrl: server.url }));
    const abort = new AbortController();
    let release!: () => void;
    const blocked = new Promise<void>((r) => (release = r));
    async function* send(): AsyncIterable<RequestInit> {
      yield { messageRequest: { case: "listServices", value: "" } };
      await blocked; // the client never half-closes
    }
    const got: string[] = [];
    const done = (async () => {
      try {
        for await (const r of client.serverReflectionInfo(send(), { signal: abort.signal })) {
          got.push(r.messageResponse.case ?? "");
          abort.abort();
        }
      } catch {
        // cancelled by us
      }
    })();
    await done;
    release();
    expect(got).toEqual(["listServicesResponse"]);
    await waitFor(() => closeWaitCount(server.port) === 0, 5_000, "no CLOSE_WAIT");
    await waitFor(async () => (await ask([{ messageRequest: { case: "listServices", value: "" } }])).length === 1, 5_000, "server still answers");
  });
});
