/**
 * The end-cause matrix for Tail on an idle file: the same rows as Subscribe's
 * (test/harness/end-cause-matrix.ts), over every transport. Items are lines
 * appended to a real file in a temp directory; the source is the stream's
 * follower of the shared file source, and every cell also proves that no
 * file watcher and no followed file is left open (expectCleanEnd checks the
 * process's tail watchers and open files, and /proc/self/fd is compared
 * around the whole file below).
 */
import { Code, type Transport } from "@connectrpc/connect";
import { randomBytes } from "node:crypto";
import { appendFileSync, existsSync, writeFileSync } from "node:fs";
import { create, toBinary } from "@bufbuild/protobuf";
import http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TailRequestSchema } from "../../gen/runnel/v1/tail_pb.js";
import { connectH2, grpcFrame } from "../harness/raw-grpc.js";
import { endCauseMatrix, type MatrixStream } from "../harness/end-cause-matrix.js";
import { openFdCount } from "../harness/procfs.js";
import { startServer, waitFor } from "../harness/server.js";
import { fdsUnder, startTail, TAIL, tailClient, tailHeld, tempTailDir, warmInotify, type Tailer } from "../harness/tailer.js";

const tmp = tempTailDir("runnel-tail-matrix-");
let fdsBefore = 0;

beforeAll(() => {
  warmInotify(tmp.dir);
  fdsBefore = openFdCount();
});
afterAll(() => tmp.remove());

/** A line that fills socket buffers quickly: random, so gzip cannot shrink it much; under the 64 KiB line bound. */
function bigLine(): string {
  return `${randomBytes(45 * 1024).toString("base64")}\n`;
}

function asStream(tailer: Tailer): MatrixStream & { tailer: Tailer } {
  return {
    tailer,
    opened: tailer.started,
    done: tailer.done,
    abort: tailer.abort,
    lastCursor: () => tailer.lines().at(-1)?.cursor,
    closing: () => tailer.closing(),
    lastCase: () => tailer.messages.at(-1)?.kind.case,
  };
}

function open(transport: Transport, name: string, options: { timeoutMs?: number } = {}): MatrixStream & { tailer: Tailer } {
  const file = tmp.file(name);
  if (!existsSync(file)) writeFileSync(file, "");
  return asStream(startTail(tailClient(transport), { path: name }, options));
}

endCauseMatrix({
  rpc: TAIL,
  items: "lines",
  serverConfig: () => ({ tailDirs: [tmp.dir], tailPollMs: 100 }),
  open,
  async produce(_server, stream, name, n) {
    const tailer = (stream as ReturnType<typeof open>).tailer;
    const had = tailer.lines().length;
    appendFileSync(tmp.file(name), Array.from({ length: n }, (_, i) => `m${i}\n`).join(""));
    await waitFor(() => tailer.lines().length >= had + n, 10_000, `${n} lines received`);
  },
  async produceBig(_server, name) {
    appendFileSync(tmp.file(name), bigLine());
    await new Promise((r) => setImmediate(r));
  },
  sourceReleased: () => tailHeld().watchers === 0 && tailHeld().openFiles === 0,
  async warm(_server, transport) {
    await tailClient(transport).listFiles({});
  },
  childArgs: (url, t, name) => {
    const file = tmp.file(name);
    if (!existsSync(file)) writeFileSync(file, "");
    return [new URL("../../dist/test/fixtures/tail-child.js", import.meta.url).pathname, url, t.name, name];
  },
  failure: {
    title: "the handler refuses the request (an invalid grep expression)",
    code: Code.InvalidArgument,
    async run(_server, transport, name) {
      writeFileSync(tmp.file(name), "x\n");
      return asStream(startTail(tailClient(transport), { path: name, grep: "([" }));
    },
  },
});

it("leaves no file descriptor behind over the whole matrix (/proc/self/fd)", async () => {
  // Tail's own fds are all closed (checked per cell); the HTTP sockets of the finished servers
  // close asynchronously, so wait for the count to settle back to where it started.
  expect(fdsUnder(tmp.dir)).toEqual([]);
  await waitFor(() => openFdCount() <= fdsBefore, 15_000, `fds back to ${fdsBefore} (now ${openFdCount()})`);
  expect(tailHeld()).toEqual({ watchers: 0, openFiles: 0 });
});

describe("Tail is served on the lean write path", () => {
  for (const lean of [true, false]) {
    it(lean ? "lean path: gzip accepted by the client, responses still identity" : "control, connect-es pipeline: grpc-encoding gzip", async () => {
      const dir = tempTailDir("runnel-tail-lean-");
      writeFileSync(dir.file("lean.log"), "one\n");
      const server = await startServer({ tailDirs: [dir.dir], leanSubscribe: lean });
      const session = await connectH2(server.url);
      try {
        const req = session.request({
          ":method": "POST",
          ":path": "/runnel.v1.TailService/Tail",
          "content-type": "application/grpc",
          "grpc-accept-encoding": "gzip",
          te: "trailers",
        });
        req.end(grpcFrame(toBinary(TailRequestSchema, create(TailRequestSchema, { path: "lean.log", lines: 1 }))));
        const headers = await new Promise<http2.IncomingHttpHeaders>((resolve) => req.once("response", resolve));
        expect(headers[":status"]).toBe(200);
        expect(headers["grpc-encoding"]).toBe(lean ? undefined : "gzip");
        req.close(http2.constants.NGHTTP2_CANCEL);
        await waitFor(() => server.ledger.size === 0, 10_000, "stream released");
      } finally {
        session.close();
        await server.shutdown(1_000);
        dir.remove();
      }
    });
  }
});
