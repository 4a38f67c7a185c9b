/**
 * `npm run bench`: runnel side by side with a naive connect-es baseline
 * (bench/baseline/naive-server.ts) and NATS core (a nats-server the bench
 * starts itself, with @nats-io/transport-node clients; skipped with a message
 * when nats-server is not installed): same workload, one run, one table with
 * ratios to runnel.
 *
 * Processes: each server under test runs in its own child process (fresh for
 * every row, so CPU and heap are its own); subscribers run in 2 client child
 * processes, each holding half of the subscriptions over 5 HTTP/2 connections
 * (10 in all); the publisher runs in a child process of its own; the
 * cancel-to-release client runs in this process. All traffic is on
 * 127.0.0.1. Children are killed whenever this process exits, and exit by
 * themselves if it dies (their IPC channel closes).
 *
 *   node dist/bench/run.js [--quick] [--only ROW[,ROW]] [--help] ...
 *
 * Rows: fanout-100, fanout-1000, fanout-10000, fanout-1000-4k, latency, publish,
 * cancel, heap, redis. The publish row is publish throughput with no
 * subscribers: events/s and CPU per event of the server and of the publisher,
 * one event per Publish call, then (runnel only) PublishBatch. The redis row has a table of its own: the Redis bus on 2 runnel
 * nodes (separate processes, one throwaway redis-server on a free port) next
 * to the memory bus on 1 node, fan-out and latency at 100 and 1,000
 * subscribers; skipped with a note when redis-server is not installed.
 */
import { createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { mkdirSync, readFileSync } from "node:fs";
import os from "node:os";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { EventService } from "../gen/runnel/v1/event_pb.js";
import { cpuMs, killAllChildren, now, percentile, sleep, spawnChild, type Child } from "./ipc.js";
import { natsServerBinary } from "./nats-server.js";
import { redisAvailable, startBenchRedis } from "./redis-nodes.js";

// ------------------------------------------------------------------ options

// `npm run bench -- tail`: the Tail section (bench/tail.ts) on its own.
if (process.argv[2] === "tail") {
  const { main: tailBench } = await import("./tail.js");
  await tailBench(process.argv.slice(3));
  process.exit(0);
}

const ROWS = ["fanout-100", "fanout-1000", "fanout-10000", "fanout-1000-4k", "latency", "publish", "cancel", "heap", "redis"] as const;
type Row = (typeof ROWS)[number];
/** Servers the bench can run: runnel-connect is runnel with Subscribe on connect-es's own pipeline (before the lean write path). */
const ALL_KINDS = ["runnel", "runnel-connect", "baseline", "nats"] as const;
type Kind = (typeof ALL_KINDS)[number];
/** What serves a row: a kind, or runnel-redis: two runnel nodes on one redis-server (the redis row only). */
type ServerKind = Kind | "runnel-redis";
/** The redis row's columns: the memory bus (one node), then the Redis bus (two nodes). */
const REDIS_COLUMNS: readonly ServerKind[] = ["runnel", "runnel-redis"];
type Protocol = "grpc" | "connect" | "grpc-web";

const { values: flags } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string", multiple: true },
    kinds: { type: "string" },
    client: { type: "string", default: "raw" },
    "heap-streams": { type: "string" },
    protocol: { type: "string", default: "grpc" },
    "cpu-prof": { type: "string" },
    window: { type: "string" },
    duration: { type: "string" },
    iterations: { type: "string" },
    concurrency: { type: "string" },
    "publish-batch": { type: "string" },
    "heap-snapshot": { type: "string" },
    help: { type: "boolean", default: false },
  },
});

if (flags.help) {
  console.log(`usage: npm run bench -- [options]
  --quick              short smoke run (well under a minute)
  --only ROW[,ROW]     run only these rows: ${ROWS.join(", ")}
  --kinds K[,K]        servers to compare (default runnel,baseline,nats; also runnel-connect:
                       runnel with Subscribe on connect-es's pipeline, the code before the lean path)
  --heap-streams N[,N] idle streams for the heap rows (default 10000,50000; the naive baseline
                       only up to 10000)
  --protocol P         subscribers' and publisher's protocol: grpc (default), connect or grpc-web, over h2c
  --client C           subscribers' client: raw (default: gRPC over bare node:http2 streams, events
                       counted without decoding; cheap, so runs measure servers) or connect (connect-node)
  --window N           fan-out flow-control window, events (default 16)
  --concurrency N      fan-out: most Publish calls in flight (default 16)
  --duration S         fan-out and publish measurement, seconds (default: fan-out 2, publish 5;
                       --quick 1.5)
  --publish-batch N    publish row: events per PublishBatch call (default 20, at most 1000,
                       runnel's default --max-batch-events)
  --iterations N       cancel-to-release samples per transport and server (default 200)
  --cpu-prof DIR       write a V8 CPU profile of every server child into DIR
  --heap-snapshot DIR  heap row: V8 heap snapshots before/after opening the idle streams
                       (compare: node dist/bench/heap-diff.js BEFORE AFTER N)`);
  process.exit(0);
}

/** A numeric flag: a positive number, or the default when absent. */
function numberFlag(name: "window" | "duration" | "iterations" | "concurrency" | "publish-batch", fallback: number): number {
  const raw = flags[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) {
    console.error(`--${name} must be a positive number, got "${raw}"`);
    process.exit(2);
  }
  return n;
}

const only = new Set((flags.only ?? []).flatMap((s) => s.split(",")).map((s) => s.trim()).filter((s) => s !== ""));
for (const r of only) {
  if (!(ROWS as readonly string[]).includes(r)) {
    console.error(`unknown row "${r}"; rows: ${ROWS.join(", ")}`);
    process.exit(2);
  }
}
const protocol = flags.protocol as Protocol;
if (!["grpc", "connect", "grpc-web"].includes(protocol)) {
  console.error(`--protocol must be grpc, connect or grpc-web`);
  process.exit(2);
}
const quick = flags.quick;
const kindsWanted = (flags.kinds ?? "runnel,baseline,nats").split(",").map((k) => k.trim()) as Kind[];
for (const k of kindsWanted) {
  if (!(ALL_KINDS as readonly string[]).includes(k)) {
    console.error(`unknown kind "${k}"; kinds: ${ALL_KINDS.join(", ")}`);
    process.exit(2);
  }
}
if (kindsWanted[0] !== "runnel") {
  console.error("--kinds must start with runnel (ratios are to runnel)");
  process.exit(2);
}
const natsMissing = kindsWanted.includes("nats") && natsServerBinary() === undefined;
/** The servers of this run (NATS dropped, with a message, when nats-server is not installed). */
const KINDS: readonly Kind[] = kindsWanted.filter((k) => k !== "nats" || !natsMissing);
/** Servers speaking runnel's RPC protocol (every row); NATS has no cancel-to-release row. */
const RPC_KINDS = KINDS.filter((k) => k !== "nats");
const heapStreams = (flags["heap-streams"] ?? (quick ? "2000" : "10000,50000")).split(",").map(Number);
if (heapStreams.some((n) => !Number.isInteger(n) || n <= 0)) {
  console.error("--heap-streams takes whole numbers");
  process.exit(2);
}
/** The naive baseline holds ~35 KB per idle stream and opens them slowly: it runs the heap row only up to this. */
const BASELINE_HEAP_MAX = 10_000;
const cpuProfDir = flags["cpu-prof"] === undefined ? undefined : resolve(flags["cpu-prof"]);
if (cpuProfDir !== undefined) mkdirSync(cpuProfDir, { recursive: true });
const heapSnapshotDir = flags["heap-snapshot"] === undefined ? undefined : resolve(flags["heap-snapshot"]);
if (heapSnapshotDir !== undefined) mkdirSync(heapSnapshotDir, { recursive: true });

