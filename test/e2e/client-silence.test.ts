/**
 * The resumable client's silence watchdog: a path that goes quiet without
 * closing (a relay that stops forwarding both ways, nothing closed) would
 * leave a `for await` waiting forever. The client aborts the call after three
 * missed heartbeats (+ 1 s), resumes through a new connection from its last
 * cursor, and nothing is lost or repeated; the server, meanwhile, finds the
 * silent peer by its own bounds (HTTP/2 PING, HTTP/1.1 write timeout) and
 * lets go of it. `silenceTimeoutMs: 0` turns the watchdog off; an explicit
 * bound applies before the server said anything too; `runnel subscribe`
 * (HTTP/2, with the transport's PING keepalive) comes back by itself.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { spawn } from "node:child_process";
import { appendFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { subscribe, tail, type RetryInfo } from "../../src/client/index.js";
import { EventService, type Event } from "../../gen/runnel/v1/event_pb.js";
import type { Config } from "../../src/config.js";
import type { RunnelServer } from "../../src/server.js";
import { CLI, ensureBuilt } from "../harness/built.js";
import { follow } from "../harness/follow.js";
import { causesSince, snapshot, SUBSCRIBE } from "../harness/lifecycle.js";
import { startServer, waitFor } from "../harness/server.js";
import { TAIL, tempTailDir } from "../harness/tailer.js";
import { startTcpProxy, type TcpProxy } from "../harness/tcp-proxy.js";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const seqs = (events: readonly Event[]): bigint[] => events.map((e) => e.seq);
const range = (from: number, to: number): bigint[] => Array.from({ length: to - from + 1 }, (_, i) => BigInt(from + i));

/** Heartbeats the tests ask for, and the bound the client derives from them (3 x 500 + 1 000). */
const HEARTBEAT_MS = 500;
const BOUND_MS = 2_500;

/**
 * A server that finds a silent peer quickly: HTTP/2 by an unanswered PING,
 * HTTP/1.1 by a write left unflushed past writeTimeoutMs (queue bounds far
 * above what is produced, so that the write bound is the one that trips).
 */
const SERVER: Partial<Config> = {
  heartbeatMinMs: 100,
  pingIntervalMs: 200,
  pingTimeoutMs: 300,
  writeTimeoutMs: 500,
  maxQueueEvents: 100_000,
  maxQueueBytes: 1024 * 1024 * 1024,
  retryAfterMs: 50,
};

/**
 * The two connect-node transports. Over HTTP/2 the dead session belongs to the
 * transport: with pingIntervalMs set, the call after the watchdog's abort
 * verifies the session with a PING and, unanswered, opens a new one. The PING
 * timeout is set longer than the watchdog's bound, so that the watchdog (not
 * connect-node's keepalive on the open stream) is what ends the silent call.
 */
const TRANSPORTS = [
  { name: "grpc h2", http2: true, create: (baseUrl: string) => createGrpcTransport({ baseUrl, pingIntervalMs: 1_000, pingTimeoutMs: 5_000 }) },
  { name: "connect http/1.1", http2: false, create: (baseUrl: string) => createConnectTransport({ baseUrl, httpVersion: "1.1" }) },
] as const;

const publisher = (server: RunnelServer) => createClient(EventService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));

const expectSilenceRetry = (retries: readonly RetryInfo[]): void => {
  expect(retries).toHaveLength(1);
  expect(retries[0]!.error.code).toBe(Code.Unavailable);
  expect(retries[0]!.error.rawMessage).toBe(`no message from the server for ${BOUND_MS} ms: connection presumed dead`);
  expect(retries[0]!.serverClosed).toBe(false);
};

