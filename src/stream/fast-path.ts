/**
 * The lean write path: a server-streaming method served by runnel's own
 * protocol handlers (Connect, gRPC, gRPC-web; binary and JSON) instead of
 * connect-es's per-message pipeline. connect-es's own pieces still pick the
 * protocol by content type and read the request; what changes is the body:
 * every message is framed once (frames of shared messages are cached and
 * their bytes shared by all streams of the same encoding) and a stream's
 * queued messages go out as one chunk per batch, with no async-generator hop
 * per message.
 *
 * The request side (content type, method, timeout, compression of the
 * request, reading exactly one request message) reuses connect-es's own
 * pieces, so errors look exactly as connect-es would send them. Responses are
 * never compressed: a client that accepts gzip may always be answered
 * uncompressed (no `grpc-encoding` / `connect-content-encoding` header).
 */
import type { DescMessage, DescMethodServerStreaming, MessageShape } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createHandlerContext,
  createMethodImplSpec,
  type HandlerContext,
} from "@connectrpc/connect";
import {
  assertByteStreamRequest,
  compressionNegotiate,
  contentTypeMatcher,
  createMethodSerializationLookup,
  createMethodUrl,
  createUniversalMethodHandler,
  encodeEnvelope,
  pipe,
  transformDecompressEnvelope,
  transformParseEnvelope,
  transformSplitEnvelope,
  uResponseMethodNotAllowed,
  uResponseOk,
  uResponseUnsupportedMediaType,
  validateUniversalHandlerOptions,
  type ProtocolHandlerFactory,
  type Serialization,
  type UniversalHandler,
  type UniversalHandlerOptions,
  type UniversalServerRequest,
  type UniversalServerResponse,
} from "@connectrpc/connect/protocol";
import * as connectWire from "@connectrpc/connect/protocol-connect";
import * as grpcWire from "@connectrpc/connect/protocol-grpc";
import * as grpcWebWire from "@connectrpc/connect/protocol-grpc-web";
import type { FramedOutput } from "./live-stream.js";

/** A call's context with the abort connect-es's handlers use to end it. */
type CallContext = ReturnType<typeof createHandlerContext>;

/** Opens the framed stream of one call; see `openFramedStream`. */
export type OpenFramed<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  ctx: HandlerContext,
  output: FramedOutput<MessageShape<O>>,
) => AsyncGenerator<Uint8Array>;

/** connect-es options the fast path honours (the ones `connectNodeAdapter` was given), and what stands in for interceptors. */
export type FastPathOptions = Partial<Pick<UniversalHandlerOptions, "acceptCompression" | "readMaxBytes" | "maxTimeoutMs" | "jsonOptions" | "binaryOptions" | "shutdownSignal">> & {
  /**
   * Runs once the request is read, before the stream opens; a rejection ends the call with its error.
   * connect-es's interceptors never see a call served here, so whatever they do (auth) must be done here too.
   */
  readonly admit?: (ctx: HandlerContext) => Promise<void>;
};

/**
 * A universal handler for `method` over every protocol (picked by content
 * type, as connect-es's router does). Serve it on the method's path with
 * `fastRoute` (fast-writer.ts), in front of connect-es's node adapter.
 */