/** The workload. Same for runnel and the baseline. */
const P = {
  clientProcesses: 2,
  connectionsPerProcess: 5,
  warmupMs: quick ? 300 : 700,
  fanoutMs: numberFlag("duration", quick ? 1.5 : 2) * 1000,
  /**
   * Publisher flow control: at most this many events published and not yet
   * received by every subscriber. Small on purpose: it keeps both servers at
   * a sustainable rate with short queues. Deep backlogs (64+ events per
   * stream at 1,000 subscribers) were seen to collapse throughput of both
   * servers to 4-5k deliveries/s; see BENCHMARKS.md.
   */
  fanoutWindow: numberFlag("window", 16),
  /** Fan-out rows: subscribers and event size. */
  fanouts: (quick
    ? [[100, 100], [1_000, 100]]
    : [[100, 100], [1_000, 100], [10_000, 100], [1_000, 4096]]) as [number, number][],
  latencyBytes: 100,
  /** At most this many Publish calls in flight. */
  publishConcurrency: numberFlag("concurrency", 16),
  latencySubscribers: 1_000,
  latencyPublishesPerSecond: 5,
  latencyMs: quick ? 2_000 : 5_000,
  cancelIterations: Math.round(numberFlag("iterations", quick ? 20 : 100)),
  cancelWarmup: quick ? 3 : 10,
  heapWarmupStreams: 200,
  /** Publish row: measurement window, calls in flight, topics (round robin), event size, events per PublishBatch call. */
  publishMs: numberFlag("duration", quick ? 1.5 : 5) * 1000,
  publishInFlight: 64,
  publishTopics: Array.from({ length: 8 }, (_, i) => `bench.publish.${i}`),
  publishBytes: 100,
  publishBatch: numberFlag("publish-batch", 20),
};
if (!Number.isInteger(P.publishBatch) || P.publishBatch > 1_000) {
  console.error("--publish-batch takes a whole number from 1 to 1000 (runnel's default --max-batch-events)");
  process.exit(2);
}

// ---------------------------------------------------------------- processes

interface ServerUnder {
  readonly kind: ServerKind;
  /** The (first) node: the publisher publishes to it. */
  readonly child: Child;
  readonly h1Url: string;
  readonly h2Url: string;
  /** Every node's h2 URL (one for a single server); subscriber process i uses node i mod N. */
  readonly h2Urls: readonly string[];
  /** Every node's process, the first included: their CPU is the server's. */
  readonly nodes: readonly Child[];
  /** Stops what the server started beyond its node processes (redis-server). */
  readonly stopExtra?: () => Promise<void>;
}

async function startServer(kind: ServerKind, row: string): Promise<ServerUnder> {
  if (kind === "runnel-redis") return startRedisNodes(row);
  return { kind, ...(await startNode(kind, row, [])) };
}

/** Two runnel nodes (separate processes) on a fresh redis-server of the bench's own. */
async function startRedisNodes(row: string): Promise<ServerUnder> {
  const redis = await startBenchRedis();
  try {
    const nodes = await Promise.all([0, 1].map((i) => startNode("runnel-redis", `${row}-node${i}`, [redis.url])));
    return {
      ...nodes[0]!,
      kind: "runnel-redis",
      h2Urls: nodes.map((n) => n.h2Url),
      nodes: nodes.map((n) => n.child),
      stopExtra: () => redis.stop(),
    };
  } catch (e) {
    await redis.stop();
    throw e;
  }
}

/** One server child process: `server-child.js KIND ARGS...`. */
async function startNode(kind: ServerKind, row: string, args: string[]): Promise<Omit<ServerUnder, "kind">> {
  const execArgv = ["--expose-gc"];
  if (cpuProfDir !== undefined) {
    execArgv.push("--cpu-prof", "--cpu-prof-interval=100", `--cpu-prof-dir=${cpuProfDir}`, `--cpu-prof-name=${kind}-${row}.cpuprofile`);
  }
  const { child, ready } = await spawnChild<{ event: "ready"; h1Url: string; h2Url: string }>(
    `${kind} server`,
    new URL("./server-child.js", import.meta.url),
    [kind, ...args],
    execArgv,
  );
  return { child, h1Url: ready.h1Url, h2Url: ready.h2Url, h2Urls: [ready.h2Url], nodes: [child] };
}

async function startClients(): Promise<Child[]> {
  const started = await Promise.all(
    Array.from({ length: P.clientProcesses }, (_, i) => spawnChild(`subscriber process ${i + 1}`, new URL("./client-child.js", import.meta.url), [])),
  );
  return started.map((s) => s.child);
}

async function startPublisher(): Promise<Child> {
  return (await spawnChild("publisher process", new URL("./publisher-child.js", import.meta.url), [])).child;
}

interface Procs {
  readonly server: ServerUnder;
  readonly clients: Child[];
  readonly publisher: Child;
}

/** Run `body` with a fresh server, subscriber processes (none when `subscribers` is false) and publisher process; always stop them. */
async function withProcesses<T>(kind: ServerKind, row: string, body: (p: Procs) => Promise<T>, subscribers = true): Promise<T> {
  const server = await startServer(kind, row);
  const others: Child[] = [];
  try {
    const [clients, publisher] = await Promise.all([subscribers ? startClients() : Promise.resolve([]), startPublisher()]);
    others.push(...clients, publisher);
    return await body({ server, clients, publisher });
  } finally {
    await Promise.all(others.map((c) => c.stop()));
    await Promise.all(server.nodes.map((c) => c.stop()));
    await server.stopExtra?.();
  }
}