describe("resumable client: silence watchdog", () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  for (const t of TRANSPORTS) {
    it(`${t.name}: a relay gone silent -> Unavailable after 3 heartbeats, resumed on a new connection, every event once; the server drops the silent stream`, async () => {
      const server = await startServer(SERVER);
      cleanups.push(() => server.shutdown(1_000));
      const proxy = await startTcpProxy(server.port);
      cleanups.push(() => proxy.close());
      const pub = publisher(server);
      const topic = `silent.${t.name.replace(/\W+/g, "-")}`;
      const sub = follow(t.create(proxy.url), { topic, heartbeatMs: HEARTBEAT_MS });
      cleanups.push(() => sub.stop());
      await waitFor(() => sub.subscribed() === 1, 10_000, "subscribed");
      for (let i = 1; i <= 3; i++) await pub.publish({ topic, data: enc(`e${i}`) });
      await waitFor(() => sub.events.length === 3, 10_000, "3 events");
      const before = snapshot(server, SUBSCRIBE);
      expect(proxy.pairs).toHaveLength(1);

      proxy.silenceConnections();
      const silencedAt = Date.now();
      // Published while the path is silent: the client must get them after it resumes.
      for (let i = 4; i <= 6; i++) await pub.publish({ topic, data: enc(`e${i}`) });
      await waitFor(() => sub.subscribed() === 2, 20_000, "resubscribed");
      // Not before the bound: heartbeats were due, none came for 2.5 s.
      expect(Date.now() - silencedAt).toBeGreaterThanOrEqual(BOUND_MS);
      expectSilenceRetry(sub.retries);
      expect(sub.retries[0]!.cursor).toBe(sub.events[2]!.cursor);
      // A new connection through the same relay; the old one stays silent.
      expect(proxy.pairs.length).toBeGreaterThanOrEqual(2);
      expect(proxy.pairs.at(-1)!.silent).toBe(false);
      await waitFor(() => sub.events.length === 6, 10_000, "the events published while silent");

      if (!t.http2) {
        // HTTP/1.1 has no PING: the server finds its silent peer once its writes stop being taken.
        const big = new Uint8Array(512 * 1024);
        for (let i = 7; i <= 300 && server.ledger.size > 1; i++) {
          await pub.publish({ topic, data: big });
          await new Promise((r) => setTimeout(r, 5));
        }
      }
      await waitFor(() => server.ledger.size === 1, 15_000, `the silent stream ended on the server (causes: ${JSON.stringify(causesSince(server, before))})`);
      expect(causesSince(server, before)).toEqual({ dead_peer: 1 });

      await pub.publish({ topic, data: enc("last") });
      const published = Number((await pub.publish({ topic, data: enc("last 2") })).seq);
      await waitFor(() => sub.events.length === published, 15_000, `all ${published} events`);
      expect(seqs(sub.events)).toEqual(range(1, published));
      expect(sub.retries).toHaveLength(1);
      expect((await sub.stop())?.code).toBe(Code.Canceled);
      await waitFor(() => server.ledger.size === 0, 10_000, "ledger empty after stop");
    });
  }

  it("silenceTimeoutMs: 0 turns the watchdog off: a silent call stays stuck until the caller aborts it (Canceled)", async () => {
    const server = await startServer(SERVER);
    cleanups.push(() => server.shutdown(1_000));
    const proxy = await startTcpProxy(server.port);
    cleanups.push(() => proxy.close());
    const topic = "silent.off";
    // 100 ms heartbeats: the default bound would be 1.3 s.
    const sub = follow(createConnectTransport({ baseUrl: proxy.url, httpVersion: "1.1" }), { topic, heartbeatMs: 100 }, { silenceTimeoutMs: 0 });
    cleanups.push(async () => void (await sub.stop()));
    await waitFor(() => sub.subscribed() === 1, 10_000, "subscribed");
    proxy.silenceConnections();
    await publisher(server).publish({ topic, data: enc("never seen") });
    await new Promise((r) => setTimeout(r, 3 * 1_300));
    expect(sub.retries).toEqual([]);
    expect(sub.subscribed()).toBe(1);
    expect(sub.events).toEqual([]);
    expect(proxy.pairs).toHaveLength(1);
    expect((await sub.stop())?.code).toBe(Code.Canceled);
  });

  it("an explicit silenceTimeoutMs applies before the server said anything: a server that accepts and never answers -> Unavailable, retried, then given up", async () => {
    const held: net.Socket[] = [];
    const mute = net.createServer((s) => {
      held.push(s);
      s.on("error", () => undefined);
    });
    await new Promise<void>((resolve) => mute.listen(0, "127.0.0.1", resolve));
    cleanups.push(async () => {
      for (const s of held) s.destroy();
      await new Promise<void>((resolve) => mute.close(() => resolve()));
    });
    const port = (mute.address() as net.AddressInfo).port;
    const retries: RetryInfo[] = [];
    const startedAt = Date.now();
    let error: ConnectError | undefined;
    try {
      for await (const _ of subscribe(
        createConnectTransport({ baseUrl: `http://127.0.0.1:${port}`, httpVersion: "1.1" }),
        { topic: "mute.x" },
        { silenceTimeoutMs: 300, retry: { initialDelayMs: 10, maxDelayMs: 20, maxAttempts: 2 }, onRetry: (r) => retries.push(r) },
      )) {
        // nothing ever arrives
      }
    } catch (e) {
      error = ConnectError.from(e);
    }
    expect(error?.code).toBe(Code.Unavailable);
    expect(error?.rawMessage).toBe("no message from the server for 300 ms: connection presumed dead");
    expect(retries.map((r) => [r.attempt, r.error.code])).toEqual([
      [1, Code.Unavailable],
      [2, Code.Unavailable],
    ]);
    // Three calls of at least 300 ms each; and the 30 s default before an announcement was not what applied.
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(900);
    expect(Date.now() - startedAt).toBeLessThan(10_000);
    // Every call was a new connection to the mute server.
    expect(held.length).toBe(3);
  });

  it("runnel subscribe (the CLI, HTTP/2) through a relay gone silent: says why on stderr, resumes on a new session, prints every event once", async () => {
    ensureBuilt();
    const server = await startServer(SERVER);
    cleanups.push(() => server.shutdown(1_000));
    const proxy = await startTcpProxy(server.port);
    cleanups.push(() => proxy.close());
    const pub = publisher(server);
    const topic = "silent.cli";
    const env = { ...process.env };
    delete env.RUNNEL_URL;
    delete env.RUNNEL_TOKEN;
    // 1 s heartbeats: the client's bound is 4 s, longer than the CLI transport's 3 s PING interval.
    const child = spawn(process.execPath, [CLI, "subscribe", topic, "--json", "--heartbeat-ms", "1000", "--url", proxy.url], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
    cleanups.push(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    });
    const lines = (type: string): { type: string; seq?: string }[] =>
      stdout
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l) as { type: string; seq?: string })
        .filter((m) => m.type === type);

    await waitFor(() => lines("subscribed").length === 1, 15_000, "the CLI subscribed");
    await pub.publish({ topic, data: enc("e1") });
    await waitFor(() => lines("event").length === 1, 10_000, "first event printed");
    proxy.silenceConnections();
    for (let i = 2; i <= 3; i++) await pub.publish({ topic, data: enc(`e${i}`) });
    await waitFor(() => lines("subscribed").length === 2, 30_000, `the CLI resubscribed (stderr: ${stderr})`);
    expect(stderr).toMatch(/^runnel: Unavailable: no message from the server for 4000 ms: connection presumed dead; resuming after \S+ in [\d.]+ s \(attempt 1\)$/m);
    expect(proxy.pairs.at(-1)!.silent).toBe(false);
    await pub.publish({ topic, data: enc("e4") });
    await waitFor(() => lines("event").length === 4, 10_000, "every event printed");
    expect(lines("event").map((m) => m.seq)).toEqual(["1", "2", "3", "4"]);
    child.kill("SIGINT");
    expect(await exited).toBe(130);
  });

  it("tail() through a relay gone silent: resumed on a new connection, every line exactly once, in order", async () => {
    const tmp = tempTailDir("runnel-client-silence-");
    cleanups.push(async () => tmp.remove());
    const server = await startServer({ ...SERVER, tailDirs: [tmp.dir], tailPollMs: 100 });
    cleanups.push(() => server.shutdown(1_000));
    const proxy: TcpProxy = await startTcpProxy(server.port);
    cleanups.push(() => proxy.close());
    const file = tmp.file("silent.log");
    writeFileSync(file, "old 1\nold 2\n");
    const texts: string[] = [];
    const retries: RetryInfo[] = [];
    let started = 0;
    const abort = new AbortController();
    const transport = TRANSPORTS[0].create(proxy.url);
    const done = (async (): Promise<ConnectError | undefined> => {
      try {
        const stream = tail(transport, { path: "silent.log", lines: 2, heartbeatMs: HEARTBEAT_MS }, { signal: abort.signal, retry: { initialDelayMs: 20, maxDelayMs: 200 }, onRetry: (r) => retries.push(r) });
        for await (const m of stream) {
          if (m.kind.case === "started") started++;
          if (m.kind.case === "line") texts.push(m.kind.value.text);
        }
        return undefined;
      } catch (e) {
        return ConnectError.from(e);
      }
    })();
    cleanups.push(async () => {
      abort.abort();
      await done;
    });
    const write = (from: number, to: number): void => appendFileSync(file, range(from, to).map((i) => `line ${i}\n`).join(""));

    await waitFor(() => started === 1 && texts.length === 2, 10_000, "started, old lines");
    write(1, 20);
    await waitFor(() => texts.length === 22, 10_000, "20 lines");
    const before = snapshot(server, TAIL);
    proxy.silenceConnections();
    write(21, 40);
    await waitFor(() => started === 2, 20_000, "tail resumed");
    expectSilenceRetry(retries);
    expect(proxy.pairs.at(-1)!.silent).toBe(false);
    write(41, 60);
    await waitFor(() => texts.length === 62, 10_000, "all 60 lines");
    expect(texts).toEqual(["old 1", "old 2", ...range(1, 60).map((i) => `line ${i}`)]);
    await waitFor(() => server.ledger.size === 1, 10_000, "the silent tail ended on the server");
    expect(causesSince(server, before, TAIL)).toEqual({ dead_peer: 1 });
    abort.abort();
    expect((await done)?.code).toBe(Code.Canceled);
  });
});
