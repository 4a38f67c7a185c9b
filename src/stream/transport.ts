/**
 * The raw HTTP exchange under a Connect handler. connect-es hides it, but a
 * stream that must end while its peer is stalled needs to cut the exchange
 * itself (a write parked on a full socket never settles otherwise), and the
 * ledger wants the peer and the protocol. The server puts it in the handler
 * context under `transportKey`.
 */
import { createContextKey, type ContextKey, type ContextValues } from "@connectrpc/connect";
import type { IncomingMessage } from "node:http";
import { constants as h2, type Http2ServerRequest, type Http2Session } from "node:http2";

/** The exchange of one request. */
export interface Transport {
  /** For example "connect h2", "grpc-web http/1.1". */
  readonly protocol: string;
  /** "address:port" of the peer. */
  readonly peer: string;
  /** True once keepalive found the peer's connection dead. */
  peerDead(): boolean;
  /** Cut the exchange (RST_STREAM on HTTP/2, socket close on HTTP/1.1). Idempotent. */
  destroy(): void;
  /** True when the exchange is already closed. */
  isClosed(): boolean;
  /**
   * True once the connection under the exchange is gone (socket closed, or the
   * HTTP/2 session destroyed), as opposed to only this exchange being
   * cancelled while its connection lives on. Optional for embedders.
   */
  connectionLost?(): boolean;
}

/** Context key under which the server publishes the Transport of a request. */
export const transportKey = createContextKey<Transport | undefined>(undefined, {
  description: "runnel transport",
});

/** The wire protocol a request speaks, from its content type. */
export function protocolOf(contentType: string | undefined, httpVersion: string): string {
  const ct = contentType ?? "";
  const wire = ct.startsWith("application/grpc-web")
    ? "grpc-web"
    : ct.startsWith("application/grpc")
      ? "grpc"
      : "connect";
  return `${wire} ${httpVersion.startsWith("2") ? "h2" : "http/1.1"}`;
}

/**
 * The Transport of a Node request/response pair. A class, not closures: one
 * small object per request, with peer and protocol worked out only when asked.
 */
export class NodeTransport implements Transport {
  // Captured now: a destroyed stream may no longer know its session.
  private readonly session: Http2Session | undefined;
  private peerText: string | undefined;

  constructor(
    private readonly req: IncomingMessage | Http2ServerRequest,
    /** Whether keepalive condemned an HTTP/2 session (shared, not per request). */
    private readonly isDeadSession: (session: Http2Session | undefined) => boolean,
  ) {
    this.session = "stream" in req ? req.stream.session : undefined;
  }

  get protocol(): string {
    return protocolOf(this.req.headers["content-type"], this.req.httpVersion);
  }

  get peer(): string {
    const socket = this.req.socket;
    return (this.peerText ??= `${socket.remoteAddress ?? "?"}:${socket.remotePort ?? "?"}`);
  }

  peerDead(): boolean {
    return this.isDeadSession(this.session);
  }

  destroy(): void {
    const req = this.req;
    if ("stream" in req) {
      if (!req.stream.closed && !req.stream.destroyed) req.stream.close(h2.NGHTTP2_CANCEL);
    } else if (!req.socket.destroyed) {
      // An HTTP/1.1 exchange owns its connection while it streams: cutting it means closing the socket.
      req.socket.destroy();
    }
  }

  isClosed(): boolean {
    const req = this.req;
    return "stream" in req ? req.stream.closed || req.stream.destroyed : req.socket.destroyed;
  }

  connectionLost(): boolean {
    // (On HTTP/2, req.socket is a proxy over the stream, not the connection: ask the session.)
    return this.session !== undefined ? this.session.destroyed : this.req.socket.destroyed;
  }
}

/**
 * ContextValues for a request that carries its Transport. connect-es's own
 * createContextValues() builds three closures per call; this is one small
 * object per request with its methods on the prototype.
 */
export class RequestValues implements ContextValues {
  private extra: Map<symbol, unknown> | undefined;

  constructor(private transport: Transport | undefined) {}

  get<V>(key: ContextKey<V>): V {
    if (key === (transportKey as ContextKey<unknown>)) return (this.transport ?? key.defaultValue) as V;
    return this.extra?.has(key.id) === true ? (this.extra.get(key.id) as V) : key.defaultValue;
  }

  set<V>(key: ContextKey<V>, value: V): this {
    if (key === (transportKey as ContextKey<unknown>)) this.transport = value as Transport | undefined;
    else (this.extra ??= new Map()).set(key.id, value);
    return this;
  }

  delete(key: ContextKey<unknown>): this {
    if (key === (transportKey as ContextKey<unknown>)) this.transport = undefined;
    else this.extra?.delete(key.id);
    return this;
  }
}