async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** Split `n` subscriptions over the client processes. */
function shares(n: number): number[] {
  return Array.from({ length: P.clientProcesses }, (_, i) => Math.floor(n / P.clientProcesses) + (i < n % P.clientProcesses ? 1 : 0));
}

const rawClient = flags.client === "raw" && protocol === "grpc";
if (flags.client !== "raw" && flags.client !== "connect") {
  console.error(`--client must be raw or connect`);
  process.exit(2);
}
/** The wire a kind's subscribers speak. */
const subscriberProtocol = (kind: ServerKind): Protocol | "nats" | "grpc-raw" => (kind === "nats" ? "nats" : rawClient ? "grpc-raw" : protocol);
/** The wire a kind's publisher speaks. */
const protocolOf = (kind: ServerKind): Protocol | "nats" => (kind === "nats" ? "nats" : protocol);

async function subscribeAll(server: ServerUnder, clients: Child[], n: number, topic: string, mode: "count" | "latency" | "idle"): Promise<void> {
  const split = shares(n);
  // runnel allows 1,000 streams per HTTP/2 connection: more subscribers need more connections.
  const connections = Math.max(P.connectionsPerProcess, Math.ceil(n / P.clientProcesses / 900));
  const results = await Promise.all(
    clients.map((c, i) =>
      c.call<{ errors: Record<string, number> }>("subscribe", {
        url: server.h2Urls[i % server.h2Urls.length],
        protocol: subscriberProtocol(server.kind),
        connections,
        count: split[i],
        topic,
        mode,
      }),
    ),
  );
  const errors = results.flatMap((r) => Object.entries(r.errors));
  if (errors.length > 0) throw new Error(`subscribe failed: ${errors.map(([m, k]) => `${k}x ${m}`).join("; ")}`);
  await waitFor(`${n} live streams on the ${server.kind} server`, async () => (await liveStreams(server)) >= n, 120_000);
}

/** Live Subscribe streams over every node of `server`. */
async function liveStreams(server: ServerUnder): Promise<number> {
  const n = await Promise.all(server.nodes.map((c) => c.call<number>("streams")));
  return n.reduce((sum, x) => sum + x, 0);
}

/**
 * Track the slowest subscriber (smallest per-subscription event count over
 * both subscriber processes) and relay it to the publisher for flow control.
 */
function trackSlowest(clients: Child[], publisher: Child | undefined): () => number {
  const mins = clients.map(() => 0);
  clients.forEach((c, i) =>
    c.on((e) => {
      if (e.event !== "progress") return;
      mins[i] = e.min as number;
      publisher?.notify("slowest", { min: Math.min(...mins) });
    }),
  );
  return () => Math.min(...mins);
}

interface Usage {
  t: number;
  cpu: NodeJS.CpuUsage;
}

interface Marks {
  server: Usage;
  clients: (Usage & { total: number })[];
  publisher: Usage & { published: number; acked: number; blockedByWindowMs: number; blockedByConcurrencyMs: number };
  self: Usage;
  machine: MachineUsage;
}

/** CPU of every node of `server` together, timed at the first node. */
async function serverUsage(server: ServerUnder): Promise<Usage> {
  const u = await Promise.all(server.nodes.map((c) => c.call<Usage>("usage")));
  const sum = (f: (x: Usage) => number): number => u.reduce((s, x) => s + f(x), 0);
  return { t: u[0]!.t, cpu: { user: sum((x) => x.cpu.user), system: sum((x) => x.cpu.system) } };
}

async function takeMarks(p: Procs): Promise<Marks> {
  const [server, publisher, ...clients] = await Promise.all([
    serverUsage(p.server),
    p.publisher.call<Marks["publisher"]>("mark"),
    ...p.clients.map((child) => child.call<Marks["clients"][number]>("mark")),
  ]);
  return {
    server: server as Usage,
    publisher: publisher as Marks["publisher"],
    clients: clients as Marks["clients"],
    self: { t: now(), cpu: process.cpuUsage() },
    machine: machineUsage(),
  };
}

interface MachineUsage {
  t: number;
  /** CPU time all cores spent busy since boot, ms (from /proc/stat). */
  busyMs: number;
}

/** Machine-wide busy CPU time, to tell how much of the machine other processes took during a measurement. */
function machineUsage(): MachineUsage {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal: busy = all but idle and iowait; USER_HZ is 100.
    const busy = f[0]! + f[1]! + f[2]! + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0);
    return { t: now(), busyMs: busy * 10 };
  } catch {
    return { t: now(), busyMs: Number.NaN };
  }
}

/** CPU % (of one core) that processes other than the benchmark's took between two machine marks. */
function foreignCpu(a: MachineUsage, b: MachineUsage, oursMs: number): number {
  return (100 * (b.busyMs - a.busyMs - oursMs)) / (b.t - a.t);
}

/** CPU the benchmark's own processes (server, publisher, subscribers, this one) took between two marks, ms. */
function ourCpuMs(a: Marks, b: Marks): number {
  return (
    cpuMs(a.server.cpu, b.server.cpu) +
    cpuMs(a.publisher.cpu, b.publisher.cpu) +
    cpuMs(a.self.cpu, b.self.cpu) +
    b.clients.reduce((sum, cb, i) => sum + cpuMs(a.clients[i]!.cpu, cb.cpu), 0)
  );
}

function cpuPercent(a: Usage, b: Usage): number {
  return (100 * cpuMs(a.cpu, b.cpu)) / (b.t - a.t);
}

interface Window {
  deliveriesPerSec: number;
  publishesPerSec: number;
  /** Share of the window the publisher waited for the slowest subscriber / for Publish answers. */
  blockedByWindow: number;
  blockedByConcurrency: number;
  serverCpu: number;
  /** Server CPU time per delivery counted at the subscribers (hardly moved by other load on the machine). */
  serverUsPerDelivery: number;
  /** Sum over the subscriber processes (of 100 x their count). */
  clientCpu: number;
  publisherCpu: number;
  /** CPU % (of 100 x cores) other processes on the machine took: a warning sign when large. */
  foreignCpu: number;
}

