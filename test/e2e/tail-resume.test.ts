/**
 * Resume by cursor: a tailer that disconnects while lines keep being written
 * comes back with the cursor of the last line it got and loses nothing, sees
 * nothing twice. A cursor whose file generation is gone, or that points past
 * a truncated file's end, resumes with a LOST file event.
 */
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { appendFileSync, renameSync, truncateSync, unlinkSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FileEventKind } from "../../gen/runnel/v1/tail_pb.js";
import type { RunnelServer } from "../../src/server.js";
import { startServer, waitFor } from "../harness/server.js";
import { fdsUnder, startTail, tailClient, tempTailDir, waitForLines, type TailClient } from "../harness/tailer.js";

const tmp = tempTailDir();
let server: RunnelServer;
let h2: TailClient;
let h1: TailClient;

beforeAll(async () => {
  server = await startServer({ tailDirs: [tmp.dir], tailPollMs: 100 });
  h2 = tailClient(createConnectTransport({ baseUrl: server.url, httpVersion: "2" }));
  h1 = tailClient(createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1" }));
});
afterAll(async () => {
  await server.shutdown(500);
  tmp.remove();
});

describe("resume by cursor", () => {
  it("disconnects while a writer keeps appending, and a rotation between two connections: every line exactly once", async () => {
    const file = tmp.file("busy.log");
    writeFileSync(file, "");
    let written = 0;
    let writer: NodeJS.Timeout | undefined;
    try {
      const received: string[] = [];
      let cursor = "";
      for (const [i, client] of [h2, h1, h2].entries()) {
        const t = startTail(client, cursor === "" ? { path: "busy.log", lines: 0 } : { path: "busy.log", afterCursor: cursor });
        await t.started;
        // The writer starts once the first tailer is following, and never stops between connections.
        writer ??= setInterval(() => {
          appendFileSync(file, Array.from({ length: 20 }, () => `line ${written++}\n`).join(""));
        }, 2);
        await waitForLines(t, 200 * (i + 1));
        t.abort.abort();
        await t.done;
        received.push(...t.texts());
        cursor = t.lines().at(-1)!.cursor;
        // The third connection resumes across a rotation: the rest of the old file is under its new name.
        expect(t.fileEvents()).toEqual(i === 2 ? [FileEventKind.ROTATED] : []);
        if (i === 1) renameSync(file, `${file}.1`); // the writer goes on in a new busy.log
      }
      clearInterval(writer);
      // The last connection drains what was written after it left.
      const last = startTail(h2, { path: "busy.log", afterCursor: cursor });
      await waitFor(() => received.length + last.lines().length === written, 10_000, `all ${written} lines`);
      last.abort.abort();
      received.push(...last.texts());
      expect(received).toEqual(Array.from({ length: written }, (_, i) => `line ${i}`));
    } finally {
      clearInterval(writer);
    }
    await waitFor(() => server.ledger.size === 0, 10_000, "ledger empty");
  });

  it("a cursor of a rotated generation finishes it under its new name, then the new file (ROTATED)", async () => {
    const file = tmp.file("rot.log");
    writeFileSync(file, "a\nb\n");
    const first = startTail(h2, { path: "rot.log", follow: false });
    expect(await first.done).toBeUndefined();
    const cursor = first.lines().at(-1)!.cursor;
    appendFileSync(file, "late\n");
    renameSync(file, `${file}.1`);
    writeFileSync(file, "c\nd\n");
    const again = startTail(h2, { path: "rot.log", afterCursor: cursor, follow: false });
    expect(await again.done).toBeUndefined();
    expect(again.fileEvents()).toEqual([FileEventKind.ROTATED]);
    expect(again.texts()).toEqual(["late", "c", "d"]);
    await waitFor(() => server.ledger.size === 0, 10_000, "ledger empty");
    expect(fdsUnder(tmp.dir)).toEqual([]);
  });

  it("a cursor of a generation that is gone resumes at the start of the current file with LOST", async () => {
    const file = tmp.file("gone.log");
    writeFileSync(file, "a\nb\n");
    const first = startTail(h2, { path: "gone.log", follow: false });
    expect(await first.done).toBeUndefined();
    const cursor = first.lines().at(-1)!.cursor;
    unlinkSync(file);
    writeFileSync(file, "c\nd\n");
    const again = startTail(h2, { path: "gone.log", afterCursor: cursor, follow: false });
    expect(await again.done).toBeUndefined();
    expect(again.fileEvents()).toEqual([FileEventKind.LOST]);
    expect(again.texts()).toEqual(["c", "d"]);
  });

  it("a cursor past the end of a truncated file resumes at its start with LOST and the bytes lost", async () => {
    const file = tmp.file("trunc.log");
    writeFileSync(file, "one\ntwo\nthree\n");
    const first = startTail(h2, { path: "trunc.log", follow: false });
    expect(await first.done).toBeUndefined();
    const cursor = first.lines().at(-1)!.cursor;
    truncateSync(file, 0);
    appendFileSync(file, "x\n");
    const again = startTail(h2, { path: "trunc.log", afterCursor: cursor, follow: false });
    expect(await again.done).toBeUndefined();
    const lost = again.messages.find((m) => m.kind.case === "fileEvent")?.kind.value;
    expect(lost).toMatchObject({ kind: FileEventKind.LOST, lostBytes: BigInt(14 - 2) });
    expect(again.texts()).toEqual(["x"]);
  });

  it("a cursor at the end of an idle file resumes with nothing and then follows", async () => {
    const file = tmp.file("idle.log");
    writeFileSync(file, "old\n");
    const first = startTail(h2, { path: "idle.log", follow: false });
    expect(await first.done).toBeUndefined();
    const again = startTail(h2, { path: "idle.log", afterCursor: first.lines().at(-1)!.cursor });
    await again.started;
    appendFileSync(file, "new\n");
    await waitForLines(again, 1);
    expect(again.texts()).toEqual(["new"]);
    again.abort.abort();
    await again.done;
  });
});
