/**
 * The end-cause matrix, for any kind of stream: every way a stream can end,
 * over every transport runnel serves, against a real server on 127.0.0.1:0.
 * Each cell proves the promise "a stream never outlives its client": the
 * stream body's finally ran, the ledger, the stream's sources and resources
 * are back to zero, exactly the expected cause was counted, the kernel shows
 * no server socket in CLOSE_WAIT, and the client saw the status the cause
 * implies (where a client can see anything at all).
 *
 * A stream kind (Subscribe, Tail...) says how to open its stream, how to
 * make items flow to it, and how to tell its source was released; the rows
 * are the same for every kind. Waits are bounded only to catch hangs.
 */
import { Code, type ConnectError, type Transport } from "@connectrpc/connect";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClosingReason } from "../../gen/runnel/v1/event_pb.js";
import type { Config } from "../../src/config.js";
import type { RunnelServer, ServerParts } from "../../src/server.js";
import type { EndCause } from "../../src/stream/end-cause.js";
import { expectCleanEnd, snapshot, token } from "./lifecycle.js";
import { startServer, waitFor } from "./server.js";
import { startTcpProxy } from "./tcp-proxy.js";
import { TRANSPORTS, type TransportCase } from "./transports.js";

/** A stream under test, as the matrix sees it. */
export interface MatrixStream {
  /** Resolves once the stream's first message (Subscribed, TailStarted) arrived. */
  readonly opened: Promise<unknown>;
  /** Resolves when the call ended: undefined for OK, else the error (never rejects). */
  readonly done: Promise<ConnectError | undefined>;
  readonly abort: AbortController;
  /** Cursor of the last item received. */
  lastCursor(): string | undefined;
  closing(): { reason: ClosingReason; resumeCursor: string } | undefined;
  /** The oneof case of the last message received. */
  lastCase(): string | undefined;
}

/** How the matrix drives one kind of stream. */
export interface MatrixKind {
  /** The rpc as the ledger labels it. */
  readonly rpc: string;
  /** What the items are called in test names ("events", "lines"). */
  readonly items: string;
  /** Settings every server of this kind's matrix needs (tail directories...). */
  serverConfig?(): Partial<Config>;
  /** Open a stream on `name` (a topic, a file) through `transport`. */
  open(transport: Transport, name: string, options?: { timeoutMs?: number }): MatrixStream;
  /** Make `n` small items flow to `stream` and wait until it received them. */
  produce(server: RunnelServer, stream: MatrixStream, name: string, n: number): Promise<void>;
  /** One big item (about 64 KiB, incompressible), sent without waiting for anyone to receive it. */
  produceBig(server: RunnelServer, name: string): Promise<void>;
  /** Whether the stream's source (bus subscription, file follower) was released: what a stalled cell waits for. */
  sourceReleased(server: RunnelServer): boolean;
  /** A unary call through `transport`, so its connection is warm before a deadline starts. */
  warm(server: RunnelServer, transport: Transport, name: string): Promise<void>;
  /** Node arguments of a client process that opens the stream and prints READY, then ITEM per item. */
  childArgs(url: string, transport: TransportCase, name: string): string[];
  /** Row 8: how a stream of this kind fails in its handler, and the code its client then sees. */
  readonly failure: {
    readonly title: string;
    readonly code: Code;
    parts?(): ServerParts;
    /** Open a stream through `transport` on `name` and make it fail. */
    run(server: RunnelServer, transport: Transport, name: string): Promise<MatrixStream>;
  };
}

/** The code a finished stream saw (OK when it ended cleanly). */
async function codeOf(stream: MatrixStream): Promise<Code | "ok"> {
  const e = await stream.done;
  return e === undefined ? "ok" : e.code;
}

/** Cause a client-side abort produces on the server: HTTP/2 has RST_STREAM(CANCEL), HTTP/1.1 only a closed socket. */
const abortCause = (t: TransportCase): EndCause => (t.http2 ? "canceled" : "disconnect");

