/**
 * The end-cause matrix: every way a Subscribe stream can end, over every
 * transport runnel serves, against a real server on 127.0.0.1:0. Each cell
 * proves the promise "a stream never outlives its client": the stream body's
 * finally ran, the ledger, the bus and the stream's resources are back to
 * zero, exactly the expected cause was counted, the kernel shows no server
 * socket in CLOSE_WAIT, and the client saw the status the cause implies
 * (where a client can see anything at all).
 *
 * Waits are bounded only to catch hangs; nothing here asserts timings.
 */
import { Code, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClosingReason, EventService } from "../../gen/runnel/v1/event_pb.js";
import type { RunnelServer } from "../../src/server.js";
import type { EndCause } from "../../src/stream/end-cause.js";
import { createFailingBus, type FailingBus } from "../harness/failing-bus.js";
import { codeOf, expectCleanEnd, snapshot, subscribe, token, type Subscriber } from "../harness/lifecycle.js";
import { startServer, waitFor } from "../harness/server.js";
import { startTcpProxy } from "../harness/tcp-proxy.js";
import { TRANSPORTS, type TransportCase } from "../harness/transports.js";

type EventClient = Client<typeof EventService>;

const encoder = new TextEncoder();

/** A publisher that talks to the server directly (never through a relay under test). */
function publisherFor(server: RunnelServer): EventClient {
  return createClient(EventService, createConnectTransport({ baseUrl: server.url, httpVersion: "2" }));
}

/** Publish `n` small events and wait until `sub` received them all. */
async function publishAndReceive(pub: EventClient, sub: Subscriber, topic: string, n: number): Promise<void> {
  const had = sub.events().length;
  for (let i = 0; i < n; i++) await pub.publish({ topic, data: encoder.encode(`m${i}`) });
  await waitFor(() => sub.events().length >= had + n, 10_000, `${n} events received`);
}

/** Cause a client-side abort produces on the server: HTTP/2 has RST_STREAM(CANCEL), HTTP/1.1 only a closed socket. */
const abortCause = (t: TransportCase): EndCause => (t.http2 ? "canceled" : "disconnect");

describe("1. client aborts mid-stream while the bus is idle", () => {
  let server: RunnelServer;
  let pub: EventClient;
  beforeAll(async () => {
    server = await startServer();
    pub = publisherFor(server);
  });
  afterAll(() => server.shutdown(1_000));

  for (const t of TRANSPORTS) {
    it(`${t.name}: AbortController -> ${abortCause(t)} (client sees Canceled)`, async () => {
      const before = snapshot(server);
      const topic = `abort.${token(t.name)}`;
      const sub = subscribe(createClient(EventService, t.create(server.url)), { topic });
      await sub.subscribed;
      await publishAndReceive(pub, sub, topic, 3);
      sub.abort.abort();
      expect(await codeOf(sub)).toBe(Code.Canceled);
      await expectCleanEnd(server, before, { cause: abortCause(t) });
    });
  }
});

describe("2. client deadline", () => {
  let server: RunnelServer;
  let pub: EventClient;
  beforeAll(async () => {
    server = await startServer();
    pub = publisherFor(server);
  });
  afterAll(() => server.shutdown(1_000));

  for (const t of TRANSPORTS) {
    it(`${t.name}: timeoutMs -> deadline (client sees DeadlineExceeded)`, async () => {
      const before = snapshot(server);
      const topic = `deadline.${token(t.name)}`;
      // The client's deadline timer starts before the server's; the server counts a client that
      // leaves within DEADLINE_SLACK_MS of its deadline as "deadline". Warm the connection first
      // so that connection setup on a loaded machine is not part of that margin.
      const client = createClient(EventService, t.create(server.url));
      await client.publish({ topic, data: encoder.encode("warm") });
      const sub = subscribe(client, { topic }, { timeoutMs: 2_500 });
      await sub.subscribed;
      await publishAndReceive(pub, sub, topic, 2);
      expect(await codeOf(sub)).toBe(Code.DeadlineExceeded);
      await expectCleanEnd(server, before, { cause: "deadline" });
    });
  }
});

describe("3. the client's TCP connection is destroyed", () => {
  let server: RunnelServer;
  let pub: EventClient;
  beforeAll(async () => {
    server = await startServer();
    pub = publisherFor(server);
  });
  afterAll(() => server.shutdown(1_000));

  for (const t of TRANSPORTS) {
    it(`${t.name}: socket destroyed -> disconnect (even where node reports the h2 stream as CANCEL)`, async () => {
      const proxy = await startTcpProxy(server.port);
      try {
        const before = snapshot(server);
        const topic = `destroyed.${token(t.name)}`;
        const sub = subscribe(createClient(EventService, t.create(proxy.url)), { topic });
        await sub.subscribed;
        await publishAndReceive(pub, sub, topic, 2);
        proxy.destroyConnections();
        const err = await sub.done;
        // No status can reach a client whose connection is gone: what it sees is connect-es's own
        // verdict on the broken transport (HTTP/1.1 "aborted", HTTP/2 the stream reset by node).
        expect(err?.code).toBe(t.http2 ? Code.Canceled : Code.Aborted);
        await expectCleanEnd(server, before, { cause: "disconnect" });
      } finally {
        await proxy.close();
      }
    });
  }
});

