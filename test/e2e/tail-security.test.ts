/**
 * Nothing outside the tail directories is ever opened, nothing that is not a
 * regular file either, and hostile content (a 10 MB line, a binary file)
 * neither blows memory nor crashes the server: each refusal carries the
 * right code and a message, and the server keeps serving.
 */
import { Code } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFileSync, mkdirSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FileEventKind } from "../../gen/runnel/v1/tail_pb.js";
import type { RunnelServer } from "../../src/server.js";
import { startServer, waitFor } from "../harness/server.js";
import { fdsUnder, startTail, tailClient, tailHeld, tempTailDir, waitForLines, type TailClient } from "../harness/tailer.js";

const outside = tempTailDir("runnel-outside-");
const tmp = tempTailDir();
let server: RunnelServer;
let client: TailClient;

beforeAll(async () => {
  writeFileSync(outside.file("secret"), "top secret\n");
  writeFileSync(tmp.file("ok.log"), "fine\n");
  symlinkSync(outside.file("secret"), tmp.file("link-out"));
  symlinkSync("/dev/null", tmp.file("devnull"));
  mkdirSync(tmp.file("sub"));
  execFileSync("mkfifo", [tmp.file("pipe")]);
  server = await startServer({ tailDirs: [tmp.dir], tailPollMs: 100, maxLineBytes: 64 * 1024 });
  client = tailClient(createConnectTransport({ baseUrl: server.url, httpVersion: "2" }));
});
afterAll(async () => {
  await server.shutdown(500);
  tmp.remove();
  outside.remove();
});

async function refusal(path: string): Promise<{ code: Code | "ok"; message: string }> {
  const t = startTail(client, { path });
  const e = await t.done;
  return e === undefined ? { code: "ok", message: "" } : { code: e.code, message: e.rawMessage };
}

describe("path safety", () => {
  const cases: [string, Code, RegExp][] = [
    ["../runnel-outside/secret", Code.PermissionDenied, /"\.\." is not allowed/],
    ["sub/../../x", Code.PermissionDenied, /"\.\." is not allowed/],
    ["/etc/passwd", Code.PermissionDenied, /absolute path/],
    ["/proc/self/environ", Code.PermissionDenied, /absolute path/],
    ["link-out", Code.PermissionDenied, /points outside/],
    ["devnull", Code.PermissionDenied, /points outside/],
    ["sub", Code.InvalidArgument, /a directory/],
    ["pipe", Code.InvalidArgument, /a FIFO/],
    ["", Code.InvalidArgument, /empty/],
    ["missing-dir/x.log", Code.NotFound, /does not exist/],
  ];
  for (const [path, code, message] of cases) {
    it(`"${path}" -> ${Code[code]}`, async () => {
      const r = await refusal(path);
      expect(r.code).toBe(code);
      expect(r.message).toMatch(message);
    });
  }

  it("a device file inside the directory is refused (InvalidArgument)", async () => {
    try {
      execFileSync("mknod", [tmp.file("null-dev"), "c", "1", "3"], { stdio: "ignore" });
    } catch {
      return; // not allowed to make device nodes here: the symlink case above covers devices outside
    }
    const r = await refusal("null-dev");
    expect(r).toMatchObject({ code: Code.InvalidArgument, message: expect.stringMatching(/a device/) });
  });

  it("after all refusals the server still serves, and nothing was left open", async () => {
    const t = startTail(client, { path: "ok.log", follow: false });
    expect(await t.done).toBeUndefined();
    expect(t.texts()).toEqual(["fine"]);
    await waitFor(() => server.ledger.size === 0, 10_000, "ledger empty");
    expect(tailHeld()).toEqual({ watchers: 0, openFiles: 0 });
    expect(fdsUnder(tmp.dir)).toEqual([]);
    expect(fdsUnder(outside.dir)).toEqual([]);
  });

  it("a followed file swapped for a symlink pointing outside is not followed there (O_NOFOLLOW)", async () => {
    const file = tmp.file("swap.log");
    writeFileSync(file, "before\n");
    const t = startTail(client, { path: "swap.log" });
    await waitForLines(t, 1);
    unlinkSync(file);
    symlinkSync(outside.file("secret"), file);
    await waitFor(() => t.fileEvents().includes(FileEventKind.DELETED), 10_000, "DELETED");
    // Several polls later: still nothing from the secret file.
    await new Promise((r) => setTimeout(r, 500));
    expect(t.texts()).toEqual(["before"]);
    expect(fdsUnder(outside.dir)).toEqual([]);
    t.abort.abort();
    await t.done;
  });
});

describe("hostile content", () => {
  it("a 10 MB line is cut to the line bound and the next line still arrives; memory stays bounded", async () => {
    const file = tmp.file("huge.log");
    writeFileSync(file, "");
    const t = startTail(client, { path: "huge.log" });
    await t.started;
    // Written from a Buffer (memory outside the JS heap), so the heap measures the server's side only.
    const line = Buffer.alloc(10 * 1024 * 1024 + 7, "y");
    line.write("\nafter\n", 10 * 1024 * 1024);
    const heapBefore = process.memoryUsage().heapUsed;
    appendFileSync(file, line);
    await waitForLines(t, 2, 20_000);
    const [huge, after] = t.lines();
    expect([huge!.text.length, huge!.truncated, after!.text, after!.offset]).toEqual([64 * 1024, true, "after", BigInt(10 * 1024 * 1024 + 1)]);
    // The server never held the line: far less than its 10 MB (client and server share this heap).
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(8 * 1024 * 1024);
    t.abort.abort();
    await t.done;
  });

  it("a binary file: lines cut, invalid UTF-8 replaced and marked, the server keeps serving", async () => {
    const file = tmp.file("blob.bin");
    writeFileSync(file, randomBytes(2 * 1024 * 1024));
    const t = startTail(client, { path: "blob.bin", lines: 100_000, follow: false });
    expect(await t.done).toBeUndefined();
    const lines = t.lines();
    expect(lines.length).toBeGreaterThan(100);
    expect(lines.some((l) => l.replaced)).toBe(true);
    expect(lines.every((l) => Buffer.byteLength(l.text) <= 64 * 1024 * 3)).toBe(true);
    const ok = startTail(client, { path: "ok.log", follow: false });
    expect(await ok.done).toBeUndefined();
  });
});
