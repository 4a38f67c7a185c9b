/**
 * Tail semantics over the network, against real files in a temp directory
 * and a real server: the last N lines, follow or not, grep, a file that does
 * not exist yet, long lines, partial lines, and rotation by rename,
 * copytruncate and delete + re-create, with lines appended during the
 * rotation. Every case checks the exact lines received and the ledger,
 * watchers and fds back at zero afterwards.
 */
import { Code } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { appendFileSync, closeSync, copyFileSync, openSync, renameSync, truncateSync, unlinkSync, writeFileSync, writeSync } from "node:fs";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { FileEventKind } from "../../gen/runnel/v1/tail_pb.js";
import type { RunnelServer } from "../../src/server.js";
import { expectCleanEnd, snapshot } from "../harness/lifecycle.js";
import { startServer, waitFor } from "../harness/server.js";
import { startTail, TAIL, tailClient, tempTailDir, waitForLines, type TailClient, type Tailer } from "../harness/tailer.js";

const tmp = tempTailDir();
let server: RunnelServer;
let client: TailClient;
let n = 0;

beforeAll(async () => {
  server = await startServer({ tailDirs: [tmp.dir], tailPollMs: 100, tailPartialFlushMs: 300, maxLineBytes: 1024 });
  client = tailClient(createConnectTransport({ baseUrl: server.url, httpVersion: "2" }));
});
afterAll(async () => {
  await server.shutdown(500);
  tmp.remove();
});

const running: Tailer[] = [];
afterEach(async () => {
  for (const t of running.splice(0)) t.abort.abort();
  await waitFor(() => server.ledger.size === 0, 10_000, "ledger empty");
});

function fresh(content = ""): { name: string; path: string } {
  const name = `f${++n}.log`;
  const path = tmp.file(name);
  writeFileSync(path, content);
  return { name, path };
}

function numbered(from: number, to: number, prefix = "L"): string[] {
  return Array.from({ length: to - from }, (_, i) => `${prefix}${from + i}`);
}

const text = (lines: string[]): string => lines.map((l) => `${l}\n`).join("");

function follow(request: Parameters<typeof startTail>[1]): Tailer {
  const t = startTail(client, request);
  running.push(t);
  return t;
}

describe("the last lines, then follow", () => {
  it("sends the last 10 by default, then appended lines with cursors and offsets; cancel frees everything", async () => {
    const before = snapshot(server, TAIL);
    const f = fresh(text(numbered(0, 25)));
    const t = follow({ path: f.name });
    await t.started;
    await waitForLines(t, 10);
    appendFileSync(f.path, text(numbered(25, 30)));
    await waitForLines(t, 15);
    expect(t.texts()).toEqual(numbered(15, 30));
    const first = t.lines()[0]!;
    expect(first.offset).toBe(BigInt(text(numbered(0, 15)).length));
    expect(new Set(t.lines().map((l) => l.cursor)).size).toBe(15);
    expect(t.messages[0]!.kind.case).toBe("started");
    t.abort.abort();
    expect((await t.done)?.code).toBe(Code.Canceled);
    await expectCleanEnd(server, before, { cause: "canceled", rpc: TAIL });
  });

  it("lines: 0 sends nothing old; lines: 3 sends three; a last line without newline counts", async () => {
    const f = fresh("a\nb\nc\nd\ne");
    const none = follow({ path: f.name, lines: 0, follow: false });
    expect(await none.done).toBeUndefined();
    expect(none.texts()).toEqual([]);
    const three = follow({ path: f.name, lines: 3, follow: false });
    expect(await three.done).toBeUndefined();
    expect(three.texts()).toEqual(["c", "d", "e"]);
    expect(three.lines().at(-1)!.partial).toBe(true);
  });

  it("follow: false sends the last lines and ends OK (cause completed); a missing file is NotFound", async () => {
    const before = snapshot(server, TAIL);
    const f = fresh(text(numbered(0, 5)));
    const t = follow({ path: f.name, follow: false, lines: 100 });
    expect(await t.done).toBeUndefined();
    expect(t.texts()).toEqual(numbered(0, 5));
    await expectCleanEnd(server, before, { cause: "completed", rpc: TAIL });
    const missing = follow({ path: "nope.log", follow: false });
    expect((await missing.done)?.code).toBe(Code.NotFound);
  });

  it("more old lines than the queue holds arrive in full (the file is the buffer)", async () => {
    const f = fresh(text(numbered(0, 5000)));
    const t = follow({ path: f.name, follow: false, lines: 5000 });
    expect(await t.done).toBeUndefined();
    expect(t.texts()).toEqual(numbered(0, 5000));
  });

  it("grep keeps matching lines only; a bad expression is InvalidArgument, and so is a foreign cursor", async () => {
    const f = fresh(text(["info a", "error b", "info c", "error d"]));
    const t = follow({ path: f.name, grep: "^error", follow: false });
    expect(await t.done).toBeUndefined();
    expect(t.texts()).toEqual(["error b", "error d"]);
    const bad = follow({ path: f.name, grep: "(" });
    expect((await bad.done)?.code).toBe(Code.InvalidArgument);
    expect((await bad.done)?.rawMessage).toMatch(/grep/);
    const cursor = follow({ path: f.name, afterCursor: "not-a-cursor" });
    expect((await cursor.done)?.code).toBe(Code.InvalidArgument);
  });

  it("a file that does not exist yet: started says so, CREATED when it appears, then its lines", async () => {
    const name = `later${++n}.log`;
    const t = follow({ path: name });
    await t.started;
    const started = t.messages[0]!.kind;
    expect(started.case === "started" && started.value.exists).toBe(false);
    writeFileSync(tmp.file(name), text(["born", "alive"]));
    await waitForLines(t, 2);
    expect(t.fileEvents()).toEqual([FileEventKind.CREATED]);
    expect(t.texts()).toEqual(["born", "alive"]);
  });

  it("cuts lines over --max-line-bytes and marks them; flushes a quiet partial line, marked", async () => {
    const f = fresh();
    const t = follow({ path: f.name });
    await t.started;
    appendFileSync(f.path, `${"x".repeat(5000)}\nshort\nhalf`);
    await waitForLines(t, 3);
    const [long, short, half] = t.lines();
    expect([long!.text.length, long!.truncated, short!.text, short!.truncated]).toEqual([1024, true, "short", false]);
    expect([half!.text, half!.partial]).toEqual(["half", true]);
    appendFileSync(f.path, " done\n");
    await waitForLines(t, 4);
    expect(t.lines()[3]!.text).toBe(" done");
    expect(t.lines()[3]!.offset).toBe(BigInt(5001 + 6 + 4));
  });
});