export function createFastStreamHandler<I extends DescMessage, O extends DescMessage>(
  method: DescMethodServerStreaming<I, O>,
  open: OpenFramed<I, O>,
  options: FastPathOptions = {},
): UniversalHandler {
  const opt = validateUniversalHandlerOptions(options);
  const serialization = createMethodSerializationLookup(method, opt.binaryOptions, opt.jsonOptions, opt);
  const frames = { binary: new FrameCache(serialization.getO(true)), json: new FrameCache(serialization.getO(false)) };
  const endStream = connectWire.createEndStreamSerialization(opt.jsonOptions);
  const trailers = grpcWebWire.createTrailerSerialization();
  const protocols: Protocol[] = [
    {
      name: "connect",
      contentType: connectWire.contentTypeRegExp,
      parse(value) {
        const type = connectWire.parseContentType(value);
        return type === undefined || !type.stream ? undefined : type;
      },
      responseType: (binary) => (binary ? connectWire.contentTypeStreamProto : connectWire.contentTypeStreamJson),
      headers: { timeout: connectWire.headerTimeout, encoding: connectWire.headerStreamEncoding, acceptEncoding: connectWire.headerStreamAcceptEncoding },
      endFlag: connectWire.endStreamFlag,
      initialTrailer: undefined,
      end: (ctx, error) => encodeEnvelope(connectWire.endStreamFlag, endStream.serialize({ metadata: ctx.responseTrailer, error })),
      trailersInHttp: false,
    },
    {
      name: "grpc",
      contentType: grpcWire.contentTypeRegExp,
      parse: (value) => grpcWire.parseContentType(value),
      responseType: (binary) => (binary ? grpcWire.contentTypeProto : grpcWire.contentTypeJson),
      headers: { timeout: grpcWire.headerTimeout, encoding: grpcWire.headerEncoding, acceptEncoding: grpcWire.headerAcceptEncoding },
      endFlag: undefined,
      initialTrailer: { [grpcWire.headerGrpcStatus]: grpcWire.grpcStatusOk },
      end(ctx, error) {
        if (error !== undefined) grpcWire.setTrailerStatus(ctx.responseTrailer, error);
        return undefined;
      },
      trailersInHttp: true,
    },
    {
      name: "grpc-web",
      contentType: grpcWebWire.contentTypeRegExp,
      parse(value) {
        const type = grpcWebWire.parseContentType(value);
        return type === undefined || type.text ? undefined : type;
      },
      responseType: (binary) => (binary ? grpcWebWire.contentTypeProto : grpcWebWire.contentTypeJson),
      headers: { timeout: grpcWebWire.headerTimeout, encoding: grpcWebWire.headerEncoding, acceptEncoding: grpcWebWire.headerAcceptEncoding },
      endFlag: grpcWebWire.trailerFlag,
      initialTrailer: { [grpcWebWire.headerGrpcStatus]: grpcWebWire.grpcStatusOk },
      end(ctx, error) {
        if (error !== undefined) grpcWebWire.setTrailerStatus(ctx.responseTrailer, error);
        return encodeEnvelope(grpcWebWire.trailerFlag, trailers.serialize(ctx.responseTrailer));
      },
      trailersInHttp: false,
    },
  ];
  const factories = protocols.map((protocol) => {
    const factory = (): UniversalHandler =>
      Object.assign(
        (req: UniversalServerRequest) => handle(protocol, req),
        {
          protocolNames: [protocol.name],
          allowedMethods: ["POST"],
          supportedContentType: contentTypeMatcher(protocol.contentType),
          requestPath: createMethodUrl("/", method),
          service: method.parent,
          method,
        },
      );
    return Object.assign(factory, { protocolName: protocol.name }) satisfies ProtocolHandlerFactory;
  });
  // The spec's implementation is never called: the handlers above open the stream themselves.
  const spec = createMethodImplSpec(method, () => {
    throw new ConnectError("fast path implementation called", Code.Internal);
  });
  return createUniversalMethodHandler(spec, factories);

  async function handle(protocol: Protocol, req: UniversalServerRequest): Promise<UniversalServerResponse> {
    assertByteStreamRequest(req);
    const type = protocol.parse(req.header.get("content-type"));
    if (type === undefined) return uResponseUnsupportedMediaType;
    if (req.method !== "POST") return uResponseMethodNotAllowed;
    const timeout = protocol.name === "connect"
      ? connectWire.parseTimeout(req.header.get(protocol.headers.timeout), opt.maxTimeoutMs)
      : grpcWire.parseTimeout(req.header.get(protocol.headers.timeout), opt.maxTimeoutMs);
    const ctx = createHandlerContext({
      method,
      service: method.parent,
      requestMethod: req.method,
      protocolName: protocol.name,
      timeoutMs: timeout.timeoutMs,
      shutdownSignal: opt.shutdownSignal,
      requestSignal: req.signal,
      requestHeader: req.header,
      url: req.url,
      responseHeader: { "content-type": protocol.responseType(type.binary) },
      responseTrailer: protocol.initialTrailer,
      contextValues: req.contextValues,
    });
    const output = new ProtocolOutput<MessageShape<O>>(protocol, ctx, type.binary ? frames.binary : frames.json);
    let body: AsyncGenerator<Uint8Array>;
    try {
      const compression = compressionNegotiate(
        opt.acceptCompression,
        req.header.get(protocol.headers.encoding),
        req.header.get(protocol.headers.acceptEncoding),
        protocol.headers.acceptEncoding,
      );
      if (compression.error) throw compression.error;
      if (timeout.error) throw timeout.error;
      const input = pipe(
        req.body,
        transformSplitEnvelope(opt.readMaxBytes),
        transformDecompressEnvelope(compression.request, opt.readMaxBytes),
        protocol.endFlag === undefined
          ? transformParseEnvelope(serialization.getI(type.binary))
          : transformParseEnvelope(serialization.getI(type.binary), protocol.endFlag),
      );
      const request = await readSingle(input);
      if (options.admit !== undefined) await options.admit(ctx);
      body = open(request, ctx, output);
    } catch (e) {
      body = endOnly(output, e);
    }
    const first = await body.next();
    return {
      ...uResponseOk,
      header: ctx.responseHeader,
      ...(protocol.trailersInHttp ? { trailer: ctx.responseTrailer } : {}),
      body: new PrefetchedBody(first, body, ctx),
    };
  }
}

