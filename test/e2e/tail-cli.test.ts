/**
 * `runnel tail` as a user runs it: the built CLI in child processes against
 * a server the test started. Last lines, follow, --json, --grep, --list,
 * Ctrl-C (exit 130, the server's stream ends at once), refusals as one line.
 */
import { spawn } from "node:child_process";
import { appendFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunnelServer } from "../../src/server.js";
import { expectCleanEnd, snapshot } from "../harness/lifecycle.js";
import { expectNoStreams, startServer, waitFor } from "../harness/server.js";
import { TAIL, tempTailDir } from "../harness/tailer.js";

const CLI = join(import.meta.dirname, "..", "..", "dist", "src", "cli.js");
const tmp = tempTailDir();
let server: RunnelServer;

beforeAll(async () => {
  writeFileSync(tmp.file("app.log"), "one\ntwo\nerror three\nfour\n");
  server = await startServer({ tailDirs: [tmp.dir], tailPollMs: 100 });
});
afterAll(async () => {
  await server.shutdown(500);
  tmp.remove();
});

/** Run `runnel ...`; `out` and `err` fill as it prints. */
function run(args: string[]) {
  const child = spawn(process.execPath, [CLI, ...args, ...(args[0] === "serve" ? [] : ["--url", server.url])], { stdio: ["ignore", "pipe", "pipe"] });
  const r = { out: "", err: "", child, exited: new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code))) };
  child.stdout.setEncoding("utf8").on("data", (d: string) => (r.out += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (r.err += d));
  return r;
}

describe("runnel tail", () => {
  it("-n 2 --no-follow prints the last two lines and exits 0", async () => {
    const r = run(["tail", "app.log", "-n", "2", "--no-follow"]);
    expect(await r.exited).toBe(0);
    expect(r.out).toBe("error three\nfour\n");
  });

  it("--grep filters", async () => {
    const r = run(["tail", "app.log", "--grep", "^error", "--no-follow"]);
    expect(await r.exited).toBe(0);
    expect(r.out).toBe("error three\n");
  });

  it("follows with --json until Ctrl-C, which exits 130 and ends the server's stream at once", async () => {
    const before = snapshot(server, TAIL);
    const r = run(["tail", "app.log", "-n", "0", "--json"]);
    await waitFor(() => r.out.includes('"type":"started"'), 15_000, "started");
    appendFileSync(tmp.file("app.log"), "five\n");
    await waitFor(() => r.out.includes('"text":"five"'), 10_000, "the new line");
    const line = JSON.parse(r.out.split("\n")[1]!) as { type: string; text: string; offset: string; cursor: string };
    expect(line).toMatchObject({ type: "line", text: "five", offset: "25" });
    expect(line.cursor).toMatch(/^t1\./);
    r.child.kill("SIGINT");
    expect(await r.exited).toBe(130);
    // The CLI cancels (RST_STREAM) and exits at once: the server may see the cancel or the
    // connection close first; either way the stream ends and everything is released.
    await waitFor(() => server.ledger.size === 0, 10_000, "server stream ended after Ctrl-C");
    const cause = server.ledger.endedCount(TAIL, "canceled") > before.ended.get("canceled")! ? "canceled" : "disconnect";
    await expectCleanEnd(server, before, { cause, rpc: TAIL });
  });

  it("resumes by itself after the server's Closing: no line lost or repeated, one stderr line per resume", async () => {
    const file = tmp.file("closing.log");
    writeFileSync(file, "a\n");
    const r = run(["tail", "closing.log", "-n", "1"]);
    await waitFor(() => r.out === "a\n", 15_000, "the last line");
    await waitFor(() => server.ledger.list().length === 1, 5_000, "one tail stream");
    const stream = server.ledger.list()[0]!;
    appendFileSync(file, "b\n");
    await waitFor(() => r.out === "a\nb\n", 10_000, "b");
    stream.close("admin", "test closes it");
    await waitFor(() => r.err.includes("resuming"), 10_000, "the Closing line");
    appendFileSync(file, "c\n");
    await waitFor(() => r.out === "a\nb\nc\n", 10_000, "c after the resume");
    expect(r.err).toMatch(/server closing the stream \(admin: test closes it\); resuming/);
    r.child.kill("SIGINT");
    expect(await r.exited).toBe(130);
    await expectNoStreams(server, 10_000);
  });

  it("a refused path is one line on stderr with the code, exit 1", async () => {
    const r = run(["tail", "../etc/passwd"]);
    expect(await r.exited).toBe(1);
    expect(r.err.trim()).toMatch(/^runnel: PermissionDenied: path "\.\.\/etc\/passwd" refused/);
    expect(r.err.trim().split("\n")).toHaveLength(1);
  });

  it("--list lists the tailable files", async () => {
    const r = run(["tail", "--list"]);
    expect(await r.exited).toBe(0);
    expect(r.out.split("\n")[0]).toMatch(/^app\.log\t\d+\t\d{4}-/);
  });

  it("serve refuses a --tail-dir that does not exist, in one line", async () => {
    const r = run(["serve", "--port", "0", "--tail-dir", tmp.file("missing")]);
    expect(await r.exited).toBe(2);
    expect(r.err.trim()).toMatch(/^runnel: --tail-dir .*missing: ENOENT$/);
  });
});
