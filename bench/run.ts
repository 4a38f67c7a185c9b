/**
 * `npm run bench`: runnel side by side with a naive connect-es baseline
 * (bench/baseline/naive-server.ts), same proto, same workload, one run, one
 * table.
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
 * Rows: fanout-100, fanout-1000, latency, cancel, heap, redis (the Redis bus on
 * 2 nodes next to the memory bus on 1: fan-out and latency at 100 and 1,000
 * subscribers; needs redis-server, skipped with a note when absent).
 */
import { createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { mkdirSync, readFileSync } from "node:fs";
import os from "node:os";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { EventService } from "../gen/runnel/v1/event_pb.js";
import { cpuMs, killAllChildren, now, percentile, sleep, spawnChild, type Child } from "./ipc.js";
import { redisAvailable, startBenchRedis } from "./redis-nodes.js";

// ------------------------------------------------------------------ options

/** The "server CPU per delivery" row shared by the fan-out and latency sections. */
function cpuPerDeliveryRow(a: { serverUsPerDelivery: number }, b: { serverUsPerDelivery: number }): { label: string; runnel: string; baseline: string; ratio: string } {
  return {
    label: `  server CPU per delivery, µs`,
    runnel: fmtMs(a.serverUsPerDelivery),
    baseline: fmtMs(b.serverUsPerDelivery),
    ratio: `${fmtRatio(a.serverUsPerDelivery / b.serverUsPerDelivery)} (lower is better)`,
  };
}

// `npm run bench -- tail`: the Tail section (bench/tail.ts) on its own.
if (process.argv[2] === "tail") {
  const { main: tailBench } = await import("./tail.js");
  await tailBench(process.argv.slice(3));
  process.exit(0);
}

const ROWS = ["fanout-100", "fanout-1000", "latency", "cancel", "heap", "redis"] as const;
type Row = (typeof ROWS)[number];
type Kind = "runnel" | "baseline";
/** What serves a row: runnel or the baseline (one process), or "redis": two runnel nodes on one Redis. */
type ServerKind = Kind | "redis";
const KINDS: readonly Kind[] = ["runnel", "baseline"];
type Protocol = "grpc" | "connect" | "grpc-web";

const { values: flags } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string", multiple: true },
    protocol: { type: "string", default: "grpc" },
    "cpu-prof": { type: "string" },
    window: { type: "string" },
    duration: { type: "string" },
    iterations: { type: "string" },
    concurrency: { type: "string" },
    "heap-snapshot": { type: "string" },
    help: { type: "boolean", default: false },
  },
});

if (flags.help) {
  console.log(`usage: npm run bench -- [options]
  --quick              short smoke run (well under a minute)
  --only ROW[,ROW]     run only these rows: ${ROWS.join(", ")}
  --protocol P         subscribers' and publisher's protocol: grpc (default), connect or grpc-web, over h2c
  --window N           fan-out flow-control window, events (default 16)
  --concurrency N      fan-out: most Publish calls in flight (default 16)
  --duration S         fan-out measurement, seconds (default 5)
  --iterations N       cancel-to-release samples per transport and server (default 200)
  --cpu-prof DIR       write a V8 CPU profile of every server child into DIR
  --heap-snapshot DIR  heap row: V8 heap snapshots before/after opening the idle streams
                       (compare: node dist/bench/heap-diff.js BEFORE AFTER N)`);
  process.exit(0);
}

