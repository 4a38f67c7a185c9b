/**
 * Auth for TailService: a token's tail rights (globs over paths relative to
 * the tail directories) decide what it may follow and what ListFiles shows;
 * no token is Unauthenticated; a path outside the rights is PermissionDenied
 * and leaves nothing open; a cut line counts as a `tail_line_bytes` limit hit.
 */
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { mkdirSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TailService } from "../../gen/runnel/v1/tail_pb.js";
import type { RunnelServer } from "../../src/server.js";
import { heldResources } from "../../src/stream/scope.js";
import { TOKENS, writeAuthFixture } from "../harness/auth-fixture.js";
import { parseProm, promValue } from "../harness/prom.js";
import { expectNoStreams, startServer } from "../harness/server.js";
import { tailHeld, tempTailDir } from "../harness/tailer.js";

const bearer = (token: string | undefined): Record<string, string> => (token === undefined ? {} : { authorization: `Bearer ${token}` });

/** Open a Tail with `token`: the first line's text once it arrives, else the code the call failed with. */
async function firstLine(client: Client<typeof TailService>, path: string, token: string | undefined): Promise<string | Code> {
  const abort = new AbortController();
  try {
    for await (const m of client.tail({ path, lines: 1 }, { signal: abort.signal, headers: bearer(token), timeoutMs: 10_000 })) {
      if (m.kind.case === "line") return m.kind.value.text;
    }
    return Code.Internal;
  } catch (e) {
    return ConnectError.from(e).code;
  } finally {
    abort.abort();
  }
}

describe("auth: TailService", () => {
  const tmp = tempTailDir("runnel-auth-tail-");
  let server: RunnelServer;

  beforeAll(async () => {
    mkdirSync(tmp.file("app"));
    writeFileSync(tmp.file("app/web.log"), "web 1\n");
    writeFileSync(tmp.file("app/db.txt"), "db 1\n");
    writeFileSync(tmp.file("secret.log"), "secret 1\n");
    writeFileSync(tmp.file("app/long.log"), "x".repeat(300) + "\n");
    const fixture = await writeAuthFixture();
    server = await startServer({ auth: fixture.path, tailDirs: [tmp.dir], maxLineBytes: 100 });
  });
  afterAll(async () => {
    await server.shutdown(1_000);
    tmp.remove();
  });

  for (const [name, create] of [
    ["grpc h2", (url: string) => createGrpcTransport({ baseUrl: url })],
    ["grpc-web http/1.1", (url: string) => createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1" })],
  ] as const) {
    it(`${name}: tail rights decide Tail and ListFiles; refusals hold nothing`, async () => {
      const tail = createClient(TailService, create(server.url));
      expect(await firstLine(tail, "app/web.log", TOKENS.tailer)).toBe("web 1");
      expect(await firstLine(tail, "app/db.txt", TOKENS.tailer)).toBe(Code.PermissionDenied);
      expect(await firstLine(tail, "secret.log", TOKENS.tailer)).toBe(Code.PermissionDenied);
      // Rights on topics say nothing about files; the admin token has no tail right either.
      expect(await firstLine(tail, "app/web.log", TOKENS.euReader)).toBe(Code.PermissionDenied);
      expect(await firstLine(tail, "app/web.log", TOKENS.admin)).toBe(Code.PermissionDenied);
      expect(await firstLine(tail, "app/web.log", undefined)).toBe(Code.Unauthenticated);
      expect(await firstLine(tail, "app/web.log", "nope")).toBe(Code.Unauthenticated);

      const listed = await tail.listFiles({}, { headers: bearer(TOKENS.tailer) });
      expect(listed.files.map((f) => f.path).sort()).toEqual(["app/long.log", "app/web.log"]);
      expect((await tail.listFiles({}, { headers: bearer(TOKENS.euReader) })).files).toEqual([]);
      await expect(tail.listFiles({})).rejects.toMatchObject({ code: Code.Unauthenticated });

      await expectNoStreams(server);
      expect([...heldResources()]).toEqual([]);
      expect(tailHeld()).toEqual({ watchers: 0, openFiles: 0 });
    });
  }

  it("a line cut at --max-line-bytes is sent marked and counted as a tail_line_bytes hit", async () => {
    const hits = async (): Promise<number> => {
      const text = await (await fetch(`${server.url}/metrics`, { headers: bearer(TOKENS.admin) })).text();
      return promValue(parseProm(text), "runnel_limit_hits_total", { limit: "tail_line_bytes" }) ?? 0;
    };
    const before = await hits();
    const tail = createClient(TailService, createGrpcTransport({ baseUrl: server.url }));
    const abort = new AbortController();
    let line: { text: string; truncated: boolean } | undefined;
    for await (const m of tail.tail({ path: "app/long.log", lines: 1 }, { signal: abort.signal, headers: bearer(TOKENS.tailer) })) {
      if (m.kind.case === "line") {
        line = m.kind.value;
        abort.abort();
        break;
      }
    }
    expect(line).toMatchObject({ text: "x".repeat(100), truncated: true });
    expect((await hits()) - before).toBe(1);
    await expectNoStreams(server);
  });
});