function windowOf(a: Marks, b: Marks): Window {
  let deliveriesPerSec = 0;
  let clientCpu = 0;
  b.clients.forEach((cb, i) => {
    const ca = a.clients[i]!;
    deliveriesPerSec += ((cb.total - ca.total) * 1000) / (cb.t - ca.t);
    clientCpu += cpuPercent(ca, cb);
  });
  const delivered = b.clients.reduce((sum, cb, i) => sum + cb.total - a.clients[i]!.total, 0);
  return {
    deliveriesPerSec,
    serverUsPerDelivery: (1000 * cpuMs(a.server.cpu, b.server.cpu)) / delivered,
    publishesPerSec: ((b.publisher.published - a.publisher.published) * 1000) / (b.publisher.t - a.publisher.t),
    blockedByWindow: (b.publisher.blockedByWindowMs - a.publisher.blockedByWindowMs) / (b.publisher.t - a.publisher.t),
    blockedByConcurrency: (b.publisher.blockedByConcurrencyMs - a.publisher.blockedByConcurrencyMs) / (b.publisher.t - a.publisher.t),
    serverCpu: cpuPercent(a.server, b.server),
    clientCpu,
    publisherCpu: cpuPercent(a.publisher, b.publisher),
    foreignCpu: foreignCpu(a.machine, b.machine, ourCpuMs(a, b)),
  };
}

interface ClientCollect {
  total: number;
  min: number;
  ended: number;
  closings: number;
  errors: Record<string, number>;
  pubTimes: Float64Array;
  latencies: Float64Array;
}

interface PublishCounts {
  published: number;
  acked: number;
  failures: number;
  /** The first failed call's error message. */
  firstError?: string;
}

/** Check that every subscriber got every event and nothing ended early; returns what went wrong. */
async function settle(p: Procs, counts: PublishCounts, slowest: () => number): Promise<{ notes: string[]; collected: ClientCollect[] }> {
  const notes: string[] = [];
  if (counts.failures > 0) notes.push(`${counts.failures} publishes failed`);
  try {
    await waitFor("every subscriber to receive every event", () => slowest() >= counts.acked, 15_000);
  } catch {
    notes.push(`not every subscriber got all ${counts.acked} events (the slowest has ${slowest()})`);
  }
  const collected = await Promise.all(p.clients.map((c) => c.call<ClientCollect>("collect")));
  const ended = collected.reduce((s, c) => s + c.ended, 0);
  const closings = collected.reduce((s, c) => s + c.closings, 0);
  if (ended > 0) notes.push(`${ended} subscriptions ended early`);
  if (closings > 0) notes.push(`${closings} Closing messages`);
  for (const c of collected) for (const [m, k] of Object.entries(c.errors)) notes.push(`${k}x ${m}`);
  return { notes, collected };
}

// ---------------------------------------------------------------------- rows

interface FanoutResult extends Window {
  published: number;
  notes: string[];
}

/**
 * Fan-out: S live subscribers on one topic; the publisher publishes 100-byte
 * events as fast as the slowest subscriber takes them (flow control, see
 * publisher-child.ts). After a warm-up, deliveries counted at the subscribers
 * over a fixed window.
 */
async function fanout(kind: ServerKind, subscribers: number, bytes: number): Promise<FanoutResult> {
  return withProcesses(kind, `fanout-${subscribers}-${bytes}`, async (p) => {
    const topic = "bench.fanout";
    const slowest = trackSlowest(p.clients, p.publisher);
    await subscribeAll(p.server, p.clients, subscribers, topic, "count");
    await p.publisher.call("start", {
      mode: "flow",
      url: p.server.h2Url,
      protocol: protocolOf(kind),
      topic,
      bytes,
      window: P.fanoutWindow,
      concurrency: P.publishConcurrency,
    });
    await sleep(P.warmupMs);
    const a = await takeMarks(p);
    await sleep(P.fanoutMs);
    const b = await takeMarks(p);
    const counts = await p.publisher.call<PublishCounts>("stop");
    const { notes } = await settle(p, counts, slowest);
    await Promise.all(p.clients.map((c) => c.call("close")));
    return { ...windowOf(a, b), published: counts.acked, notes };
  });
}

interface LatencyResult extends Window {
  p50: number;
  p99: number;
  p999: number;
  max: number;
  samples: number;
  notes: string[];
}

/**
 * A fixed, paced load: `latencyPublishesPerSecond` publishes per second to
 * `subscribers` subscribers (default `latencySubscribers`). Each payload starts
 * with the publish time (shared clock) taken just before the Publish call; each
 * subscriber records receive time minus that. Samples from the warm-up are dropped.
 */
async function latency(kind: ServerKind, subscribers = P.latencySubscribers): Promise<LatencyResult> {
  return withProcesses(kind, `latency-${subscribers}`, async (p) => {
    const topic = "bench.latency";
    const slowest = trackSlowest(p.clients, undefined);
    await subscribeAll(p.server, p.clients, subscribers, topic, "latency");
    const { t: start } = await p.publisher.call<{ t: number }>("start", {
      mode: "paced",
      url: p.server.h2Url,
      protocol: protocolOf(kind),
      topic,
      bytes: P.latencyBytes,
      rate: P.latencyPublishesPerSecond,
      durationMs: P.warmupMs + P.latencyMs,
    });
    const measureFrom = start + P.warmupMs;
    await sleep(measureFrom - now());
    const a = await takeMarks(p);
    const counts = await p.publisher.call<PublishCounts>("wait");
    const b = await takeMarks(p);
    const { notes, collected } = await settle(p, counts, slowest);
    const lat: number[] = [];
    for (const c of collected) {
      for (let i = 0; i < c.latencies.length; i++) if (c.pubTimes[i]! >= measureFrom) lat.push(c.latencies[i]!);
    }
    await Promise.all(p.clients.map((c) => c.call("close")));
    return {
      ...windowOf(a, b),
      p50: percentile(lat, 50),
      p99: percentile(lat, 99),
      p999: percentile(lat, 99.9),
      max: percentile(lat, 100),
      samples: lat.length,
      notes,
    };
  });
}

/** One way of publishing in the publish row: one event per Publish call, or `batch` events per PublishBatch call. */
interface PublishMode {
  readonly name: string;
  readonly call: "publish" | "publishBatch";
  readonly batch: number;
  /** The servers that have this call (the baseline answers PublishBatch with Unimplemented; NATS core has no batch). */
  readonly kinds: readonly ServerKind[];
}

/** The publish row's modes: unary Publish on every server (NATS: core publish), PublishBatch on runnel only. */
const PUBLISH_MODES: readonly PublishMode[] = [
  { name: "unary", call: "publish", batch: 1, kinds: KINDS },
  { name: `batch ${P.publishBatch}`, call: "publishBatch", batch: P.publishBatch, kinds: KINDS.filter((k) => k === "runnel" || k === "runnel-connect") },
];

interface PublishResult {
  eventsPerSec: number;
  /** Server / publisher CPU time per acked event. */
  serverUsPerEvent: number;
  publisherUsPerEvent: number;
  serverCpu: number;
  publisherCpu: number;
  foreignCpu: number;
  notes: string[];
}

