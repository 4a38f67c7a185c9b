/**
 * Writes a universal response to a Node response for the lean write path:
 * what connect-node's `universalResponseToNodeResponse` does, without its
 * per-chunk promise and four listener calls. A chunk is written with one
 * `write()`; only when the stream's buffer is full does the writer wait,
 * for `drain` or the end of the exchange (never longer: a closed exchange
 * settles the wait, and the stream's own abort ends the body).
 */
import { universalRequestFromNodeRequest } from "@connectrpc/connect-node";
import type { ContextValues } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerResponse } from "@connectrpc/connect/protocol";
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";

type NodeRequest = IncomingMessage | Http2ServerRequest;
type NodeResponse = ServerResponse | Http2ServerResponse;

/** A Node request handler for one route served by a fast-path universal handler. */
export function fastRoute(
  handler: UniversalHandler,
  contextValues: (req: NodeRequest) => ContextValues,
  onError: (error: unknown) => void,
): (req: NodeRequest, res: NodeResponse) => void {
  return (req, res) => {
    const uReq = universalRequestFromNodeRequest(req, res, undefined, contextValues(req));
    handler(uReq)
      .then((uRes) => writeResponse(uRes, res))
      .catch(onError);
  };
}

const noop = (): void => undefined;

/** Write status, headers, body chunks and trailers; end the response. */
export async function writeResponse(uRes: UniversalServerResponse, res: NodeResponse): Promise<void> {
  const it = uRes.body === undefined ? undefined : (uRes.body as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
  try {
    if (it !== undefined) {
      let chunk = await it.next();
      res.writeHead(uRes.status, nodeHeaders(uRes.header));
      for (; chunk.done !== true; chunk = await it.next()) {
        if (isGone(res)) {
          // The client left: let the request's own close handlers (which tell the stream how it
          // ended: cancel, disconnect...) run before the body is returned.
          await new Promise((resolve) => setImmediate(resolve));
          return;
        }
        if (!(res as ServerResponse).write(chunk.value)) await drained(res);
      }
    }
    if (isGone(res)) return;
    if (!res.headersSent) res.writeHead(uRes.status, nodeHeaders(uRes.header));
    if (uRes.trailer !== undefined) res.addTrailers(nodeHeaders(uRes.trailer) as Record<string, string>);
    res.end();
  } catch (e) {
    await it?.throw?.(e).catch(noop);
  } finally {
    await it?.return?.().catch(noop);
  }
}

/** True once the exchange under the response is closed. */
function isGone(res: NodeResponse): boolean {
  return "stream" in res ? res.stream.destroyed || res.stream.closed : res.destroyed || res.writableEnded;
}

/** Resolves when the response can take more, or is gone. */
function drained(res: NodeResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off("drain", done);
      res.off("close", done);
      res.off("error", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
    res.on("error", done);
  });
}

function nodeHeaders(headers: ConstructorParameters<typeof Headers>[0]): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  if (headers === undefined) return out;
  (headers instanceof Headers ? headers : new Headers(headers)).forEach((value, key) => {
    out[key] = value;
  });
  return out;
}
