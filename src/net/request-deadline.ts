/**
 * Slow request bodies (slowloris over HTTP/2): a request whose body has not
 * fully arrived within `--request-timeout-ms` is refused (408 when nothing
 * was answered yet, else the stream is reset). Only the request is timed: a
 * Subscribe whose request is in streams on for as long as it likes. HTTP/1.1
 * gets the same bound from node's own requestTimeout and headersTimeout,
 * armed by `armHttp1Timeouts`.
 */
import type http from "node:http";
import { constants as h2, type Http2ServerRequest, type Http2ServerResponse } from "node:http2";

/** Bound the time an HTTP/2 request body may take to arrive; `onTimeout` is told (metrics). */
export function guardRequestBody(req: Http2ServerRequest, res: Http2ServerResponse, timeoutMs: number, onTimeout: () => void): void {
  if (req.complete || req.readableEnded) return;
  const timer = setTimeout(() => {
    onTimeout();
    if (!res.headersSent && !req.stream.destroyed) {
      res.writeHead(408, { "content-type": "text/plain" });
      res.end("request body too slow\n");
    }
    // Reset the stream whatever was answered: the rest of a slow body is not waited for.
    if (!req.stream.destroyed) req.stream.close(h2.NGHTTP2_CANCEL);
  }, timeoutMs);
  timer.unref();
  const clear = (): void => clearTimeout(timer);
  req.once("end", clear);
  req.once("close", clear);
}

/**
 * node's HTTP/1.1 server enforces headersTimeout and requestTimeout from a
 * connection list it only sets up on 'listening'; runnel's HTTP/1.1 server is
 * fed sockets by the preface router and never listens, so emit it here.
 */
export function armHttp1Timeouts(server: http.Server, headersTimeoutMs: number, requestTimeoutMs: number): void {
  server.headersTimeout = headersTimeoutMs;
  server.requestTimeout = requestTimeoutMs;
  // How often node sweeps for expired requests: a tenth of the shorter bound, 100 ms .. 1 s.
  // (A constructor option in @types/node, but node reads the property when the sweep starts.)
  (server as http.Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval = Math.min(1_000, Math.max(100, Math.floor(Math.min(headersTimeoutMs, requestTimeoutMs) / 10)));
  server.emit("listening");
}