describe("5. server shutdown", () => {
  for (const t of TRANSPORTS) {
    it(`${t.name}: shutdown() -> Closing(SHUTDOWN, last cursor) + Unavailable, cause shutdown`, async () => {
      const server = await startServer();
      try {
        const pub = publisherFor(server);
        const before = snapshot(server);
        const topic = `shutdown.${token(t.name)}`;
        const sub = subscribe(createClient(EventService, t.create(server.url)), { topic });
        await sub.subscribed;
        await publishAndReceive(pub, sub, topic, 3);
        await server.shutdown();
        expect(await codeOf(sub)).toBe(Code.Unavailable);
        const closing = sub.closing();
        expect(closing?.reason).toBe(ClosingReason.SHUTDOWN);
        expect(closing?.resumeCursor).toBe(sub.events().at(-1)!.cursor);
        expect(sub.messages.at(-1)?.kind.case).toBe("closing");
        await expectCleanEnd(server, before, { cause: "shutdown" });
      } finally {
        await server.shutdown(500);
      }
    });
  }
});

describe("8. the bus fails the subscription (handler error)", () => {
  let server: RunnelServer;
  let bus: FailingBus;
  let pub: EventClient;
  beforeAll(async () => {
    bus = createFailingBus();
    server = await startServer({}, { bus });
    pub = publisherFor(server);
  });
  afterAll(() => server.shutdown(1_000));

  for (const t of TRANSPORTS) {
    it(`${t.name}: DeliverySink.fail(unavailable) -> error (client sees Unavailable)`, async () => {
      const before = snapshot(server);
      const topic = `fail.${token(t.name)}`;
      const sub = subscribe(createClient(EventService, t.create(server.url)), { topic });
      await sub.subscribed;
      await publishAndReceive(pub, sub, topic, 2);
      expect(bus.failSubscriptions(topic)).toBe(1);
      expect(await codeOf(sub)).toBe(Code.Unavailable);
      await expectCleanEnd(server, before, { cause: "error" });
    });
  }
});


/** Where the compiled fixture lives: `npm run build` puts it there. */
const CHILD = new URL("../../dist/test/fixtures/subscribe-child.js", import.meta.url).pathname;

/** Run the subscriber fixture in its own process; resolves once it printed SUBSCRIBED. */
async function spawnSubscriber(url: string, t: TransportCase, topic: string): Promise<{ child: ChildProcess; lines: string[] }> {
  const child = spawn(process.execPath, [CHILD, url, t.name, topic], { stdio: ["ignore", "pipe", "inherit"] });
  const lines: string[] = [];
  createInterface({ input: child.stdout! }).on("line", (line) => lines.push(line));
  await waitFor(() => lines.some((l) => l.startsWith("SUBSCRIBED ")) || child.exitCode !== null, 15_000, "child subscribed");
  expect(lines.some((l) => l.startsWith("SUBSCRIBED "))).toBe(true);
  return { child, lines };
}

describe("4. the client process is SIGKILLed", () => {
  let server: RunnelServer;
  let pub: EventClient;
  beforeAll(async () => {
    expect(existsSync(CHILD), `${CHILD} is missing: run \`npm run build\` before this test`).toBe(true);
    server = await startServer();
    pub = publisherFor(server);
  });
  afterAll(() => server.shutdown(1_000));

  for (const t of TRANSPORTS) {
    it(`${t.name}: kill -9 -> disconnect`, async () => {
      const before = snapshot(server);
      const topic = `killed.${token(t.name)}`;
      const { child, lines } = await spawnSubscriber(server.url, t, topic);
      await pub.publish({ topic, data: encoder.encode("one") });
      await waitFor(() => lines.includes("EVENT 1"), 10_000, "child got the event");
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGKILL");
      await exited;
      await expectCleanEnd(server, before, { cause: "disconnect" });
    });
  }
});

/**
 * A payload that fills socket buffers quickly. Random, because connect-es
 * compresses messages (gzip) when the client accepts it: 64 KiB of one byte
 * value goes over the wire as ~100 bytes and would never back anything up.
 */
const BIG = new Uint8Array(randomBytes(64 * 1024));

/** Publish big events until `ended()` (the server gave up on the stream), with a cap against a hang; returns how many. */
async function publishUntil(pub: EventClient, topic: string, ended: () => boolean, opts: { cap?: number; pauseMs?: number } = {}): Promise<number> {
  const cap = opts.cap ?? 5_000;
  let n = 0;
  while (!ended()) {
    if (n >= cap) throw new Error(`stream still not ended after ${cap} events`);
    await pub.publish({ topic, data: BIG });
    n++;
    if (opts.pauseMs !== undefined) await new Promise((r) => setTimeout(r, opts.pauseMs));
  }
  return n;
}

