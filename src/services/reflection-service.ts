/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha), answered from the
 * descriptors protobuf-es generated into gen/, so `buf curl` and grpcurl work
 * without being given the schema. Both versions share one implementation:
 * their messages have the same shape under different package names.
 */
import { create, toBinary, type DescFile, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, type ServiceImpl } from "@connectrpc/connect";
import {
  ServerReflection as ServerReflectionV1,
  ServerReflectionResponseSchema as ResponseV1,
  type ServerReflectionRequest as RequestV1,
} from "../../gen/grpc/reflection/v1/reflection_pb.js";
import {
  ServerReflection as ServerReflectionV1Alpha,
  ServerReflectionResponseSchema as ResponseV1Alpha,
  type ServerReflectionRequest as RequestV1Alpha,
} from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";

/** Both reflection services, for registration and for listing. */
export const REFLECTION_SERVICES = [ServerReflectionV1, ServerReflectionV1Alpha] as const;

/** What the files of a set of services can answer: file by name, file by symbol, service names. */
export class DescriptorIndex {
  private readonly files = new Map<string, DescFile>();
  private readonly symbols = new Map<string, DescFile>();
  readonly serviceNames: readonly string[];

  constructor(services: readonly DescService[]) {
    const names = new Set<string>();
    for (const service of services) {
      names.add(service.typeName);
      this.addFile(service.file);
    }
    this.serviceNames = [...names].sort();
  }

  private addFile(file: DescFile): void {
    if (this.files.has(file.proto.name)) return;
    this.files.set(file.proto.name, file);
    for (const dep of file.dependencies) this.addFile(dep);
    const pkg = file.proto.package === "" ? "" : `${file.proto.package}.`;
    for (const service of file.services) {
      this.symbols.set(service.typeName, file);
      for (const method of service.methods) this.symbols.set(`${service.typeName}.${method.name}`, file);
    }
    const addMessages = (messages: DescFile["messages"]): void => {
      for (const m of messages) {
        this.symbols.set(m.typeName, file);
        for (const f of m.fields) this.symbols.set(`${m.typeName}.${f.name}`, file);
        for (const e of m.nestedEnums) this.symbols.set(e.typeName, file);
        addMessages(m.nestedMessages);
      }
    };
    addMessages(file.messages);
    for (const e of file.enums) {
      this.symbols.set(e.typeName, file);
      for (const v of e.values) this.symbols.set(`${pkg}${v.name}`, file);
    }
    for (const x of file.extensions) this.symbols.set(x.typeName, file);
  }

  /** The file named `name` (for example "runnel/v1/event.proto"). */
  fileByName(name: string): DescFile | undefined {
    return this.files.get(name);
  }

  /** The file declaring a fully-qualified symbol (package.Service, package.Service.Method, package.Message...). */
  fileBySymbol(symbol: string): DescFile | undefined {
    return this.symbols.get(symbol.startsWith(".") ? symbol.slice(1) : symbol);
  }

  /**
   * `file` and its transitive dependencies, serialized, leaving out those in
   * `sent` (the protocol lets a server skip files it sent earlier on the same
   * stream); `sent` is updated.
   */
  serialize(file: DescFile, sent: Set<string>): Uint8Array[] {
    const out: Uint8Array[] = [];
    const visit = (f: DescFile): void => {
      if (sent.has(f.proto.name)) return;
      sent.add(f.proto.name);
      out.push(toBinary(FileDescriptorProtoSchema, f.proto));
      for (const dep of f.dependencies) visit(dep);
    };
    visit(file);
    return out;
  }
}

/** A reflection request of either version (same fields, different package). */
type AnyRequest = RequestV1 | RequestV1Alpha;

/** The answer to one request, as init for either version's response message. */
function answer(index: DescriptorIndex, req: AnyRequest, sent: Set<string>) {
  const r = req.messageRequest;
  const originalRequest = {
    host: req.host,
    messageRequest:
      r.case === "fileContainingExtension"
        ? { case: r.case, value: { containingType: r.value.containingType, extensionNumber: r.value.extensionNumber } }
        : r,
  };
  const base = { validHost: req.host, originalRequest };
  const notFound = (what: string) => ({ ...base, messageResponse: { case: "errorResponse" as const, value: { errorCode: Code.NotFound, errorMessage: what } } });
  const files = (file: DescFile | undefined, what: string) =>
    file === undefined
      ? notFound(what)
      : { ...base, messageResponse: { case: "fileDescriptorResponse" as const, value: { fileDescriptorProto: index.serialize(file, sent) } } };
  switch (r.case) {
    case "listServices":
      return { ...base, messageResponse: { case: "listServicesResponse" as const, value: { service: index.serviceNames.map((name) => ({ name })) } } };
    case "fileByFilename":
      return files(index.fileByName(r.value), `file not found: ${r.value}`);
    case "fileContainingSymbol":
      return files(index.fileBySymbol(r.value), `symbol not found: ${r.value}`);
    case "fileContainingExtension":
      return notFound(`extension not found: ${r.value.containingType} ${r.value.extensionNumber}`);
    case "allExtensionNumbersOfType": {
      // runnel's protos declare no extensions: a known message type has none, an unknown one is not found.
      if (index.fileBySymbol(r.value) === undefined) return notFound(`type not found: ${r.value}`);
      return { ...base, messageResponse: { case: "allExtensionNumbersResponse" as const, value: { baseTypeName: r.value, extensionNumber: [] } } };
    }
    default:
      return { ...base, messageResponse: { case: "errorResponse" as const, value: { errorCode: Code.InvalidArgument, errorMessage: "no request set" } } };
  }
}

/** grpc.reflection.v1.ServerReflection answering from `index` (the services the server serves). */
export function createReflectionV1(index: DescriptorIndex): ServiceImpl<typeof ServerReflectionV1> {
  return {
    async *serverReflectionInfo(requests) {
      // Each request is answered at once; the loop ends when the client half-closes or leaves
      // (connect-es ends the request iterable on abort), so this stream holds nothing past its client.
      const sent = new Set<string>();
      for await (const req of requests) yield create(ResponseV1, answer(index, req, sent));
    },
  };
}

/** grpc.reflection.v1alpha.ServerReflection, the version older clients ask for. */
export function createReflectionV1Alpha(index: DescriptorIndex): ServiceImpl<typeof ServerReflectionV1Alpha> {
  return {
    async *serverReflectionInfo(requests) {
      const sent = new Set<string>();
      for await (const req of requests) yield create(ResponseV1Alpha, answer(index, req, sent));
    },
  };
}