/** Events/s and CPU per event of the server and the publisher between two marks (events acked by the server). */
function publishWindow(a: Marks, b: Marks): Omit<PublishResult, "notes"> {
  const acked = b.publisher.acked - a.publisher.acked;
  return {
    eventsPerSec: (acked * 1000) / (b.publisher.t - a.publisher.t),
    serverUsPerEvent: (1000 * cpuMs(a.server.cpu, b.server.cpu)) / acked,
    publisherUsPerEvent: (1000 * cpuMs(a.publisher.cpu, b.publisher.cpu)) / acked,
    serverCpu: cpuPercent(a.server, b.server),
    publisherCpu: cpuPercent(a.publisher, b.publisher),
    foreignCpu: foreignCpu(a.machine, b.machine, ourCpuMs(a, b)),
  };
}

/** What went wrong in a publish run: failed calls, or events published and never acked. */
function publishNotes(c: PublishCounts): string[] {
  const notes: string[] = [];
  if (c.failures > 0) notes.push(`${fmtInt(c.failures)} of ${fmtInt(c.published)} events failed (first error: ${c.firstError ?? "?"})`);
  if (c.acked !== c.published) notes.push(`${fmtInt(c.acked)} of ${fmtInt(c.published)} events acked`);
  return notes;
}

/**
 * Publish throughput: no subscribers; the publisher keeps `publishInFlight`
 * calls in flight over one HTTP/2 connection, 100-byte events round robin over
 * 8 topics, one event per Publish call or `batch` per PublishBatch call. After
 * a warm-up, events acked by the server counted over a fixed window.
 */
async function publishThroughput(kind: ServerKind, mode: PublishMode): Promise<PublishResult> {
  return withProcesses(
    kind,
    `publish-${mode.name.replace(" ", "-")}`,
    async (p) => {
      await p.publisher.call("start", {
        mode: "throughput",
        url: p.server.h2Url,
        protocol: protocolOf(kind),
        topics: P.publishTopics,
        bytes: P.publishBytes,
        call: mode.call,
        batch: mode.batch,
        concurrency: P.publishInFlight,
      });
      await sleep(P.warmupMs);
      const a = await takeMarks(p);
      await sleep(P.publishMs);
      const b = await takeMarks(p);
      const counts = await p.publisher.call<PublishCounts>("stop");
      return { ...publishWindow(a, b), notes: publishNotes(counts) };
    },
    false,
  );
}

/** The five client transports runnel serves (same list as the tests' transport matrix). */
const CANCEL_TRANSPORTS: readonly { name: string; http2: boolean; create(baseUrl: string): Transport }[] = [
  { name: "connect h1", http2: false, create: (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "1.1" }) },
  { name: "connect h2", http2: true, create: (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "2" }) },
  { name: "grpc h2", http2: true, create: (baseUrl) => createGrpcTransport({ baseUrl }) },
  { name: "grpc-web h1", http2: false, create: (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }) },
  { name: "grpc-web h2", http2: true, create: (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "2" }) },
];

interface CancelResult {
  p50: number;
  p99: number;
  samples: number;
  timeouts: number;
  /** From the server's abort listener to the release, ms (runnel: its runnel_stream_release_seconds observations). */
  internalP50?: number;
  internalP99?: number;
  causes: Record<string, number>;
}

interface Released {
  t: number;
  releaseSeconds?: number;
  cause?: string;
}

/** Waits for the "released" events of one server child, one at a time. */
function releaseWatcher(server: ServerUnder): (timeoutMs: number) => Promise<Released | undefined> {
  let waiter: ((e: Released) => void) | undefined;
  server.child.on((e) => {
    if (e.event !== "released") return;
    const w = waiter;
    waiter = undefined;
    w?.(e as unknown as Released);
  });
  return (timeoutMs) =>
    new Promise((resolve) => {
      const timer = setTimeout(() => {
        waiter = undefined;
        resolve(undefined);
      }, timeoutMs);
      waiter = (e) => {
        clearTimeout(timer);
        resolve(e);
      };
    });
}

/**
 * Cancel-to-release, one stream at a time, both servers up at once and their
 * iterations interleaved (same client process, same warmth, same machine
 * state): open Subscribe, wait for the Subscribed message (the stream is live
 * on the server), take the shared-clock time t0 and abort the call's signal;
 * the server child reports the time t1 at which it released the stream
 * (runnel: ledger entry removed; baseline: handler `finally` ran).
 * Sample = t1 - t0.
 */
let cancelForeignCpu = 0;

async function cancelAll(): Promise<Partial<Record<Kind, Record<string, CancelResult>>>> {
  const servers: ServerUnder[] = [];
  try {
    for (const kind of RPC_KINDS) servers.push(await startServer(kind, "cancel"));
    const watchers = await Promise.all(
      servers.map(async (s) => {
        await s.child.call("watch-release");
        return releaseWatcher(s);
      }),
    );
    const out: Partial<Record<Kind, Record<string, CancelResult>>> = {};
    for (const kind of RPC_KINDS) out[kind] = {};
    const usageOf = async (): Promise<{ machine: MachineUsage; oursMs: number }> => {
      const u = await Promise.all(servers.map((s) => s.child.call<Usage>("usage")));
      const self = process.cpuUsage();
      return { machine: machineUsage(), oursMs: u.reduce((sum, x) => sum + (x.cpu.user + x.cpu.system) / 1000, 0) + (self.user + self.system) / 1000 };
    };
    const before = await usageOf();
    for (const tc of CANCEL_TRANSPORTS) {
      const state = servers.map((s) => ({
        server: s,
        client: createClient(EventService, tc.create(tc.http2 ? s.h2Url : s.h1Url)),
        samples: [] as number[],
        internal: [] as number[],
        causes: {} as Record<string, number>,
        timeouts: 0,
      }));
      for (let i = 0; i < P.cancelWarmup + P.cancelIterations; i++) {
        const forward = state.map((_, k) => k);
        const order = i % 2 === 0 ? forward : forward.reverse();
        for (const k of order) {
          const st = state[k]!;
          const ac = new AbortController();
          const it = st.client.subscribe({ topic: "bench.cancel" }, { signal: ac.signal })[Symbol.asyncIterator]();
          const first = await it.next();
          if (first.done === true || first.value.kind.case !== "subscribed") throw new Error(`${tc.name}: no Subscribed message`);
          const released = watchers[k]!(5_000);
          const t0 = now();
          ac.abort();
          const r = await released;
          void it.return?.(undefined).catch(() => undefined);
          if (r === undefined) {
            st.timeouts++;
            await waitFor("the stream to be released", async () => (await st.server.child.call<number>("streams")) === 0, 30_000);
            continue;
          }
          if (i < P.cancelWarmup) continue;
          st.samples.push(r.t - t0);
          if (r.releaseSeconds !== undefined) st.internal.push(r.releaseSeconds * 1000);
          if (r.cause !== undefined) st.causes[r.cause] = (st.causes[r.cause] ?? 0) + 1;
        }
      }
      for (const [k, st] of state.entries()) {
        out[RPC_KINDS[k]!]![tc.name] = {
          p50: percentile(st.samples, 50),
          p99: percentile(st.samples, 99),
          samples: st.samples.length,
          timeouts: st.timeouts,
          causes: st.causes,
          ...(st.internal.length > 0 ? { internalP50: percentile(st.internal, 50), internalP99: percentile(st.internal, 99) } : {}),
        };
      }
    }
    const after = await usageOf();
    cancelForeignCpu = foreignCpu(before.machine, after.machine, after.oursMs - before.oursMs);
    return out;
  } finally {
    await Promise.all(servers.map((s) => s.child.stop()));
  }
}