/** Produce big items until `ended()` (the server gave up on the stream), with a cap against a hang. */
async function produceUntil(kind: MatrixKind, server: RunnelServer, name: string, ended: () => boolean, opts: { cap?: number; pauseMs?: number } = {}): Promise<number> {
  const cap = opts.cap ?? 5_000;
  let n = 0;
  while (!ended()) {
    if (n >= cap) throw new Error(`stream still not ended after ${cap} big items`);
    await kind.produceBig(server, name);
    n++;
    if (opts.pauseMs !== undefined) await new Promise((r) => setTimeout(r, opts.pauseMs));
  }
  return n;
}

/** Run every row of the matrix for `kind`. */
export function endCauseMatrix(kind: MatrixKind): void {
  const rpc = kind.rpc;
  const serve = (config: Partial<Config> = {}, parts: ServerParts = {}): Promise<RunnelServer> => startServer({ ...kind.serverConfig?.(), ...config }, parts);

  /**
   * A stream behind a relay that stops taking data from the server once it
   * has two items; big items are then produced until the server gives up on
   * the stream (its source is released).
   */
  async function stallUntilServerGivesUp(server: RunnelServer, t: TransportCase, prefix: string) {
    const proxy = await startTcpProxy(server.port);
    const before = snapshot(server, rpc);
    const name = `${prefix}.${token(t.name)}`;
    const stream = kind.open(t.create(proxy.url), name);
    await stream.opened;
    await kind.produce(server, stream, name, 2);
    proxy.stopServerToClient();
    await produceUntil(kind, server, name, () => kind.sourceReleased(server));
    return { proxy, before, stream };
  }

  describe("1. client aborts mid-stream while the source is idle", () => {
    let server: RunnelServer;
    beforeAll(async () => {
      server = await serve();
    });
    afterAll(() => server.shutdown(1_000));

    for (const t of TRANSPORTS) {
      it(`${t.name}: AbortController -> ${abortCause(t)} (client sees Canceled)`, async () => {
        const before = snapshot(server, rpc);
        const name = `abort.${token(t.name)}`;
        const stream = kind.open(t.create(server.url), name);
        await stream.opened;
        await kind.produce(server, stream, name, 3);
        stream.abort.abort();
        expect(await codeOf(stream)).toBe(Code.Canceled);
        await expectCleanEnd(server, before, { cause: abortCause(t), rpc });
      });
    }
  });

  describe("2. client deadline", () => {
    let server: RunnelServer;
    beforeAll(async () => {
      server = await serve();
    });
    afterAll(() => server.shutdown(1_000));

    for (const t of TRANSPORTS) {
      it(`${t.name}: timeoutMs -> deadline (client sees DeadlineExceeded)`, async () => {
        const before = snapshot(server, rpc);
        const name = `deadline.${token(t.name)}`;
        // The client's deadline timer starts before the server's; the server counts a client that
        // leaves within DEADLINE_SLACK_MS of its deadline as "deadline". Warm the connection first
        // so that connection setup on a loaded machine is not part of that margin.
        const transport = t.create(server.url);
        await kind.warm(server, transport, name);
        const stream = kind.open(transport, name, { timeoutMs: 2_500 });
        await stream.opened;
        await kind.produce(server, stream, name, 2);
        expect(await codeOf(stream)).toBe(Code.DeadlineExceeded);
        await expectCleanEnd(server, before, { cause: "deadline", rpc });
      });
    }
  });

  describe("3. the client's TCP connection is destroyed", () => {
    let server: RunnelServer;
    beforeAll(async () => {
      server = await serve();
    });
    afterAll(() => server.shutdown(1_000));

    for (const t of TRANSPORTS) {
      it(`${t.name}: socket destroyed -> disconnect (even where node reports the h2 stream as CANCEL)`, async () => {
        const proxy = await startTcpProxy(server.port);
        try {
          const before = snapshot(server, rpc);
          const name = `destroyed.${token(t.name)}`;
          const stream = kind.open(t.create(proxy.url), name);
          await stream.opened;
          await kind.produce(server, stream, name, 2);
          proxy.destroyConnections();
          const err = await stream.done;
          // No status can reach a client whose connection is gone: what it sees is connect-es's own
          // verdict on the broken transport (HTTP/1.1 "aborted", HTTP/2 the stream reset by node).
          expect(err?.code).toBe(t.http2 ? Code.Canceled : Code.Aborted);
          await expectCleanEnd(server, before, { cause: "disconnect", rpc });
        } finally {
          await proxy.close();
        }
      });
    }
  });

  describe("4. the client process is SIGKILLed", () => {
    let server: RunnelServer;
    beforeAll(async () => {
      server = await serve();
    });
    afterAll(() => server.shutdown(1_000));

    /** Run the client fixture in its own process; resolves once it printed READY. */
    async function spawnClient(t: TransportCase, name: string): Promise<{ child: ChildProcess; lines: string[] }> {
      const args = kind.childArgs(server.url, t, name);
      expect(existsSync(args[0]!), `${args[0]} is missing: run \`npm run build\` before this test`).toBe(true);
      const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
      const lines: string[] = [];
      createInterface({ input: child.stdout! }).on("line", (line) => lines.push(line));
      await waitFor(() => lines.some((l) => l.startsWith("READY")) || child.exitCode !== null, 15_000, "child ready");
      expect(lines.some((l) => l.startsWith("READY"))).toBe(true);
      return { child, lines };
    }

    for (const t of TRANSPORTS) {
      it(`${t.name}: kill -9 -> disconnect`, async () => {
        const before = snapshot(server, rpc);
        const name = `killed.${token(t.name)}`;
        const { child, lines } = await spawnClient(t, name);
        await kind.produceBig(server, name);
        await waitFor(() => lines.some((l) => l.startsWith("ITEM")), 10_000, `child got one of the ${kind.items}`);
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGKILL");
        await exited;
        await expectCleanEnd(server, before, { cause: "disconnect", rpc });
      });
    }
  });

  describe("5. server shutdown", () => {
    for (const t of TRANSPORTS) {
      it(`${t.name}: shutdown() -> Closing(SHUTDOWN, last cursor) + Unavailable, cause shutdown`, async () => {
        const server = await serve();
        try {
          const before = snapshot(server, rpc);
          const name = `shutdown.${token(t.name)}`;
          const stream = kind.open(t.create(server.url), name);
          await stream.opened;
          await kind.produce(server, stream, name, 3);
          await server.shutdown();
          expect(await codeOf(stream)).toBe(Code.Unavailable);
          const closing = stream.closing();
          expect(closing?.reason).toBe(ClosingReason.SHUTDOWN);
          expect(closing?.resumeCursor).toBe(stream.lastCursor());
          expect(stream.lastCase()).toBe("closing");
          await expectCleanEnd(server, before, { cause: "shutdown", rpc });
        } finally {
          await server.shutdown(500);
        }
      });
    }
  });

  describe(`8. ${kind.failure.title}`, () => {
    let server: RunnelServer;
    beforeAll(async () => {
      server = await serve({}, kind.failure.parts?.() ?? {});
    });
    afterAll(() => server.shutdown(1_000));

    for (const t of TRANSPORTS) {
      it(`${t.name}: -> error (client sees ${Code[kind.failure.code]})`, async () => {
        const before = snapshot(server, rpc);
        const stream = await kind.failure.run(server, t.create(server.url), `fail.${token(t.name)}`);
        expect(await codeOf(stream)).toBe(kind.failure.code);
        await expectCleanEnd(server, before, { cause: "error", rpc });
      });
    }
  });

  describe("6. slow consumer over its queue bound (the reader stops taking data)", () => {
    // A relay that stops reading from the server: connect-es clients read ahead, so only
    // a stalled TCP path makes the server's writes back up.
    let server: RunnelServer;
    beforeAll(async () => {
      server = await serve({ maxQueueEvents: 50, closeFlushMs: 30_000, retentionBytes: 16 * 1024 * 1024 });
    });
    afterAll(() => server.shutdown(1_000));

    for (const t of TRANSPORTS) {
      it(`${t.name}: reader resumes later -> Closing(SLOW_CONSUMER, last cursor) + ResourceExhausted, cause slow_consumer`, async () => {
        // The server ends the stream (and releases its source) when the queue overflows.
        const { proxy, before, stream } = await stallUntilServerGivesUp(server, t, "slow");
        try {
          expect(stream.closing()).toBeUndefined();
          proxy.resumeServerToClient();
          expect(await codeOf(stream)).toBe(Code.ResourceExhausted);
          const closing = stream.closing();
          expect(closing?.reason).toBe(ClosingReason.SLOW_CONSUMER);
          expect(closing?.resumeCursor).toBe(stream.lastCursor());
          expect(stream.lastCase()).toBe("closing");
          await expectCleanEnd(server, before, { cause: "slow_consumer", rpc });
        } finally {
          await proxy.close();
        }
      });
    }
  });

  describe("6b. slow consumer that never reads again: the flush bound cuts the transport", () => {
    let server: RunnelServer;
    beforeAll(async () => {
      server = await serve({ maxQueueEvents: 50, closeFlushMs: 200, retentionBytes: 16 * 1024 * 1024 });
    });
    afterAll(() => server.shutdown(1_000));

    for (const t of TRANSPORTS) {
      it(`${t.name}: Closing cannot flush -> cut after closeFlushMs, cause slow_consumer`, async () => {
        const { proxy, before, stream } = await stallUntilServerGivesUp(server, t, "stuck");
        try {
          // Nothing is read: the stream must still end, by the flush bound.
          await expectCleanEnd(server, before, { cause: "slow_consumer", rpc });
          await proxy.close();
          // The client never gets to read its Closing; whatever it sees, it is not a clean end.
          expect(await codeOf(stream)).not.toBe("ok");
        } finally {
          await proxy.close();
        }
      });
    }
  });

  describe("7. silent peer (a relay that stops forwarding both ways, without closing)", () => {
    // HTTP/2: PING keepalive finds it with the source idle. HTTP/1.1 has no PING: items keep
    // flowing until a write stays unflushed past writeTimeoutMs; the queue bound is set far
    // above what is produced so that the write bound is the one that trips.
    let server: RunnelServer;
    beforeAll(async () => {
      server = await serve({
        pingIntervalMs: 200,
        pingTimeoutMs: 300,
        writeTimeoutMs: 500,
        maxQueueEvents: 100_000,
        maxQueueBytes: 1024 * 1024 * 1024,
        retentionBytes: 16 * 1024 * 1024,
      });
    });
    afterAll(() => server.shutdown(1_000));

    for (const t of TRANSPORTS) {
      const how = t.http2 ? "unanswered PING" : "write unflushed past writeTimeoutMs";
      it(`${t.name}: ${how} -> dead_peer`, async () => {
        const proxy = await startTcpProxy(server.port);
        try {
          const before = snapshot(server, rpc);
          const name = `silent.${token(t.name)}`;
          const stream = kind.open(t.create(proxy.url), name);
          await stream.opened;
          await kind.produce(server, stream, name, 2);
          proxy.silence();
          if (!t.http2) {
            await produceUntil(kind, server, name, () => kind.sourceReleased(server), { pauseMs: 5 });
          }
          await expectCleanEnd(server, before, { cause: "dead_peer", rpc });
          await proxy.close();
          expect(await codeOf(stream)).not.toBe("ok");
        } finally {
          await proxy.close();
        }
      });
    }
  });
}