describe("rotation: every line written arrives once, in order, with the right file events", () => {
  it("rename + new file, with lines appended to the old file during the rotation", async () => {
    const f = fresh(text(numbered(0, 50)));
    const t = follow({ path: f.name, lines: 1000 });
    await waitForLines(t, 50);
    const oldFd = openSync(f.path, "a");
    renameSync(f.path, `${f.path}.1`);
    // The writer has not reopened yet: these go to the renamed file.
    writeSync(oldFd, text(numbered(50, 60)));
    closeSync(oldFd);
    writeFileSync(f.path, text(numbered(60, 80)));
    appendFileSync(f.path, text(numbered(80, 100)));
    await waitForLines(t, 100);
    expect(t.texts()).toEqual(numbered(0, 100));
    expect(t.fileEvents()).toEqual([FileEventKind.ROTATED]);
  });

  it("copytruncate: the copy is not followed, the truncation is reported, following restarts at the start", async () => {
    const f = fresh(text(numbered(0, 30)));
    const t = follow({ path: f.name, lines: 1000 });
    await waitForLines(t, 30);
    copyFileSync(f.path, `${f.path}.1`);
    truncateSync(f.path, 0);
    // Written right after the truncation, longer than the old content: still noticed.
    appendFileSync(f.path, text(numbered(30, 70)));
    await waitForLines(t, 70);
    expect(t.texts()).toEqual(numbered(0, 70));
    expect(t.fileEvents()).toEqual([FileEventKind.TRUNCATED]);
  });

  it("delete + re-create: DELETED, CREATED, then the new file's lines", async () => {
    const f = fresh(text(numbered(0, 10)));
    const t = follow({ path: f.name, lines: 1000 });
    await waitForLines(t, 10);
    appendFileSync(f.path, text(numbered(10, 15)));
    unlinkSync(f.path);
    await waitFor(() => t.fileEvents().length >= 1, 10_000, "DELETED");
    writeFileSync(f.path, text(numbered(15, 25)));
    await waitForLines(t, 25);
    expect(t.texts()).toEqual(numbered(0, 25));
    expect(t.fileEvents()).toEqual([FileEventKind.DELETED, FileEventKind.CREATED]);
  });

  it("a writer rotating repeatedly while appending: the union equals what was written", async () => {
    const f = fresh();
    const t = follow({ path: f.name });
    await t.started;
    let next = 0;
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < 5; i++) {
        appendFileSync(f.path, text(numbered(next, next + 20)));
        next += 20;
        await new Promise((r) => setTimeout(r, 5));
      }
      const fd = openSync(f.path, "a");
      renameSync(f.path, `${f.path}.${round}`);
      writeSync(fd, text(numbered(next, next + 10)));
      next += 10;
      closeSync(fd);
      // The new file appears after the rotation settles or before: both must lose nothing.
      if (round % 2 === 1) await new Promise((r) => setTimeout(r, 600));
      writeFileSync(f.path, "");
    }
    appendFileSync(f.path, text(numbered(next, next + 10)));
    next += 10;
    await waitForLines(t, next, 15_000);
    expect(t.texts()).toEqual(numbered(0, next));
    // Four rotations; where the new file came after the old one settled (about every other round,
    // timing decides), CREATED follows the ROTATED.
    const events = t.fileEvents();
    expect(events.filter((e) => e === FileEventKind.ROTATED)).toHaveLength(4);
    expect(events.every((e) => e === FileEventKind.ROTATED || e === FileEventKind.CREATED)).toBe(true);
  });
});

describe("an idle tail stream", () => {
  it("gets heartbeats carrying its resume cursor while the file is quiet", async () => {
    const f = fresh("only\n");
    const t = follow({ path: f.name, heartbeatMs: 1_000 });
    await waitForLines(t, 1);
    await waitFor(() => t.messages.some((m) => m.kind.case === "heartbeat"), 10_000, "a heartbeat");
    const beat = t.messages.find((m) => m.kind.case === "heartbeat")!.kind;
    expect(beat.case === "heartbeat" && beat.value.cursor).toBe(t.lines()[0]!.cursor);
  });
});