interface HeapResult {
  heapPerStream: number;
  rssPerStream: number;
  rssAfter: number;
  heapBefore: number;
  heapAfter: number;
  streams: number;
}

/**
 * Heap and RSS per idle stream: after a warm-up round (connections made, code
 * compiled, streams opened and closed), full GC and measure; open N idle
 * subscriptions over the same 10 connections; full GC and measure again.
 */
async function heap(kind: Kind, streams: number): Promise<HeapResult> {
  return withProcesses(kind, `heap-${streams}`, async ({ server, clients }) => {
    const topic = "bench.idle";
    await subscribeAll(server, clients, P.heapWarmupStreams, topic, "idle");
    await Promise.all(clients.map((c) => c.call("close")));
    await waitFor("warm-up streams to be released", async () => (await server.child.call<number>("streams")) === 0);
    const before = await server.child.call<NodeJS.MemoryUsage>("gc-mem");
    if (heapSnapshotDir !== undefined) await server.child.call("heap-snapshot", { path: `${heapSnapshotDir}/${kind}-before.heapsnapshot` });
    await subscribeAll(server, clients, streams, topic, "idle");
    await sleep(200);
    const after = await server.child.call<NodeJS.MemoryUsage>("gc-mem");
    if (heapSnapshotDir !== undefined) await server.child.call("heap-snapshot", { path: `${heapSnapshotDir}/${kind}-after.heapsnapshot` });
    const n = await server.child.call<number>("streams");
    await Promise.all(clients.map((c) => c.call("close")));
    return {
      heapPerStream: (after.heapUsed - before.heapUsed) / n,
      rssPerStream: (after.rss - before.rss) / n,
      rssAfter: after.rss,
      heapBefore: before.heapUsed,
      heapAfter: after.heapUsed,
      streams: n,
    };
  });
}

// ------------------------------------------------------------------- report

/** One table row: a value per server, ratios to runnel made by `ratioRow`. */
interface TableRow {
  label: string;
  values: Partial<Record<ServerKind, string>>;
  /** "runnel/KIND" per other server, with a note on which way is better. */
  ratios: Partial<Record<ServerKind, string>>;
  better?: "higher" | "lower";
}

const fmtInt = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "n/a");
const fmtMs = (n: number): string => (!Number.isFinite(n) ? "n/a" : n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : n.toFixed(0));
const fmtRatio = (r: number): string => (!Number.isFinite(r) || r <= 0 ? "n/a" : r < 0.01 ? `${r.toPrecision(2)}x` : `${r.toFixed(2)}x`);
const fmtKb = (bytes: number): string => (Number.isFinite(bytes) ? `${(bytes / 1024).toFixed(1)} KB` : "n/a");

/** Results per server of one measurement. */
type Results<T> = Partial<Record<ServerKind, T>>;

/** A row of numbers per server (the table's `columns`), with runnel/other ratios. */
function ratioRow<T>(
  label: string,
  results: Results<T>,
  value: (x: T) => number,
  fmt: (n: number) => string,
  better: "higher" | "lower",
  columns: readonly ServerKind[] = KINDS,
): TableRow {
  const row: TableRow = { label, values: {}, ratios: {}, better };
  const runnel = results.runnel === undefined ? Number.NaN : value(results.runnel);
  for (const kind of columns) {
    const x = results[kind];
    row.values[kind] = x === undefined ? "n/a" : fmt(value(x));
    if (kind !== "runnel") row.ratios[kind] = x === undefined ? "n/a" : fmtRatio(runnel / value(x));
  }
  return row;
}

/** A row of "a / b" pairs (p50 / p99...) per server, ratios per part. */
function pairRow<T>(label: string, results: Results<T>, parts: ((x: T) => number)[], fmt: (n: number) => string, columns: readonly ServerKind[] = KINDS): TableRow {
  const row: TableRow = { label, values: {}, ratios: {}, better: "lower" };
  const runnel = results.runnel;
  for (const kind of columns) {
    const x = results[kind];
    row.values[kind] = x === undefined ? "n/a" : parts.map((f) => fmt(f(x))).join(" / ");
    if (kind !== "runnel") row.ratios[kind] = x === undefined || runnel === undefined ? "n/a" : parts.map((f) => fmtRatio(f(runnel) / f(x))).join(" / ");
  }
  return row;
}

/** A row of text per server (CPU shares), no ratios. */
function textRow<T>(label: string, results: Results<T>, text: (x: T) => string): TableRow {
  const row: TableRow = { label, values: {}, ratios: {} };
  for (const kind of KINDS) row.values[kind] = results[kind] === undefined ? "n/a" : text(results[kind]!);
  return row;
}

function printTable(rows: TableRow[], columns: readonly ServerKind[] = KINDS): void {
  const others = columns.filter((k) => k !== "runnel");
  const header = ["row", ...columns, ...others.map((k) => `runnel/${k}`)];
  const cells = rows.map((r) => [
    r.label,
    ...columns.map((k) => r.values[k] ?? ""),
    ...others.map((k) => (r.ratios[k] === undefined ? "" : `${r.ratios[k]}`)),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]): string => `| ${c.map((x, i) => (i === 0 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join(" | ")} |`;
  console.log(line(header));
  console.log(`|${widths.map((w, i) => (i === 0 ? "-".repeat(w + 2) : `${"-".repeat(w + 1)}:`)).join("|")}|`);
  rows.forEach((r, i) => console.log(line(cells[i]!) + (r.better === undefined ? "" : ` ${r.better} is better`)));
}

/** Above this much CPU (% of one core) taken by other processes, a measurement is flagged. */
const FOREIGN_CPU_WARN = 15;

