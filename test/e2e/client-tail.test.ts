/**
 * The resumable `tail()` client, against a stand-in TailService served by a
 * real connect-node HTTP/2 server on 127.0.0.1:0 (runnel's own TailService
 * is built separately; its tests join these once it lands). The stand-in
 * follows the contract: TailStarted first, lines with cursors, resuming after
 * `after_cursor`, and a server-chosen end with Closing + Unavailable.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter, createGrpcTransport } from "@connectrpc/connect-node";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tail, type RetryInfo } from "../../src/index.js";
import { ClosingReason } from "../../gen/runnel/v1/event_pb.js";
import { TailResponseSchema, TailService, type TailRequest, type TailResponse } from "../../gen/runnel/v1/tail_pb.js";
import { waitFor } from "../harness/server.js";

const LINES = ["one", "two", "three", "four", "five"];
const cursorOf = (index: number): string => `c${index}`;

describe("resumable tail()", () => {
  const requests: TailRequest[] = [];
  let active = 0;
  let baseUrl = "";
  const server = http2.createServer(
    connectNodeAdapter({
      routes(router: ConnectRouter) {
        router.service(TailService, {
          async *tail(req, ctx) {
            requests.push(req);
            active++;
            try {
              const from = req.afterCursor === "" ? 0 : Number(req.afterCursor.slice(1)) + 1;
              yield create(TailResponseSchema, { kind: { case: "started", value: { streamId: `s${requests.length}`, path: req.path, exists: true, headCursor: cursorOf(LINES.length - 1) } } });
              // The first stream ends by the server's choice after two lines; later ones send the rest and follow.
              const until = requests.length === 1 ? 2 : LINES.length;
              for (let i = from; i < until; i++) yield create(TailResponseSchema, { kind: { case: "line", value: { text: LINES[i]!, cursor: cursorOf(i) } } });
              if (requests.length === 1) {
                yield create(TailResponseSchema, { kind: { case: "closing", value: { reason: ClosingReason.ADMIN, resumeCursor: cursorOf(1), retryAfterMs: 20, message: "closed by an operator" } } });
                throw new ConnectError("closed by an operator", Code.Unavailable);
              }
              if (req.follow === false) return;
              await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve(), { once: true }));
            } finally {
              active--;
            }
          },
          listFiles: () => ({ files: [] }),
        });
      },
    }),
  );
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s: http2.ServerHttp2Session) => {
    sessions.add(s);
    s.once("close", () => sessions.delete(s));
  });
  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    // server.close() waits for HTTP/2 sessions: the clients' pooled sessions are closed here.
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of sessions) s.destroy();
    await closed;
  });

  it("resumes after the server's Closing with after_cursor, every line once; break cancels the server stream", async () => {
    const retries: RetryInfo[] = [];
    const kinds: string[] = [];
    const lines: string[] = [];
    for await (const m of tail(createGrpcTransport({ baseUrl }), { path: "app.log", lines: 10 }, { onRetry: (r) => retries.push(r) })) {
      kinds.push(m.kind.case ?? "");
      if (m.kind.case === "line") lines.push(m.kind.value.text);
      if (lines.length === LINES.length) break;
    }
    expect(lines).toEqual(LINES);
    expect(kinds).toEqual(["started", "line", "line", "closing", "started", "line", "line", "line"]);
    expect(requests.map((r) => ({ afterCursor: r.afterCursor, lines: r.lines }))).toEqual([
      { afterCursor: "", lines: 10 },
      { afterCursor: "c1", lines: 10 },
    ]);
    expect(retries).toEqual([expect.objectContaining({ attempt: 1, serverClosed: true, cursor: "c1" })]);
    expect(retries[0]!.delayMs).toBeGreaterThanOrEqual(20);
    await waitFor(() => active === 0, 5_000, "the server's tail handler finished after break");
  });

  it("follow: false ends when the server ends the stream (OK): no retry", async () => {
    requests.length = 1; // past the first request: the stand-in sends everything and ends
    const lines: string[] = [];
    const retries: RetryInfo[] = [];
    for await (const m of tail(createGrpcTransport({ baseUrl }), { path: "app.log", follow: false }, { onRetry: (r) => retries.push(r) })) {
      if (m.kind.case === "line") lines.push(m.kind.value.text);
    }
    expect(lines).toEqual(LINES);
    expect(retries).toEqual([]);
  });

  it("lines: 0 resumes from the head cursor TailStarted named", async () => {
    requests.length = 0;
    const seen: TailResponse[] = [];
    const stream = tail(createGrpcTransport({ baseUrl }), { path: "app.log", lines: 0 });
    for await (const m of stream) {
      seen.push(m);
      if (m.kind.case === "started") break;
    }
    expect(stream.cursor).toBe(cursorOf(LINES.length - 1));
    await waitFor(() => active === 0, 5_000, "handler finished");
  });
});