/** What differs between the three protocols, for a server stream. */
interface Protocol {
  readonly name: "connect" | "grpc" | "grpc-web";
  readonly contentType: RegExp;
  parse(value: string | null): { binary: boolean } | undefined;
  responseType(binary: boolean): string;
  readonly headers: { readonly timeout: string; readonly encoding: string; readonly acceptEncoding: string };
  /** The flag of the protocol's end frame in requests (connect: end-stream; grpc-web: trailer). */
  readonly endFlag: number | undefined;
  readonly initialTrailer: Record<string, string> | undefined;
  /** The last frame for an end with `error` (undefined: OK); sets trailers where the protocol has them. */
  end(ctx: HandlerContext, error: ConnectError | undefined): Uint8Array | undefined;
  /** gRPC ends in HTTP trailers, the others in a last frame of the body. */
  readonly trailersInHttp: boolean;
}

/** Enveloped frames of messages, made once per message object and shared (event messages are shared by all their subscribers). */
class FrameCache<M extends object> {
  private readonly frames = new WeakMap<M, Uint8Array>();

  constructor(private readonly serialization: Serialization<M>) {}

  frame(message: M): Uint8Array {
    let frame = this.frames.get(message);
    if (frame === undefined) {
      frame = encodeEnvelope(0, this.serialization.serialize(message));
      this.frames.set(message, frame);
    }
    return frame;
  }
}

/** One stream's FramedOutput: the shared frame cache and its own end. A class: one small object per stream. */
class ProtocolOutput<M extends object> implements FramedOutput<M> {
  constructor(
    private readonly protocol: Protocol,
    private readonly ctx: HandlerContext,
    private readonly cache: FrameCache<M>,
  ) {}

  frame(message: M): Uint8Array {
    return this.cache.frame(message);
  }

  end(error: ConnectError | undefined): Uint8Array | undefined {
    return this.protocol.end(this.ctx, error);
  }
}

/**
 * The response body: the first chunk was taken before the response headers
 * were committed (so an error before the first message still lands in the
 * headers or trailers), the rest comes straight from the stream's generator
 * without another async wrapper. Ending the body ends the call's context
 * (its deadline timer), as connect-es does.
 */
class PrefetchedBody implements AsyncIterableIterator<Uint8Array> {
  constructor(
    private first: IteratorResult<Uint8Array> | undefined,
    private readonly body: AsyncGenerator<Uint8Array>,
    private readonly ctx: CallContext,
  ) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<Uint8Array>> {
    const first = this.first;
    if (first !== undefined) {
      this.first = undefined;
      return Promise.resolve(first);
    }
    return this.body.next();
  }

  return(value?: unknown): Promise<IteratorResult<Uint8Array>> {
    this.ctx.abort();
    return this.body.return(value);
  }

  throw(e?: unknown): Promise<IteratorResult<Uint8Array>> {
    this.ctx.abort(e);
    return this.body.throw(e);
  }
}

/** The body of a call that failed before its stream opened: the protocol's end frame only. */
async function* endOnly<M extends object>(output: ProtocolOutput<M>, e: unknown): AsyncGenerator<Uint8Array> {
  const error = e instanceof ConnectError ? e : new ConnectError("internal error", Code.Internal, undefined, undefined, e);
  const last = output.end(error);
  if (last !== undefined) yield last;
}

/** Exactly one request message, as connect-es requires of a server-streaming call. */
async function readSingle<M>(input: AsyncIterable<M>): Promise<M> {
  const it = input[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done === true) {
    throw new ConnectError("protocol error: missing input message for server-streaming method", Code.Unimplemented);
  }
  const second = await it.next();
  if (second.done !== true) {
    throw new ConnectError("protocol error: received extra input message for server-streaming method", Code.Unimplemented);
  }
  return first.value;
}
