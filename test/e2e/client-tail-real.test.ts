/**
 * The resumable `tail()` client against runnel's own TailService (the
 * stand-in of client-tail.test.ts pins the client's protocol handling; this
 * file proves the two fit): an operator closes the stream while a writer
 * keeps appending, the client resumes by itself with its last cursor and
 * every line arrives exactly once, in order; `break` then releases the
 * server stream, its follower, the watcher and the open file.
 */
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { appendFileSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../../gen/runnel/v1/admin_pb.js";
import { ClosingReason } from "../../gen/runnel/v1/event_pb.js";
import { tail, type RetryInfo } from "../../src/index.js";
import type { RunnelServer } from "../../src/server.js";
import { causesSince, snapshot } from "../harness/lifecycle.js";
import { heldResources } from "../../src/stream/scope.js";
import { startServer, waitFor } from "../harness/server.js";
import { fdsUnder, TAIL, tailHeld, tempTailDir } from "../harness/tailer.js";

const tmp = tempTailDir("runnel-client-tail-");
let server: RunnelServer;

beforeAll(async () => {
  server = await startServer({ tailDirs: [tmp.dir], tailPollMs: 100 });
});
afterAll(async () => {
  await server.shutdown(500);
  tmp.remove();
});

const transports = [
  ["grpc h2", () => createGrpcTransport({ baseUrl: server.url })],
  ["grpc-web http/1.1", () => createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1" })],
] as const;

describe("tail() on the real TailService", () => {
  for (const [name, transport] of transports) {
    it(`${name}: admin close mid-stream while lines are written -> resumes, every line once; break releases everything`, async () => {
      const before = snapshot(server, TAIL);
      const file = tmp.file(`client-${name.replace(/\W+/g, "-")}.log`);
      writeFileSync(file, "old 1\nold 2\n");
      const admin = createClient(AdminService, createGrpcTransport({ baseUrl: server.url }));
      const retries: RetryInfo[] = [];
      const texts: string[] = [];
      const closings: ClosingReason[] = [];
      let written = 0;
      let writer: NodeJS.Timeout | undefined;
      let closed = false;
      const TOTAL = 400;
      try {
        for await (const m of tail(transport(), { path: file.slice(tmp.dir.length + 1), lines: 2 }, { onRetry: (r) => retries.push(r), retry: { initialDelayMs: 10 } })) {
          if (m.kind.case === "started" && writer === undefined) {
            writer = setInterval(() => {
              if (written >= TOTAL) return;
              appendFileSync(file, Array.from({ length: 10 }, () => `line ${written++}\n`).join(""));
            }, 5);
          }
          if (m.kind.case === "closing") closings.push(m.kind.value.reason);
          if (m.kind.case !== "line") continue;
          texts.push(m.kind.value.text);
          if (!closed && texts.length === 100) {
            closed = true;
            const { streams } = await admin.listStreams({});
            const mine = streams.filter((s) => s.rpc === TAIL);
            expect(mine).toHaveLength(1);
            await admin.closeStream({ id: mine[0]!.id });
          }
          if (texts.length === TOTAL + 2) break;
        }
      } finally {
        clearInterval(writer);
      }
      expect(closings).toEqual([ClosingReason.ADMIN]);
      expect(retries).toHaveLength(1);
      expect(texts).toEqual(["old 1", "old 2", ...Array.from({ length: TOTAL }, (_, i) => `line ${i}`)]);
      // break: the client aborted the call; the server lets go of the stream, the follower, the watcher and the fd.
      const leaveCause = name.startsWith("grpc h2") ? "canceled" : "disconnect";
      await waitFor(() => server.ledger.size === 0, 15_000, "ledger empty after break");
      expect(causesSince(server, before, TAIL)).toEqual({ admin: 1, [leaveCause]: 1 });
      expect(server.ledger.finallyRan - before.finallyRan).toBe(2);
      expect([...heldResources()]).toEqual([]);
      expect(tailHeld()).toEqual({ watchers: 0, openFiles: 0 });
      await waitFor(() => fdsUnder(tmp.dir).length === 0, 5_000, "no fd left open under the tail directory");
    });
  }
});
