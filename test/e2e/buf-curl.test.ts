/**
 * `buf curl` (the binary from the @bufbuild/buf package) against a running
 * server, over Connect, gRPC (HTTP/2 prior knowledge) and gRPC-web, with no
 * --schema: everything it knows it learns through server reflection.
 * Publish, Subscribe and health Check answer; `timeout -s INT` on a
 * streaming call releases the stream on the server.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunnelServer } from "../../src/server.js";
import type { EndCause } from "../../src/stream/end-cause.js";
import { ROOT } from "../harness/built.js";
import { expectCleanEnd, snapshot } from "../harness/lifecycle.js";
import { startServer, waitFor } from "../harness/server.js";

const BUF = join(ROOT, "node_modules", "@bufbuild", "buf", "bin", "buf");

/**
 * One way of calling: buf's flags, what the server sees for a streaming call
 * (buf curl 1.74 streams over cleartext HTTP/2 even without
 * --http2-prior-knowledge), and so how its leaving looks (RST_STREAM CANCEL).
 */
const PROTOCOLS: readonly { name: string; flags: string[]; seenAs: string; abortCause: EndCause }[] = [
  { name: "connect", flags: ["--protocol", "connect"], seenAs: "connect h2", abortCause: "canceled" },
  { name: "grpc", flags: ["--protocol", "grpc", "--http2-prior-knowledge"], seenAs: "grpc h2", abortCause: "canceled" },
  { name: "grpcweb", flags: ["--protocol", "grpcweb"], seenAs: "grpc-web h2", abortCause: "canceled" },
];

interface Run {
  stdout: string;
  stderr: string;
  code: number | null;
}

/** Run a command to completion (`timeout` included), collecting its output. */
function run(command: string, args: string[]): { done: Promise<Run>; output: () => string; signal: (s: NodeJS.Signals) => void } {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const done = new Promise<Run>((resolve) => child.once("close", (code) => resolve({ stdout, stderr, code })));
  return { done, output: () => stdout, signal: (s) => child.kill(s) };
}

/** Every JSON object buf printed (one per message, pretty-printed). */
function objects(text: string): Record<string, unknown>[] {
  return text
    .split(/\n(?=\{)/)
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => JSON.parse(s) as Record<string, unknown>);
}

describe("buf curl without --schema (server reflection)", () => {
  let server: RunnelServer;
  beforeAll(async () => {
    server = await startServer({ heartbeatMs: 60_000 });
  });
  afterAll(() => server.shutdown(1_000));

  const curl = (flags: string[], method: string, data: unknown) => run(BUF, ["curl", ...flags, "--data", JSON.stringify(data), `${server.url}/${method}`]);

  for (const p of PROTOCOLS) {
    it(`${p.name}: Publish, health Check, and --list-methods`, async () => {
      const published = await curl(p.flags, "runnel.v1.EventService/Publish", { topic: `buf.${p.name}`, data: "aGVsbG8=" }).done;
      expect(published.stderr).toBe("");
      expect(published.code).toBe(0);
      expect(objects(published.stdout)).toEqual([{ seq: "1", cursor: expect.any(String), time: expect.any(String) }]);

      const health = await curl(p.flags, "grpc.health.v1.Health/Check", {}).done;
      expect(objects(health.stdout)).toEqual([{ status: "SERVING" }]);

      const unknown = await curl(p.flags, "grpc.health.v1.Health/Check", { service: "no.such.Service" }).done;
      expect(unknown.code).not.toBe(0);
      expect(unknown.stderr).toMatch(/"code": "not_found"/);

      const list = await run(BUF, ["curl", ...p.flags, "--list-methods", server.url]).done;
      expect(list.stdout.split("\n")).toEqual(expect.arrayContaining(["runnel.v1.EventService/Subscribe", "runnel.v1.EventService/Publish", "runnel.v1.EventService/PublishBatch", "grpc.health.v1.Health/Watch"]));
    });

    it(`${p.name}: Subscribe streams events; timeout -s INT releases the stream on the server`, async () => {
      const before = snapshot(server);
      const topic = `buf.sub.${p.name}`;
      const sub = run("timeout", ["-s", "INT", "30", BUF, "curl", ...p.flags, "--data", JSON.stringify({ topic, earliest: true }), `${server.url}/runnel.v1.EventService/Subscribe`]);
      await waitFor(() => server.ledger.size === 1, 15_000, "buf's stream on the server");
      expect(server.ledger.list()[0]!.protocol).toBe(p.seenAs);
      const publish = await curl(p.flags, "runnel.v1.EventService/Publish", { topic, data: "d29ybGQ=" }).done;
      expect(publish.code).toBe(0);
      await waitFor(() => sub.output().includes("d29ybGQ="), 10_000, "the event in buf's output");
      // SIGINT to `timeout` is passed on to buf, exactly as when its time runs out; sent now rather than waited for.
      sub.signal("SIGINT");
      const result = await sub.done;
      const messages = objects(result.stdout);
      expect(Object.keys(messages[0]!)).toEqual(["subscribed"]);
      expect(messages[1]).toEqual({ event: expect.objectContaining({ topic, seq: "1", data: "d29ybGQ=" }) });
      expect(result.stderr).toMatch(/canceled/);
      await expectCleanEnd(server, before, { cause: p.abortCause });
    });
  }

  it("Tail over every protocol (runs once the server serves TailService)", async (ctx) => {
    const dir = mkdtempSync(join(tmpdir(), "runnel-buf-"));
    writeFileSync(join(dir, "app.log"), "first line\nsecond line\n");
    const tailing = await startServer({ tailDirs: [dir] });
    try {
      const list = await run(BUF, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "--list-methods", tailing.url]).done;
      if (!list.stdout.includes("runnel.v1.TailService/Tail")) ctx.skip();
      for (const p of PROTOCOLS) {
        const r = await run(BUF, ["curl", ...p.flags, "--data", JSON.stringify({ path: "app.log", follow: false }), `${tailing.url}/runnel.v1.TailService/Tail`]).done;
        expect({ protocol: p.name, code: r.code, stderr: r.stderr }).toEqual({ protocol: p.name, code: 0, stderr: "" });
        const lines = objects(r.stdout).flatMap((m) => ("line" in m ? [(m.line as { text: string }).text] : []));
        expect(lines).toEqual(["first line", "second line"]);
      }
    } finally {
      await tailing.shutdown(1_000);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("timeout -s INT on its own (the time runs out) releases the stream too", async () => {
    const before = snapshot(server);
    const sub = run("timeout", ["-s", "INT", "3", BUF, "curl", "--protocol", "grpc", "--http2-prior-knowledge", "--data", '{"topic":"buf.timeout"}', `${server.url}/runnel.v1.EventService/Subscribe`]);
    await waitFor(() => server.ledger.size === 1, 15_000, "buf's stream on the server");
    const result = await sub.done;
    expect(result.code).toBe(124);
    await expectCleanEnd(server, before, { cause: "canceled" });
  });
});