/** Notes printed under the tables. */
const notes: string[] = [];
const log = (s: string): void => void process.stderr.write(`[bench] ${s}\n`);
const flagBusy = (what: string, foreign: number): void => {
  if (foreign > FOREIGN_CPU_WARN) notes.push(`${what}: other processes took ${foreign.toFixed(0)}% CPU during the measurement: not a quiet machine`);
};

/** One measurement on each server in turn (fresh processes each), logged; its notes go to `notes`. */
async function eachServer<T extends { notes: string[]; foreignCpu: number }>(
  what: string,
  kinds: readonly ServerKind[],
  run: (kind: ServerKind) => Promise<T>,
  describe: (x: T) => string,
): Promise<Results<T>> {
  const r: Results<T> = {};
  for (const kind of kinds) {
    log(`${what}: ${kind}...`);
    const x = await run(kind);
    r[kind] = x;
    log(`  ${describe(x)}`);
    for (const n of x.notes) notes.push(`${what} ${kind}: ${n}`);
    flagBusy(`${what} ${kind}`, x.foreignCpu);
  }
  return r;
}

const describeFanout = (x: FanoutResult): string =>
  `${fmtInt(x.deliveriesPerSec)} deliveries/s, ${fmtInt(x.publishesPerSec)} publishes/s ` +
  `(publisher waited ${(100 * x.blockedByWindow).toFixed(0)}% on subscribers, ${(100 * x.blockedByConcurrency).toFixed(0)}% on Publish answers), server ${x.serverCpu.toFixed(0)}% CPU (${fmtMs(x.serverUsPerDelivery)} µs per delivery), ` +
  `subscribers ${x.clientCpu.toFixed(0)}%, publisher ${x.publisherCpu.toFixed(0)}%, other processes ${x.foreignCpu.toFixed(0)}%`;

const describeLatency = (x: LatencyResult): string =>
  `p50 ${fmtMs(x.p50)} ms, p99 ${fmtMs(x.p99)} ms, p99.9 ${fmtMs(x.p999)} ms, max ${fmtMs(x.max)} ms over ${fmtInt(x.samples)} deliveries; ` +
  `server ${x.serverCpu.toFixed(0)}% CPU (${fmtMs(x.serverUsPerDelivery)} µs per delivery), subscribers ${x.clientCpu.toFixed(0)}%, other processes ${x.foreignCpu.toFixed(0)}%`;

const fanoutLabel = (subs: number, bytes: number): string => `fan-out ${fmtInt(subs)} subs, ${bytes === 100 ? "100 B" : `${bytes / 1024} KiB`} events: deliveries/s`;

function latencyRow(subs: number, r: Results<LatencyResult>, columns: readonly ServerKind[] = KINDS): TableRow {
  const load = P.latencyPublishesPerSecond * subs;
  return pairRow(`publish->deliver, ${fmtInt(subs)} subs @ ${fmtInt(load)} deliveries/s: p50 / p99 / p99.9 ms`, r, [(x) => x.p50, (x) => x.p99, (x) => x.p999], fmtMs, columns);
}

const describePublish = (x: PublishResult): string =>
  `${fmtInt(x.eventsPerSec)} events/s; server ${x.serverCpu.toFixed(0)}% CPU (${fmtMs(x.serverUsPerEvent)} µs per event), ` +
  `publisher ${x.publisherCpu.toFixed(0)}% (${fmtMs(x.publisherUsPerEvent)} µs per event), other processes ${x.foreignCpu.toFixed(0)}%`;

/** The publish row: per mode, events/s, then server and publisher CPU per event; n/a where a server has no such call. */
async function publishRows(): Promise<TableRow[]> {
  const rows: TableRow[] = [];
  for (const mode of PUBLISH_MODES) {
    const r = await eachServer(`publish ${mode.name}`, mode.kinds, (kind) => publishThroughput(kind, mode), describePublish);
    const per = mode.call === "publish" ? "1 event per Publish call" : `${mode.batch} events per PublishBatch call`;
    rows.push(ratioRow(`publish ${mode.name}, ${per}, ${P.publishInFlight} in flight: events/s`, r, (x) => x.eventsPerSec, fmtInt, "higher"));
    rows.push(ratioRow(`  server CPU per event, µs`, r, (x) => x.serverUsPerEvent, fmtMs, "lower"));
    rows.push(ratioRow(`  publisher CPU per event, µs`, r, (x) => x.publisherUsPerEvent, fmtMs, "lower"));
    rows.push(textRow(`  CPU %: server / publisher`, r, (x) => `${x.serverCpu.toFixed(0)} / ${x.publisherCpu.toFixed(0)}`));
  }
  if (KINDS.includes("nats")) notes.push(`publish unary nats: core publish; "in flight" = published and not yet flushed (one PING/PONG acks every publish before it)`);
  const why: Partial<Record<ServerKind, string>> = { baseline: "the baseline answers PublishBatch with Unimplemented", nats: "NATS core has no batch call" };
  const without = KINDS.filter((k) => !PUBLISH_MODES[1]!.kinds.includes(k));
  if (without.length > 0) notes.push(`publish ${PUBLISH_MODES[1]!.name}: n/a: ${without.map((k) => why[k] ?? `${k} is not run`).join("; ")}`);
  return rows;
}

/**
 * The redis row: the Redis bus on two nodes (runnel-redis) next to the memory
 * bus on one (runnel), same workload, same run: fan-out deliveries/s and
 * publish->deliver latency at 100 and 1,000 subscribers.
 */
async function redisRows(): Promise<TableRow[]> {
  const rows: TableRow[] = [];
  for (const subs of [100, 1_000]) {
    const f = await eachServer(`redis fanout-${subs}`, REDIS_COLUMNS, (kind) => fanout(kind, subs, 100), describeFanout);
    rows.push(ratioRow(fanoutLabel(subs, 100), f, (x) => x.deliveriesPerSec, fmtInt, "higher", REDIS_COLUMNS));
    rows.push(ratioRow(`  server CPU per delivery (runnel-redis: both nodes), µs`, f, (x) => x.serverUsPerDelivery, fmtMs, "lower", REDIS_COLUMNS));
    const l = await eachServer(`redis latency-${subs}`, REDIS_COLUMNS, (kind) => latency(kind, subs), describeLatency);
    rows.push(latencyRow(subs, l, REDIS_COLUMNS));
  }
  return rows;
}