/**
 * A subscriber behind a relay that stops taking data from the server once it
 * has two events; big events are then published until the server gives up on
 * the stream (its bus subscription is released).
 */
async function stallUntilServerGivesUp(server: RunnelServer, pub: EventClient, t: TransportCase, prefix: string) {
  const proxy = await startTcpProxy(server.port);
  const before = snapshot(server);
  const topic = `${prefix}.${token(t.name)}`;
  const sub = subscribe(createClient(EventService, t.create(proxy.url)), { topic });
  await sub.subscribed;
  await publishAndReceive(pub, sub, topic, 2);
  proxy.stopServerToClient();
  await publishUntil(pub, topic, () => server.bus.stats().subscriptionsActive === 0);
  return { proxy, before, sub };
}

describe("6. slow consumer over its queue bound (the reader stops taking data)", () => {
  // A relay that stops reading from the server: connect-es clients read ahead, so only
  // a stalled TCP path (or a raw stream, below) makes the server's writes back up.
  let server: RunnelServer;
  let pub: EventClient;
  beforeAll(async () => {
    server = await startServer({ maxQueueEvents: 50, closeFlushMs: 30_000, retentionBytes: 16 * 1024 * 1024 });
    pub = publisherFor(server);
  });
  afterAll(() => server.shutdown(1_000));

  for (const t of TRANSPORTS) {
    it(`${t.name}: reader resumes later -> Closing(SLOW_CONSUMER, last cursor) + ResourceExhausted, cause slow_consumer`, async () => {
      // The server ends the stream (and releases its bus subscription) when the queue overflows.
      const { proxy, before, sub } = await stallUntilServerGivesUp(server, pub, t, "slow");
      try {
        expect(sub.closing()).toBeUndefined();
        proxy.resumeServerToClient();
        expect(await codeOf(sub)).toBe(Code.ResourceExhausted);
        const closing = sub.closing();
        expect(closing?.reason).toBe(ClosingReason.SLOW_CONSUMER);
        expect(closing?.resumeCursor).toBe(sub.events().at(-1)!.cursor);
        expect(sub.messages.at(-1)?.kind.case).toBe("closing");
        await expectCleanEnd(server, before, { cause: "slow_consumer" });
      } finally {
        await proxy.close();
      }
    });
  }
});

describe("6b. slow consumer that never reads again: the flush bound cuts the transport", () => {
  let server: RunnelServer;
  let pub: EventClient;
  beforeAll(async () => {
    server = await startServer({ maxQueueEvents: 50, closeFlushMs: 200, retentionBytes: 16 * 1024 * 1024 });
    pub = publisherFor(server);
  });
  afterAll(() => server.shutdown(1_000));

  for (const t of TRANSPORTS) {
    it(`${t.name}: Closing cannot flush -> cut after closeFlushMs, cause slow_consumer`, async () => {
      const { proxy, before, sub } = await stallUntilServerGivesUp(server, pub, t, "stuck");
      try {
        // Nothing is read: the stream must still end, by the flush bound.
        await expectCleanEnd(server, before, { cause: "slow_consumer" });
        await proxy.close();
        // The client never gets to read its Closing; whatever it sees, it is not a clean end.
        expect(await codeOf(sub)).not.toBe("ok");
      } finally {
        await proxy.close();
      }
    });
  }
});

describe("7. silent peer (a relay that stops forwarding both ways, without closing)", () => {
  // HTTP/2: PING keepalive finds it with the bus idle. HTTP/1.1 has no PING: events keep
  // flowing until a write stays unflushed past writeTimeoutMs; the queue bound is set far
  // above what is published so that the write bound is the one that trips.
  let server: RunnelServer;
  let pub: EventClient;
  beforeAll(async () => {
    server = await startServer({
      pingIntervalMs: 200,
      pingTimeoutMs: 300,
      writeTimeoutMs: 500,
      maxQueueEvents: 100_000,
      maxQueueBytes: 1024 * 1024 * 1024,
      retentionBytes: 16 * 1024 * 1024,
    });
    pub = publisherFor(server);
  });
  afterAll(() => server.shutdown(1_000));

  for (const t of TRANSPORTS) {
    const how = t.http2 ? "unanswered PING" : "write unflushed past writeTimeoutMs";
    it(`${t.name}: ${how} -> dead_peer`, async () => {
      const proxy = await startTcpProxy(server.port);
      try {
        const before = snapshot(server);
        const topic = `silent.${token(t.name)}`;
        const sub = subscribe(createClient(EventService, t.create(proxy.url)), { topic });
        await sub.subscribed;
        await publishAndReceive(pub, sub, topic, 2);
        proxy.silence();
        if (!t.http2) {
          await publishUntil(pub, topic, () => server.bus.stats().subscriptionsActive === 0, { pauseMs: 5 });
        }
        await expectCleanEnd(server, before, { cause: "dead_peer" });
        await proxy.close();
        expect(await codeOf(sub)).not.toBe("ok");
      } finally {
        await proxy.close();
      }
    });
  }
});
