/**
 * What a browser sees at the HTTP level: CORS preflights and response
 * headers for allowed and other origins (and none at all without
 * --cors-origin), the --cors-origin flag's validation, and the live page's
 * files served by runnel (types, ETag revalidation, HEAD).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseServeArgs } from "../../src/config.js";
import type { RunnelServer } from "../../src/server.js";
import { ensureBuilt } from "../harness/built.js";
import { startServer } from "../harness/server.js";

const APP = "https://app.example.com";

function preflight(url: string, origin: string, method = "POST"): Promise<Response> {
  return fetch(`${url}/runnel.v1.EventService/Subscribe`, {
    method: "OPTIONS",
    headers: { origin, "access-control-request-method": method, "access-control-request-headers": "content-type,connect-protocol-version" },
  });
}

function publish(url: string, origin: string): Promise<Response> {
  return fetch(`${url}/runnel.v1.EventService/Publish`, {
    method: "POST",
    headers: { origin, "content-type": "application/json" },
    body: JSON.stringify({ topic: "cors.t", data: "" }),
  });
}

describe("CORS", () => {
  let allowing: RunnelServer;
  let closed: RunnelServer;
  beforeAll(async () => {
    allowing = await startServer({ corsOrigins: [APP, "http://localhost:3000"] });
    closed = await startServer();
  });
  afterAll(async () => {
    await allowing.shutdown(1_000);
    await closed.shutdown(1_000);
  });

  it("a preflight from an allowed origin gets connect-es's methods and headers", async () => {
    const r = await preflight(allowing.url, APP);
    expect(r.status).toBe(204);
    expect(r.headers.get("access-control-allow-origin")).toBe(APP);
    expect(r.headers.get("access-control-allow-methods")).toBe("POST, GET");
    const allowed = r.headers.get("access-control-allow-headers")!.toLowerCase().split(", ");
    expect(allowed).toEqual(expect.arrayContaining(["content-type", "connect-protocol-version", "connect-timeout-ms", "x-grpc-web", "grpc-timeout"]));
    expect(r.headers.get("access-control-max-age")).toBe("7200");
  });

  it("the response to an allowed origin exposes the status headers; other origins get no CORS headers", async () => {
    const ok = await publish(allowing.url, APP);
    expect(ok.status).toBe(200);
    expect(ok.headers.get("access-control-allow-origin")).toBe(APP);
    expect(ok.headers.get("access-control-expose-headers")!.toLowerCase()).toContain("grpc-status");
    expect(ok.headers.get("vary")).toBe("Origin");

    const other = await publish(allowing.url, "https://evil.example");
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
    const refused = await preflight(allowing.url, "https://evil.example");
    expect(refused.status).toBe(403);
    expect(refused.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("without --cors-origin nothing is allowed cross-origin", async () => {
    expect((await preflight(closed.url, APP)).status).toBe(403);
    const r = await publish(closed.url, APP);
    expect(r.status).toBe(200);
    expect(r.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("--cors-origin is repeatable, * allows any, and a malformed origin is refused at start", () => {
    expect(parseServeArgs(["--cors-origin", APP, "--cors-origin", "http://localhost:3000"], {}).corsOrigins).toEqual([APP, "http://localhost:3000"]);
    expect(parseServeArgs([], { RUNNEL_CORS_ORIGIN: `${APP}, *` }).corsOrigins).toEqual([APP, "*"]);
    expect(() => parseServeArgs(["--cors-origin", "app.example.com"], {})).toThrow(/--cors-origin must be \* or an origin such as https:\/\/app\.example\.com, got "app\.example\.com"/);
    expect(() => parseServeArgs(["--cors-origin", "https://x.example/path"], {})).toThrow(/--cors-origin/);
  });
});

describe("the live page's files", () => {
  let server: RunnelServer;
  beforeAll(async () => {
    ensureBuilt();
    server = await startServer();
  }, 120_000);
  afterAll(() => server.shutdown(1_000));

  it("GET / is the page; its script and stylesheet are served with their types, a CSP and an ETag", async () => {
    const html = await fetch(`${server.url}/`);
    expect(html.status).toBe(200);
    expect(html.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(html.headers.get("content-security-policy")).toContain("default-src 'self'");
    const body = await html.text();
    expect(body).toContain('<script type="module" src="/app.js"></script>');
    expect(body).not.toMatch(/https?:\/\//); // nothing from a CDN

    const js = await fetch(`${server.url}/app.js`);
    expect(js.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect((await js.text()).length).toBeGreaterThan(1000);
    const css = await fetch(`${server.url}/app.css`);
    expect(css.headers.get("content-type")).toBe("text/css; charset=utf-8");

    const etag = js.headers.get("etag")!;
    expect((await fetch(`${server.url}/app.js`, { headers: { "if-none-match": etag } })).status).toBe(304);
    const head = await fetch(`${server.url}/`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(Number(head.headers.get("content-length"))).toBe(body.length);
  });

  it("other paths are not files: the RPC routes answer them", async () => {
    expect((await fetch(`${server.url}/app.ts`)).status).toBe(404);
    expect((await fetch(`${server.url}/../package.json`)).status).toBe(404);
  });
});
