/**
 * The live page's static files (index.html and the bundle esbuild builds into
 * dist/page/ during `npm run build`), served by runnel itself at GET / so a
 * browser needs nothing but the server. Files are read once and kept in
 * memory; only the files the build produces are ever served.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { createHash } from "node:crypto";

/** URL path -> file in dist/page and its content type. */
const FILES: Record<string, { file: string; type: string }> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/index.html": { file: "index.html", type: "text/html; charset=utf-8" },
  "/app.js": { file: "app.js", type: "text/javascript; charset=utf-8" },
  "/app.css": { file: "app.css", type: "text/css; charset=utf-8" },
};

interface Loaded {
  readonly body: Buffer;
  readonly type: string;
  readonly etag: string;
}

/** The package root: the nearest directory above this module that holds package.json (works from src/ and dist/src/). */
function packageRoot(from: string): string {
  let dir = from;
  while (!existsSync(join(dir, "package.json"))) {
    const up = dirname(dir);
    if (up === dir) return from;
    dir = up;
  }
  return dir;
}

/** Where the built page lives. */
export const PAGE_DIR = join(packageRoot(import.meta.dirname), "dist", "page");

/** Serves the page's files from `dir`. */
export class PageFiles {
  private readonly cache = new Map<string, Loaded>();

  constructor(private readonly dir: string = PAGE_DIR) {}

  /** Whether `path` is one of the page's URLs. */
  handles(method: string | undefined, path: string): boolean {
    return (method === "GET" || method === "HEAD") && path in FILES;
  }

  /** Answer a request for one of the page's URLs. */
  serve(req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse, path: string): void {
    const loaded = this.load(path);
    if (loaded === undefined) {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("the live page is not built: run `npm run build`\n");
      return;
    }
    const headers = {
      "content-type": loaded.type,
      etag: loaded.etag,
      "cache-control": "no-cache",
      "x-content-type-options": "nosniff",
      // Everything the page loads comes from this server; nothing inline runs.
      "content-security-policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'",
    };
    if (req.headers["if-none-match"] === loaded.etag) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    res.writeHead(200, { ...headers, "content-length": String(loaded.body.length) });
    if (req.method === "HEAD") res.end();
    else res.end(loaded.body);
  }

  private load(path: string): Loaded | undefined {
    const spec = FILES[path];
    if (spec === undefined) return undefined;
    let loaded = this.cache.get(spec.file);
    if (loaded === undefined) {
      const file = join(this.dir, spec.file);
      if (!existsSync(file)) return undefined;
      const body = readFileSync(file);
      loaded = { body, type: spec.type, etag: `"${createHash("sha1").update(body).digest("base64url")}"` };
      this.cache.set(spec.file, loaded);
    }
    return loaded;
  }
}
