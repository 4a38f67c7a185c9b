/**
 * Shared sources: 100 tailers of one file hold one watcher and one open fd
 * (metrics, the process's tail counters and /proc/self/fd agree); each gets
 * every line; when all cancel, everything is zero at once. Metrics and
 * ListStreams show tail streams with their path.
 */
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { appendFileSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/runnel/v1/admin_pb.js";
import type { RunnelServer } from "../../src/server.js";
import { expectCleanEnd, snapshot } from "../harness/lifecycle.js";
import { openFdCount } from "../harness/procfs.js";
import { parseProm, promValue } from "../harness/prom.js";
import { startServer, waitFor } from "../harness/server.js";
import { fdsUnder, startTail, TAIL, tailClient, tailHeld, tempTailDir, warmInotify, type Tailer } from "../harness/tailer.js";

const tmp = tempTailDir();
let server: RunnelServer;

beforeAll(async () => {
  warmInotify(tmp.dir);
  server = await startServer({ tailDirs: [tmp.dir], tailPollMs: 100 });
});
afterAll(async () => {
  await server.shutdown(500);
  tmp.remove();
});

async function scrape(): Promise<ReturnType<typeof parseProm>> {
  return parseProm(await (await fetch(`${server.url}/metrics`)).text());
}

describe("one watcher and one fd per file, however many tailers", () => {
  it("100 tailers of one file: 1 watcher, 1 fd; all get every line; all cancel: zero", async () => {
    const file = tmp.file("shared.log");
    writeFileSync(file, "first\n");
    // Two connections (HTTP/2 and gRPC): the count must not depend on how clients connect.
    const clients = [
      tailClient(createConnectTransport({ baseUrl: server.url, httpVersion: "2" })),
      tailClient(createGrpcTransport({ baseUrl: server.url })),
    ];
    const before = snapshot(server, TAIL);
    const fdsBefore = openFdCount();
    const tailers: Tailer[] = [];
    for (let i = 0; i < 100; i++) tailers.push(startTail(clients[i % 2]!, { path: "shared.log" }));
    await Promise.all(tailers.map((t) => t.started));
    expect(tailHeld()).toEqual({ watchers: 1, openFiles: 1 });
    expect(fdsUnder(tmp.dir)).toEqual([file]);
    // One fd for the file; the rest of the growth is the two client connections' sockets (4 fds).
    expect(openFdCount() - fdsBefore).toBeLessThanOrEqual(1 + 4);
    const metrics = await scrape();
    expect(promValue(metrics, "runnel_tail_watchers_active")).toBe(1);
    expect(promValue(metrics, "runnel_tail_open_files")).toBe(1);
    expect(promValue(metrics, "runnel_streams_active", { rpc: TAIL })).toBe(100);

    appendFileSync(file, "a\nb\nc\n");
    await waitFor(() => tailers.every((t) => t.lines().length === 4), 10_000, "every tailer got 4 lines");
    for (const t of tailers) expect(t.texts()).toEqual(["first", "a", "b", "c"]);

    for (const t of tailers) t.abort.abort();
    await expectCleanEnd(server, before, { cause: "canceled", opened: 100, rpc: TAIL });
    expect(fdsUnder(tmp.dir)).toEqual([]);
    const after = await scrape();
    expect(promValue(after, "runnel_tail_watchers_active")).toBe(0);
    expect(promValue(after, "runnel_tail_open_files")).toBe(0);
  });

  it("ListStreams shows a tail stream with its path; CloseStream ends it with Closing(ADMIN)", async () => {
    writeFileSync(tmp.file("admin.log"), "x\n");
    const transport = createConnectTransport({ baseUrl: server.url, httpVersion: "2" });
    const before = snapshot(server, TAIL);
    const t = startTail(tailClient(transport), { path: "./admin.log" });
    const id = await t.started;
    const admin = createClient(AdminService, transport);
    const { streams } = await admin.listStreams({});
    const mine = streams.find((s) => s.id === id);
    expect(mine).toMatchObject({ rpc: TAIL, path: "admin.log" });
    await admin.closeStream({ id });
    await t.done;
    expect(t.closing()?.resumeCursor).toBe(t.lines().at(-1)!.cursor);
    await expectCleanEnd(server, before, { cause: "admin", rpc: TAIL });
  });
});
