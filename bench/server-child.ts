/**
 * A server under test, in its own process so that its CPU and heap are
 * measured apart from the clients: `node server-child.js runnel|baseline`, or
 * `runnel-redis redis://...` for a node on the Redis bus.
 *
 * Commands (over IPC): usage (CPU and memory now), gc-mem (full GC, then
 * memory), heap-snapshot (full GC, then a V8 heap snapshot), streams (live Subscribe streams), watch-release (report every
 * stream release as a "released" event carrying the shared-clock time it
 * happened), exit.
 *
 * What "released" means:
 * - runnel: the moment the stream's ledger entry is removed, i.e. the ledger
 *   observer's `ended()` call, which Ledger.remove makes after deleting the
 *   entry and after the stream's scope released every resource it held.
 * - baseline: the moment the Subscribe handler's `finally` runs.
 * Both also report `releaseSeconds`: for runnel its own
 * runnel_stream_release_seconds observation (from the moment the stream's end
 * was known, i.e. its ctx.signal abort listener ran, to the release); for the
 * baseline the same span, from its abort listener to its `finally`.
 */
import { pino } from "pino";
import { writeHeapSnapshot } from "node:v8";
import { emit, exitWithParent, now, serveParent, sleep } from "./ipc.js";

exitWithParent();
const kind = process.argv[2];

interface Under {
  h1Url: string;
  h2Url: string;
  streams(): number | Promise<number>;
  watchRelease(): void;
  /** CPU and memory of the process that serves (this one, or nats-server). */
  usage?(): { cpu: NodeJS.CpuUsage; mem: Partial<NodeJS.MemoryUsage> };
}

let releaseWatched = false;
const released = (extra: Record<string, unknown> = {}): void => {
  if (releaseWatched) emit("released", { t: now(), ...extra });
};

async function start(): Promise<Under> {
  if (kind === "runnel" || kind === "runnel-connect" || kind === "runnel-redis") {
    const { createServer } = await import("../src/server.js");
    // Defaults everywhere (heartbeats, queue bounds, keepalive) except the address, the log level and:
    // runnel-connect serves Subscribe through connect-es's own pipeline (the code before the lean write path);
    // runnel-redis runs on the Redis bus (argv[3], a redis:// URL). Every bench client comes from 127.0.0.1, so
    // the per-address and total stream limits (issue 7) are lifted: the rows hold up to 50,000 streams from one address.
    const bus = kind === "runnel-redis" ? { bus: process.argv[3]! } : {};
    const unlimited = { maxStreams: 1_000_000, maxStreamsPerPeer: 1_000_000, maxPatternSubscriptions: 1_000_000 };
    const server = createServer(
      { host: "127.0.0.1", port: 0, logLevel: "silent", leanSubscribe: kind !== "runnel-connect", ...unlimited, ...bus },
      { logger: pino({ level: "silent" }) },
    );
    await server.listen();
    return {
      h1Url: server.url,
      h2Url: server.url,
      streams: () => server.ledger.size,
      watchRelease() {
        server.ledger.observe({
          ended: (rpc, cause, releaseSeconds) => released({ rpc, cause, releaseSeconds }),
        });
      },
    };
  }
  if (kind === "baseline") {
    const { startNaiveServer } = await import("./baseline/naive-server.js");
    const server = await startNaiveServer({
      onRelease: (abortSeenAt) => released(abortSeenAt === undefined ? {} : { releaseSeconds: (performance.now() - abortSeenAt) / 1000 }),
    });
    return { h1Url: server.h1Url, h2Url: server.h2Url, streams: () => server.activeStreams(), watchRelease: () => undefined };
  }
  if (kind === "nats") {
    const { natsServerBinary, startNatsServer } = await import("./nats-server.js");
    const binary = natsServerBinary();
    if (binary === undefined) throw new Error("nats-server is not installed");
    const nats = await startNatsServer(binary);
    return {
      h1Url: nats.url,
      h2Url: nats.url,
      streams: () => nats.subscriptions(),
      watchRelease: () => undefined,
      usage() {
        const u = nats.usage();
        return { cpu: u.cpu, mem: { rss: u.rss, heapUsed: Number.NaN } };
      },
    };
  }
  throw new Error(`unknown server kind ${kind}`);
}

const gc = (globalThis as { gc?: () => void }).gc;

async function fullGc(): Promise<void> {
  if (gc === undefined) throw new Error("start the server child with --expose-gc");
  for (let i = 0; i < 3; i++) {
    gc();
    await sleep(20);
  }
}

const under = await start();
serveParent({
  usage: () => ({ t: now(), ...(under.usage?.() ?? { cpu: process.cpuUsage(), mem: process.memoryUsage() }) }),
  "gc-mem": async () => {
    if (under.usage !== undefined) return under.usage().mem; // another process: no GC to run
    await fullGc();
    return process.memoryUsage();
  },
  streams: () => under.streams(),
  "heap-snapshot": async (args) => {
    await fullGc();
    return writeHeapSnapshot(args.path as string);
  },
  "watch-release": () => {
    if (!releaseWatched) under.watchRelease();
    releaseWatched = true;
  },
  exit: () => {
    setImmediate(() => process.exit(0));
  },
});
emit("ready", { h1Url: under.h1Url, h2Url: under.h2Url, pid: process.pid });