async function main(): Promise<void> {
  const startedAt = Date.now();
  const wanted = (r: Row): boolean => only.size === 0 || only.has(r);
  const rows: TableRow[] = [];
  log(
    `${os.cpus().length} cpus, node ${process.version}, ${quick ? "quick" : "full"} run, servers ${KINDS.join(", ")}; ` +
      `subscribers over ${protocol} h2c with ${rawClient ? "the raw gRPC client" : "connect-node"} (NATS: nats.js), ${P.clientProcesses} processes x ${P.connectionsPerProcess}+ connections`,
  );
  if (natsMissing) {
    log("nats-server is not installed (looked in /usr/sbin, /usr/bin, /usr/local/bin, PATH, $NATS_SERVER): NATS column skipped");
    notes.push("NATS skipped: nats-server is not installed (Debian: apt-get install nats-server)");
  }

  for (const [subs, bytes] of P.fanouts) {
    const row = (bytes === 100 ? `fanout-${subs}` : `fanout-${subs}-4k`) as Row;
    if (!wanted(row)) continue;
    const r = await eachServer(row, KINDS, (kind) => fanout(kind, subs, bytes), describeFanout);
    rows.push(ratioRow(fanoutLabel(subs, bytes), r, (x) => x.deliveriesPerSec, fmtInt, "higher"));
    rows.push(ratioRow(`  server CPU per delivery, µs`, r, (x) => x.serverUsPerDelivery, fmtMs, "lower"));
    rows.push(textRow(`  CPU %: server / subscriber procs (of 200) / publisher`, r, (x) => `${x.serverCpu.toFixed(0)} / ${x.clientCpu.toFixed(0)} / ${x.publisherCpu.toFixed(0)}`));
  }

  if (wanted("latency")) {
    const r = await eachServer("latency", KINDS, (kind) => latency(kind), describeLatency);
    rows.push(latencyRow(P.latencySubscribers, r));
    rows.push(ratioRow(`  server CPU per delivery, µs`, r, (x) => x.serverUsPerDelivery, fmtMs, "lower"));
    rows.push(textRow(`  CPU %: server / subscriber procs (of 200)`, r, (x) => `${x.serverCpu.toFixed(0)} / ${x.clientCpu.toFixed(0)}`));
  }

  if (wanted("publish")) rows.push(...(await publishRows()));

  if (wanted("cancel")) {
    log(`cancel: ${RPC_KINDS.join(", ")}, interleaved...`);
    const r = await cancelAll();
    log(`  other processes took ${cancelForeignCpu.toFixed(0)}% CPU meanwhile`);
    flagBusy("cancel", cancelForeignCpu);
    for (const kind of RPC_KINDS) {
      log(`  ${kind}:`);
      for (const [name, x] of Object.entries(r[kind]!)) {
        const internal = x.internalP50 === undefined ? "" : `; of which abort listener -> released p50 ${fmtMs(x.internalP50)} ms p99 ${fmtMs(x.internalP99!)} ms`;
        const causes = Object.keys(x.causes).length === 0 ? "" : `; causes ${JSON.stringify(x.causes)}`;
        log(`    ${name}: p50 ${fmtMs(x.p50)} ms, p99 ${fmtMs(x.p99)} ms over ${x.samples}${internal}${causes}`);
        if (x.timeouts > 0) notes.push(`cancel ${kind} ${name}: ${x.timeouts} streams not released within 5 s of the abort`);
      }
    }
    for (const tc of CANCEL_TRANSPORTS) {
      const per: Partial<Record<Kind, CancelResult>> = {};
      for (const kind of RPC_KINDS) per[kind] = r[kind]![tc.name];
      rows.push(pairRow(`cancel->release, ${tc.name}: p50 / p99 ms`, per, [(x) => x.p50, (x) => x.p99], fmtMs));
    }
  }

  if (wanted("heap")) {
    for (const n of heapStreams) {
      const r: Partial<Record<Kind, HeapResult>> = {};
      for (const kind of KINDS) {
        if (kind === "baseline" && n > BASELINE_HEAP_MAX) continue;
        log(`heap ${fmtInt(n)}: ${kind}...`);
        r[kind] = await heap(kind, n);
        const x = r[kind]!;
        log(`  ${x.streams} idle streams: heapUsed ${fmtKb(x.heapBefore)} -> ${fmtKb(x.heapAfter)}, ${fmtKb(x.heapPerStream)} heap and ${fmtKb(x.rssPerStream)} RSS per stream, RSS ${fmtKb(x.rssAfter)}`);
      }
      rows.push(ratioRow(`heap per idle stream (${fmtInt(n)} streams, after full GC)`, r, (x) => x.heapPerStream, fmtKb, "lower"));
      rows.push(ratioRow(`  RSS per idle stream`, r, (x) => x.rssPerStream, fmtKb, "lower"));
      rows.push(ratioRow(`  server RSS, MB`, r, (x) => x.rssAfter / 2 ** 20, fmtInt, "lower"));
      if (n > BASELINE_HEAP_MAX && KINDS.includes("baseline")) notes.push(`heap ${fmtInt(n)}: the naive baseline runs this row only up to ${fmtInt(BASELINE_HEAP_MAX)} streams`);
    }
  }

  const redis: TableRow[] = [];
  if (wanted("redis")) {
    if (redisAvailable()) redis.push(...(await redisRows()));
    else {
      log("redis-server is not installed: redis row skipped");
      notes.push("redis row skipped: redis-server is not installed (Debian: apt-get install redis-server)");
    }
  }

  const run =
    `subscribers over ${protocol} h2c with ${rawClient ? "the raw gRPC client" : "connect-node"} (${P.clientProcesses} processes), ` +
    `${quick ? "--quick" : "full"} run, ${((Date.now() - startedAt) / 1000).toFixed(0)} s`;
  if (rows.length > 0) {
    console.log(`\nrunnel vs ${KINDS.filter((k) => k !== "runnel").join(", ")}: ${run}\n`);
    printTable(rows);
  }
  if (redis.length > 0) {
    console.log(
      `\nrunnel-redis (the Redis bus: 2 runnel nodes on one throwaway redis-server, subscribers split between them, publisher on node A) ` +
        `vs runnel (the memory bus, 1 node): ${run}; redis-server's CPU counts as other processes'\n`,
    );
    printTable(redis, REDIS_COLUMNS);
  }
  if (notes.length > 0) {
    console.log("");
    console.log("notes:");
    for (const n of notes) console.log(`  - ${n}`);
  }
  if (cpuProfDir !== undefined) console.log(`\nserver CPU profiles: ${cpuProfDir}`);
}

process.on("unhandledRejection", (e) => {
  console.error(e);
  killAllChildren();
  process.exit(1);
});

main().then(
  () => {
    killAllChildren();
    process.exit(0);
  },
  (e: unknown) => {
    console.error("bench failed:", e);
    killAllChildren();
    process.exit(1);
  },
);