/** A numeric flag: a positive number, or the default when absent. */
function numberFlag(name: "window" | "duration" | "iterations" | "concurrency", fallback: number): number {
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
const cpuProfDir = flags["cpu-prof"] === undefined ? undefined : resolve(flags["cpu-prof"]);
if (cpuProfDir !== undefined) mkdirSync(cpuProfDir, { recursive: true });
const heapSnapshotDir = flags["heap-snapshot"] === undefined ? undefined : resolve(flags["heap-snapshot"]);
if (heapSnapshotDir !== undefined) mkdirSync(heapSnapshotDir, { recursive: true });

/** The workload. Same for runnel and the baseline. */
const P = {
  clientProcesses: 2,
  connectionsPerProcess: 5,
  eventBytes: 100,
  warmupMs: quick ? 300 : 1_000,
  fanoutMs: numberFlag("duration", quick ? 1.5 : 5) * 1000,
  /**
   * Publisher flow control: at most this many events published and not yet
   * received by every subscriber. Small on purpose: it keeps both servers at
   * a sustainable rate with short queues. Deep backlogs (64+ events per
   * stream at 1,000 subscribers) were seen to collapse throughput of both
   * servers to 4-5k deliveries/s; see BENCHMARKS.md.
   */
  fanoutWindow: numberFlag("window", 16),
  /** Fan-out runs per server, in ABBA order; the table shows the mean. */
  fanoutRepeats: quick ? 1 : 2,
  /** At most this many Publish calls in flight. */
  publishConcurrency: numberFlag("concurrency", 16),
  latencySubscribers: 1_000,
  latencyPublishesPerSecond: 5,
  latencyMs: quick ? 2_000 : 8_000,
  cancelIterations: Math.round(numberFlag("iterations", quick ? 20 : 200)),
  cancelWarmup: quick ? 3 : 10,
  heapStreams: quick ? 400 : 2_000,
  heapWarmupStreams: 200,
};

// ---------------------------------------------------------------- processes

interface ServerUnder {
  readonly kind: ServerKind;
  /** The (first) node: its CPU is the one measured; the publisher publishes to it. */
  readonly child: Child;
  readonly h1Url: string;
  readonly h2Url: string;
  /** Every node's h2 URL (one for a single server); subscriber process i uses node i mod N. */
  readonly h2Urls: readonly string[];
  /** Every node's process, the first included. */
  readonly nodes: readonly Child[];
  /** Stops everything the server kind started beyond its node processes (Redis). */
  readonly stopExtra?: () => Promise<void>;
}

async function startServer(kind: ServerKind, row: string): Promise<ServerUnder> {
  if (kind === "redis") return startRedisNodes(row);
  const one = await startNode(kind, row, []);
  return { ...one, kind };
}

/** Two runnel nodes (separate processes) on a fresh redis-server. */
async function startRedisNodes(row: string): Promise<ServerUnder> {
  const redis = await startBenchRedis();
  const nodes = await Promise.all([0, 1].map((i) => startNode("runnel-redis", `${row}-${i}`, [redis.url])));
  return {
    kind: "redis",
    child: nodes[0]!.child,
    h1Url: nodes[0]!.h1Url,
    h2Url: nodes[0]!.h2Url,
    h2Urls: nodes.map((n) => n.h2Url),
    nodes: nodes.map((n) => n.child),
    stopExtra: () => redis.stop(),
  };
}

async function startNode(kind: string, row: string, args: string[]): Promise<Omit<ServerUnder, "kind">> {
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

/** Run `body` with a fresh server, subscriber processes and publisher process; always stop them. */
async function withProcesses<T>(kind: ServerKind, row: string, body: (p: Procs) => Promise<T>): Promise<T> {
  const server = await startServer(kind, row);
  const others: Child[] = [];
  try {
    const [clients, publisher] = await Promise.all([startClients(), startPublisher()]);
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

async function subscribeAll(server: ServerUnder, clients: Child[], n: number, topic: string, mode: "count" | "latency" | "idle"): Promise<void> {
  const split = shares(n);
  const results = await Promise.all(
    clients.map((c, i) =>
      c.call<{ errors: Record<string, number> }>("subscribe", {
        url: server.h2Urls[i % server.h2Urls.length],
        protocol,
        connections: P.connectionsPerProcess,
        count: split[i],
        topic,
        mode,
      }),
    ),
  );
  const errors = results.flatMap((r) => Object.entries(r.errors));
  if (errors.length > 0) throw new Error(`subscribe failed: ${errors.map(([m, k]) => `${k}x ${m}`).join("; ")}`);
  const live = async (): Promise<number> => (await Promise.all(server.nodes.map((c) => c.call<number>("streams")))).reduce((a, b) => a + b, 0);
  await waitFor(`${n} live streams on the ${server.kind} server`, async () => (await live()) >= n);
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
  publisher: Usage & { published: number; blockedByWindowMs: number; blockedByConcurrencyMs: number };
  self: Usage;
  machine: MachineUsage;
}

async function takeMarks(p: Procs): Promise<Marks> {
  const [server, publisher, ...clients] = await Promise.all([
    p.server.child.call<Marks["server"]>("usage"),
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
    foreignCpu: foreignCpu(
      a.machine,
      b.machine,
      cpuMs(a.server.cpu, b.server.cpu) +
        cpuMs(a.publisher.cpu, b.publisher.cpu) +
        cpuMs(a.self.cpu, b.self.cpu) +
        b.clients.reduce((sum, cb, i) => sum + cpuMs(a.clients[i]!.cpu, cb.cpu), 0),
    ),
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
async function fanout(kind: ServerKind, subscribers: number): Promise<FanoutResult> {
  return withProcesses(kind, `fanout-${subscribers}`, async (p) => {
    const topic = "bench.fanout";
    const slowest = trackSlowest(p.clients, p.publisher);
    await subscribeAll(p.server, p.clients, subscribers, topic, "count");
    await p.publisher.call("start", {
      mode: "flow",
      url: p.server.h2Url,
      protocol,
      topic,
      bytes: P.eventBytes,
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
 * `latencySubscribers` subscribers. Each payload starts with the publish time
 * (shared clock) taken just before the Publish call; each subscriber records
 * receive time minus that. Samples from the warm-up are dropped.
 */
async function latency(kind: ServerKind, subscribers = P.latencySubscribers): Promise<LatencyResult> {
  return withProcesses(kind, "latency", async (p) => {
    const topic = "bench.latency";
    const slowest = trackSlowest(p.clients, undefined);
    await subscribeAll(p.server, p.clients, subscribers, topic, "latency");
    const { t: start } = await p.publisher.call<{ t: number }>("start", {
      mode: "paced",
      url: p.server.h2Url,
      protocol,
      topic,
      bytes: P.eventBytes,
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

async function cancelBoth(): Promise<Record<Kind, Record<string, CancelResult>>> {
  const servers: ServerUnder[] = [];
  try {
    for (const kind of KINDS) servers.push(await startServer(kind, "cancel"));
    const watchers = await Promise.all(
      servers.map(async (s) => {
        await s.child.call("watch-release");
        return releaseWatcher(s);
      }),
    );
    const out = { runnel: {}, baseline: {} } as Record<Kind, Record<string, CancelResult>>;
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
        const order = i % 2 === 0 ? [0, 1] : [1, 0];
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
        out[KINDS[k]!][tc.name] = {
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
  heapBefore: number;
  heapAfter: number;
  streams: number;
}

/**
 * Heap and RSS per idle stream: after a warm-up round (connections made, code
 * compiled, streams opened and closed), full GC and measure; open N idle
 * subscriptions over the same 10 connections; full GC and measure again.
 */
async function heap(kind: Kind): Promise<HeapResult> {
  return withProcesses(kind, "heap", async ({ server, clients }) => {
    const topic = "bench.idle";
    await subscribeAll(server, clients, P.heapWarmupStreams, topic, "idle");
    await Promise.all(clients.map((c) => c.call("close")));
    await waitFor("warm-up streams to be released", async () => (await server.child.call<number>("streams")) === 0);
    const before = await server.child.call<NodeJS.MemoryUsage>("gc-mem");
    if (heapSnapshotDir !== undefined) await server.child.call("heap-snapshot", { path: `${heapSnapshotDir}/${kind}-before.heapsnapshot` });
    await subscribeAll(server, clients, P.heapStreams, topic, "idle");
    await sleep(200);
    const after = await server.child.call<NodeJS.MemoryUsage>("gc-mem");
    if (heapSnapshotDir !== undefined) await server.child.call("heap-snapshot", { path: `${heapSnapshotDir}/${kind}-after.heapsnapshot` });
    const n = await server.child.call<number>("streams");
    await Promise.all(clients.map((c) => c.call("close")));
    return {
      heapPerStream: (after.heapUsed - before.heapUsed) / n,
      rssPerStream: (after.rss - before.rss) / n,
      heapBefore: before.heapUsed,
      heapAfter: after.heapUsed,
      streams: n,
    };
  });
}

// ------------------------------------------------------------------- report

interface TableRow {
  label: string;
  runnel: string;
  baseline: string;
  ratio: string;
}

const fmtInt = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "n/a");
const fmtMs = (n: number): string => (!Number.isFinite(n) ? "n/a" : n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : n.toFixed(0));
const fmtRatio = (r: number): string => (Number.isFinite(r) ? `${r.toFixed(2)}x` : "n/a");
const fmtKb = (bytes: number): string => `${(bytes / 1024).toFixed(1)} KB`;

function printTable(rows: TableRow[], head: TableRow = { label: "row", runnel: "runnel", baseline: "baseline", ratio: "runnel/baseline" }): void {
  const all = [head, ...rows];
  const w = {
    label: Math.max(...all.map((r) => r.label.length)),
    runnel: Math.max(...all.map((r) => r.runnel.length)),
    baseline: Math.max(...all.map((r) => r.baseline.length)),
  };
  const line = (r: TableRow): string =>
    `| ${r.label.padEnd(w.label)} | ${r.runnel.padStart(w.runnel)} | ${r.baseline.padStart(w.baseline)} | ${r.ratio} |`;
  console.log(line(head));
  console.log(`|${"-".repeat(w.label + 2)}|${"-".repeat(w.runnel + 1)}:|${"-".repeat(w.baseline + 1)}:|---|`);
  for (const r of rows) console.log(line(r));
}

/** The mean of repeated fan-out runs. */
function meanFanout(runs: FanoutResult[]): FanoutResult {
  const mean = (f: (x: FanoutResult) => number): number => runs.reduce((s, x) => s + f(x), 0) / runs.length;
  return {
    deliveriesPerSec: mean((x) => x.deliveriesPerSec),
    publishesPerSec: mean((x) => x.publishesPerSec),
    blockedByWindow: mean((x) => x.blockedByWindow),
    blockedByConcurrency: mean((x) => x.blockedByConcurrency),
    serverCpu: mean((x) => x.serverCpu),
    serverUsPerDelivery: mean((x) => x.serverUsPerDelivery),
    clientCpu: mean((x) => x.clientCpu),
    publisherCpu: mean((x) => x.publisherCpu),
    foreignCpu: mean((x) => x.foreignCpu),
    published: mean((x) => x.published),
    notes: runs.flatMap((x) => x.notes),
  };
}

/** Above this much CPU (% of one core) taken by other processes, a measurement is flagged. */
const FOREIGN_CPU_WARN = 15;

async function main(): Promise<void> {
  const startedAt = Date.now();
  const wanted = (r: Row): boolean => only.size === 0 || only.has(r);
  const rows: TableRow[] = [];
  const notes: string[] = [];
  const log = (s: string): void => void process.stderr.write(`[bench] ${s}\n`);
  log(
    `${os.cpus().length} cpus, node ${process.version}, ${quick ? "quick" : "full"} run, subscribers over ${protocol} h2c, ` +
      `${P.clientProcesses} processes x ${P.connectionsPerProcess} connections`,
  );

  for (const subs of [100, 1_000] as const) {
    const row: Row = subs === 100 ? "fanout-100" : "fanout-1000";
    if (!wanted(row)) continue;
    const runs: Record<Kind, FanoutResult[]> = { runnel: [], baseline: [] };
    for (let rep = 0; rep < P.fanoutRepeats; rep++) {
      // ABBA order, so neither server always runs first.
      for (const kind of rep % 2 === 0 ? KINDS : [...KINDS].reverse()) {
        log(`${row}: ${kind}${P.fanoutRepeats > 1 ? ` (run ${rep + 1} of ${P.fanoutRepeats})` : ""}...`);
        const x = await fanout(kind, subs);
        runs[kind].push(x);
        log(
          `  ${fmtInt(x.deliveriesPerSec)} deliveries/s, ${fmtInt(x.publishesPerSec)} publishes/s ` +
            `(publisher waited ${(100 * x.blockedByWindow).toFixed(0)}% on subscribers, ${(100 * x.blockedByConcurrency).toFixed(0)}% on Publish answers), server ${x.serverCpu.toFixed(0)}% CPU (${fmtMs(x.serverUsPerDelivery)} µs per delivery), ` +
            `subscribers ${x.clientCpu.toFixed(0)}%, publisher ${x.publisherCpu.toFixed(0)}%, other processes ${x.foreignCpu.toFixed(0)}%`,
        );
        for (const n of x.notes) notes.push(`${row} ${kind}: ${n}`);
        if (x.foreignCpu > FOREIGN_CPU_WARN) notes.push(`${row} ${kind}: other processes took ${x.foreignCpu.toFixed(0)}% CPU during the measurement: not a quiet machine`);
      }
    }
    const r = { runnel: meanFanout(runs.runnel), baseline: meanFanout(runs.baseline) };
    const [a, b] = [r.runnel!, r.baseline!];
    rows.push({
      label: `fan-out ${fmtInt(subs)} subs, 100 B events: deliveries/s${P.fanoutRepeats > 1 ? ` (mean of ${P.fanoutRepeats})` : ""}`,
      runnel: fmtInt(a.deliveriesPerSec),
      baseline: fmtInt(b.deliveriesPerSec),
      ratio: `${fmtRatio(a.deliveriesPerSec / b.deliveriesPerSec)} (higher is better)`,
    });
    rows.push(cpuPerDeliveryRow(a, b));
    rows.push({
      label: `  CPU %: server / subscriber procs (of 200) / publisher`,
      runnel: `${a.serverCpu.toFixed(0)} / ${a.clientCpu.toFixed(0)} / ${a.publisherCpu.toFixed(0)}`,
      baseline: `${b.serverCpu.toFixed(0)} / ${b.clientCpu.toFixed(0)} / ${b.publisherCpu.toFixed(0)}`,
      ratio: "",
    });
  }

  if (wanted("latency")) {
    const r: Partial<Record<Kind, LatencyResult>> = {};
    for (const kind of KINDS) {
      log(`latency: ${kind}...`);
      r[kind] = await latency(kind);
      const x = r[kind]!;
      log(
        `  p50 ${fmtMs(x.p50)} ms, p99 ${fmtMs(x.p99)} ms, p99.9 ${fmtMs(x.p999)} ms, max ${fmtMs(x.max)} ms over ${fmtInt(x.samples)} deliveries; ` +
          `server ${x.serverCpu.toFixed(0)}% CPU (${fmtMs(x.serverUsPerDelivery)} µs per delivery), subscribers ${x.clientCpu.toFixed(0)}%, other processes ${x.foreignCpu.toFixed(0)}%`,
      );
      for (const n of x.notes) notes.push(`latency ${kind}: ${n}`);
      if (x.foreignCpu > FOREIGN_CPU_WARN) notes.push(`latency ${kind}: other processes took ${x.foreignCpu.toFixed(0)}% CPU during the measurement: not a quiet machine`);
    }
    const [a, b] = [r.runnel!, r.baseline!];
    const load = P.latencyPublishesPerSecond * P.latencySubscribers;
    rows.push({
      label: `publish->deliver, ${fmtInt(P.latencySubscribers)} subs @ ${fmtInt(load)} deliveries/s: p50 / p99 ms`,
      runnel: `${fmtMs(a.p50)} / ${fmtMs(a.p99)}`,
      baseline: `${fmtMs(b.p50)} / ${fmtMs(b.p99)}`,
      ratio: `${fmtRatio(a.p50 / b.p50)} / ${fmtRatio(a.p99 / b.p99)} (lower is better)`,
    });
    rows.push(cpuPerDeliveryRow(a, b));
    rows.push({
      label: `  CPU %: server / subscriber procs (of 200)`,
      runnel: `${a.serverCpu.toFixed(0)} / ${a.clientCpu.toFixed(0)}`,
      baseline: `${b.serverCpu.toFixed(0)} / ${b.clientCpu.toFixed(0)}`,
      ratio: "",
    });
  }

  if (wanted("cancel")) {
    log(`cancel: runnel and baseline, interleaved...`);
    const r = await cancelBoth();
    log(`  other processes took ${cancelForeignCpu.toFixed(0)}% CPU meanwhile`);
    if (cancelForeignCpu > FOREIGN_CPU_WARN) notes.push(`cancel: other processes took ${cancelForeignCpu.toFixed(0)}% CPU during the measurement: not a quiet machine`);
    for (const kind of KINDS) {
      log(`  ${kind}:`);
      for (const [name, x] of Object.entries(r[kind]!)) {
        const internal = x.internalP50 === undefined ? "" : `; of which abort listener -> released p50 ${fmtMs(x.internalP50)} ms p99 ${fmtMs(x.internalP99!)} ms`;
        const causes = Object.keys(x.causes).length === 0 ? "" : `; causes ${JSON.stringify(x.causes)}`;
        log(`    ${name}: p50 ${fmtMs(x.p50)} ms, p99 ${fmtMs(x.p99)} ms over ${x.samples}${internal}${causes}`);
        if (x.timeouts > 0) notes.push(`cancel ${kind} ${name}: ${x.timeouts} streams not released within 5 s of the abort`);
      }
    }
    for (const tc of CANCEL_TRANSPORTS) {
      const [a, b] = [r.runnel[tc.name]!, r.baseline[tc.name]!];
      rows.push({
        label: `cancel->release, ${tc.name}: p50 / p99 ms`,
        runnel: `${fmtMs(a.p50)} / ${fmtMs(a.p99)}`,
        baseline: `${fmtMs(b.p50)} / ${fmtMs(b.p99)}`,
        ratio: `${fmtRatio(a.p50 / b.p50)} / ${fmtRatio(a.p99 / b.p99)} (lower is better)`,
      });
    }
  }

  if (wanted("heap")) {
    const r: Partial<Record<Kind, HeapResult>> = {};
    for (const kind of KINDS) {
      log(`heap: ${kind}...`);
      r[kind] = await heap(kind);
      const x = r[kind]!;
      log(`  ${x.streams} idle streams: heapUsed ${fmtKb(x.heapBefore)} -> ${fmtKb(x.heapAfter)}, ${fmtKb(x.heapPerStream)} heap and ${fmtKb(x.rssPerStream)} RSS per stream`);
    }
    const [a, b] = [r.runnel!, r.baseline!];
    rows.push({
      label: `heap per idle stream (${fmtInt(P.heapStreams)} streams, after full GC)`,
      runnel: fmtKb(a.heapPerStream),
      baseline: fmtKb(b.heapPerStream),
      ratio: `${fmtRatio(a.heapPerStream / b.heapPerStream)} (lower is better)`,
    });
    rows.push({
      label: `RSS per idle stream`,
      runnel: fmtKb(a.rssPerStream),
      baseline: fmtKb(b.rssPerStream),
      ratio: `${fmtRatio(a.rssPerStream / b.rssPerStream)} (lower is better)`,
    });
  }

  const redisRows: TableRow[] = [];
  if (wanted("redis")) {
    if (!redisAvailable()) notes.push("redis: redis-server is not installed (apt-get install redis-server); Redis rows skipped");
    else redisRows.push(...(await redisSection(log, notes)));
  }

  console.log("");
  console.log(
    `runnel vs naive connect-es baseline: subscribers over ${protocol} h2c (${P.clientProcesses} processes x ${P.connectionsPerProcess} connections), ` +
      `${quick ? "--quick" : "full"} run, ${((Date.now() - startedAt) / 1000).toFixed(0)} s`,
  );
  console.log("");
  printTable(rows);
  if (redisRows.length > 0) {
    console.log("");
    console.log("runnel on the Redis bus (2 nodes, subscribers split between them, publisher on node A) vs the memory bus (1 node); CPU is node A's");
    console.log("");
    printTable(redisRows, { label: "row", runnel: "redis bus, 2 nodes", baseline: "memory bus, 1 node", ratio: "redis/memory" });
  }
  if (notes.length > 0) {
    console.log("");
    console.log("notes:");
    for (const n of notes) console.log(`  - ${n}`);
  }
  if (cpuProfDir !== undefined) console.log(`\nserver CPU profiles: ${cpuProfDir}`);
}

/**
 * The Redis bus next to the memory bus, same run: fan-out deliveries/s and
 * publish->deliver latency at 100 and 1,000 subscribers. One run each (the
 * machine is shared; the figures are indicative).
 */
async function redisSection(log: (s: string) => void, notes: string[]): Promise<TableRow[]> {
  const rows: TableRow[] = [];
  const kinds = ["redis", "runnel"] as const;
  for (const subs of [100, 1_000]) {
    const f: Partial<Record<(typeof kinds)[number], FanoutResult>> = {};
    for (const kind of kinds) {
      log(`redis: fan-out ${subs} subs, ${kind === "redis" ? "redis bus (2 nodes)" : "memory bus"}...`);
      const x = (f[kind] = await fanout(kind, subs));
      log(`  ${fmtInt(x.deliveriesPerSec)} deliveries/s, ${fmtInt(x.publishesPerSec)} publishes/s, node A ${x.serverCpu.toFixed(0)}% CPU`);
      for (const n of x.notes) notes.push(`redis fan-out ${subs} ${kind}: ${n}`);
      if (x.foreignCpu > FOREIGN_CPU_WARN) notes.push(`redis fan-out ${subs} ${kind}: other processes took ${x.foreignCpu.toFixed(0)}% CPU: not a quiet machine`);
    }
    rows.push({
      label: `fan-out ${fmtInt(subs)} subs, 100 B events: deliveries/s`,
      runnel: fmtInt(f.redis!.deliveriesPerSec),
      baseline: fmtInt(f.runnel!.deliveriesPerSec),
      ratio: `${fmtRatio(f.redis!.deliveriesPerSec / f.runnel!.deliveriesPerSec)} (higher is better)`,
    });
    const l: Partial<Record<(typeof kinds)[number], LatencyResult>> = {};
    for (const kind of kinds) {
      log(`redis: latency ${subs} subs, ${kind === "redis" ? "redis bus (2 nodes)" : "memory bus"}...`);
      const x = (l[kind] = await latency(kind, subs));
      log(`  p50 ${fmtMs(x.p50)} ms, p99 ${fmtMs(x.p99)} ms over ${fmtInt(x.samples)} deliveries`);
      for (const n of x.notes) notes.push(`redis latency ${subs} ${kind}: ${n}`);
      if (x.foreignCpu > FOREIGN_CPU_WARN) notes.push(`redis latency ${subs} ${kind}: other processes took ${x.foreignCpu.toFixed(0)}% CPU: not a quiet machine`);
    }
    rows.push({
      label: `publish->deliver, ${fmtInt(subs)} subs @ ${P.latencyPublishesPerSecond} publishes/s: p50 / p99 ms`,
      runnel: `${fmtMs(l.redis!.p50)} / ${fmtMs(l.redis!.p99)}`,
      baseline: `${fmtMs(l.runnel!.p50)} / ${fmtMs(l.runnel!.p99)}`,
      ratio: `${fmtRatio(l.redis!.p50 / l.runnel!.p50)} / ${fmtRatio(l.redis!.p99 / l.runnel!.p99)} (lower is better)`,
    });
  }
  return rows;
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
