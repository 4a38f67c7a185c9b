/**
 * CORS for browser clients on another origin (connect-web, gRPC-web): the
 * preflight answer and the headers of the real response, using connect-es's
 * own list of the methods and headers its protocols need. Only origins the
 * operator allowed (`--cors-origin`, repeatable; `*` for any) get them; a
 * request from any other origin is served without CORS headers, so the
 * browser keeps its script from reading the answer.
 */
import { cors } from "@connectrpc/connect";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";

/** How long a browser may cache a preflight answer, seconds. */
const MAX_AGE_SECONDS = 7200;

const ALLOW_METHODS = cors.allowedMethods.join(", ");
const ALLOW_HEADERS = cors.allowedHeaders.join(", ");
const EXPOSE_HEADERS = cors.exposedHeaders.join(", ");

/** Decides and writes the CORS headers of one server. */
export class CorsPolicy {
  private readonly any: boolean;
  private readonly origins: ReadonlySet<string>;

  /** `origins`: exact origins such as https://app.example.com, or `*` for any. */
  constructor(origins: readonly string[]) {
    this.any = origins.includes("*");
    this.origins = new Set(origins.map((o) => o.replace(/\/+$/, "")));
  }

  /** Whether any origin is allowed at all (no flag: CORS stays off). */
  get enabled(): boolean {
    return this.any || this.origins.size > 0;
  }

  private allowed(origin: string | undefined): origin is string {
    return origin !== undefined && (this.any || this.origins.has(origin));
  }

  /**
   * Handle a CORS preflight (OPTIONS with Access-Control-Request-Method).
   * Returns true when the request was one (and is answered), false otherwise.
   */
  preflight(req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse): boolean {
    if (req.method !== "OPTIONS" || req.headers["access-control-request-method"] === undefined) return false;
    const origin = req.headers.origin;
    res.setHeader("vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers");
    if (!this.allowed(origin)) {
      res.writeHead(403, { "content-type": "text/plain" });
      res.end(`origin ${origin ?? "(none)"} is not allowed (runnel serve --cors-origin)\n`);
      return true;
    }
    res.writeHead(204, {
      "access-control-allow-origin": origin,
      "access-control-allow-methods": ALLOW_METHODS,
      "access-control-allow-headers": ALLOW_HEADERS,
      "access-control-max-age": String(MAX_AGE_SECONDS),
    });
    res.end();
    return true;
  }

  /** Add the CORS headers of an actual (non-preflight) response when its origin is allowed. */
  decorate(req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse): void {
    const origin = req.headers.origin;
    if (!this.enabled) return;
    res.setHeader("vary", "Origin");
    if (!this.allowed(origin)) return;
    res.setHeader("access-control-allow-origin", origin);
    res.setHeader("access-control-expose-headers", EXPOSE_HEADERS);
  }
}
